//! `sockrpc serve`'s raw UDP echo: off unless `--raw-udp` asks for it, and then it echoes.
//!
//! That it never answers a datagram from its own address is tested beside the echo
//! (`raw::tests`), where the echo's socket can truly send a datagram to itself; from another
//! process the source of a datagram cannot be forged without raw sockets.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, UdpSocket},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sockrpc serve` with `args` and returns it with its first stdout line, the addresses
/// it bound as `key=value` pairs after `listening`.
fn serve(args: &[&str]) -> (Server, Vec<(String, String)>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockrpc"))
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sockrpc serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    let line = line_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("serve printed no line within 30 s");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("listening"), "{line:?}");
    let fields = words
        .map(|word| {
            let (key, value) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {word:?} in {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect();
    (server, fields)
}

fn field(fields: &[(String, String)], key: &str) -> Option<SocketAddr> {
    fields
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.parse().expect("address"))
}

/// A UDP socket on loopback that waits at most `wait` for each datagram.
fn client(wait: Duration) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    socket.set_read_timeout(Some(wait)).expect("read timeout");
    socket
}

#[test]
fn serve_runs_no_raw_udp_echo_unless_asked() {
    let (_server, fields) = serve(&["--tcp", "127.0.0.1:0"]);
    let keys: Vec<&str> = fields.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["tcp", "raw"], "{fields:?}");
    // Nothing answers on the raw TCP echo's port number over UDP either (where the UDP echo
    // used to listen by default).
    let raw = field(&fields, "raw").expect("raw=");
    let socket = client(Duration::from_millis(300));
    socket.send_to(b"anyone?", raw).expect("send");
    let mut buf = [0u8; 64];
    let answer = socket.recv_from(&mut buf);
    assert!(answer.is_err(), "something echoed on {raw}: {answer:?}");
}

#[test]
fn serve_raw_udp_echoes_datagrams_when_asked() {
    let (_server, fields) = serve(&["--tcp", "127.0.0.1:0", "--raw-udp", "127.0.0.1:0"]);
    let keys: Vec<&str> = fields.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["tcp", "raw", "raw-udp"], "{fields:?}");
    let echo = field(&fields, "raw-udp").expect("raw-udp=");
    assert_ne!(echo.port(), 0);
    let socket = client(Duration::from_secs(1));
    let mut buf = [0u8; 64];
    // Loopback rarely drops a datagram, but may: three tries, a second each.
    let echoed = (0..3).find_map(|try_| {
        let datagram = format!("echo me {try_}");
        socket.send_to(datagram.as_bytes(), echo).expect("send");
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        assert_eq!(from, echo);
        Some((buf[..n].to_vec(), datagram))
    });
    let (answer, sent) = echoed.expect("no echo in three tries");
    assert_eq!(answer, sent.as_bytes());
}
