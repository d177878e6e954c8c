//! `sockrpc serve` logs to stderr why it closed a connection: a malformed frame closes that
//! one connection with a logged reason, and the server goes on serving others.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;
use support::*;

#[test]
fn a_protocol_error_is_logged_with_its_reason() {
    let mut child = sockrpc()
        .args(["serve", "--tcp", "127.0.0.1:0", "--workers", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    let addr: SocketAddr = tcp_addr(&line);
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    // A preface with the wrong magic: the server answers GOAWAY and closes this connection.
    let mut bad = TcpStream::connect(addr).expect("connect");
    bad.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    bad.write_all(b"NOTSOCKRPC\x01\x00").expect("write");
    let mut rest = Vec::new();
    let _ = bad.read_to_end(&mut rest);
    let logged = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("serve logged nothing about the closed connection");
    assert!(
        logged.contains("WARN") && logged.contains("closing connection"),
        "{logged}"
    );
    assert!(logged.contains("peer"), "the log names the peer: {logged}");
    let _ = server.0.kill();
}
