//! `sockrpc serve` children: started with their first line read on a thread (waited for, at
//! most 30 s), the addresses that line lists, a clean stop with SIGTERM, and a kill whenever
//! the test ends first; and a loopback address that refuses connections.

use super::run::{send_signal, sockrpc};
use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// The first line a server child prints, waited for at most 30 s.
pub fn first_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the server printed no line within 30 s")
}

/// The value of `KEY=` in a `serve` child's first line (`listening tcp=… raw=…`).
pub fn listed<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
}

/// The address `KEY=` names in a `serve` child's first line; the test fails without one.
pub fn listed_addr(line: &str, key: &str) -> SocketAddr {
    listed(line, key)
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .expect("address")
}

/// The sockrpc address a `serve` child's first line names (`tcp=IP:PORT`).
pub fn tcp_addr(line: &str) -> SocketAddr {
    listed_addr(line, "tcp")
}

/// Every `key=value` of a `serve` child's first line, in order, the line checked to be
/// `listening` and then nothing but `key=value` words.
pub fn listening(line: &str) -> Vec<(String, String)> {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("listening"), "{line:?}");
    words
        .map(|word| {
            let (key, value) = word
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value: {word:?} in {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Sends each line `pipe` gives on the returned channel as it comes, from a thread of its own
/// that drains the pipe to its end.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = line_tx.send(line);
        }
    });
    line_rx
}

/// Spawns `command` as a server with its stderr piped (`log`) or discarded: the child, and
/// its stdout and stderr lines as they come.
fn spawn(
    command: &mut Command,
    log: bool,
) -> (
    Server,
    mpsc::Receiver<String>,
    Option<mpsc::Receiver<String>>,
) {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if log { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .expect("spawn server");
    let mut server = Server(child);
    let stdout = lines_of(server.0.stdout.take().expect("stdout"));
    let stderr = server.0.stderr.take().map(lines_of);
    (server, stdout, stderr)
}

/// Spawns `command` as a server; its stdout lines (the first with [`first_line`]) come on the
/// channel.
pub fn spawn_server(command: &mut Command) -> (Server, mpsc::Receiver<String>) {
    let (server, stdout, _) = spawn(command, false);
    (server, stdout)
}

/// Spawns `command` as a server whose log the test reads: the child, its first stdout line
/// (waited for at most 30 s), and its stderr lines as they come.
pub fn spawn_logging_server(command: &mut Command) -> (Server, String, mpsc::Receiver<String>) {
    let (server, stdout, stderr) = spawn(command, true);
    let stderr = stderr.unwrap_or_else(|| unreachable!("stderr is piped"));
    (server, first_line(&stdout), stderr)
}

/// `sockrpc serve ARGS`, started and its first line read: the child and that line.
pub fn serve(args: &[&str]) -> (Server, String) {
    let (server, lines) = spawn_server(sockrpc().arg("serve").args(args));
    (server, first_line(&lines))
}

/// Kills the server if the test fails before stopping it.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks the server to stop with SIGTERM and waits (bounded) for a clean exit.
#[cfg(unix)]
pub fn terminate(server: &mut Server) {
    if !send_signal(server.0.id(), "-TERM") {
        // No `kill` binary here: the clean stop cannot be checked, only the cleanup done.
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            assert!(status.success(), "serve exited with {status} on SIGTERM");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within 30 s of SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback TCP address that refuses connections for as long as this lives: a socket bound
/// to it that never listens (a connect gets a RST: `ECONNREFUSED`). No other socket can bind
/// the port meanwhile, so neither another test's server nor a `sockrpc serve` this test starts
/// on port 0 can answer there, as they could on a port bound, read and dropped. Needs no
/// runtime.
pub struct Refused {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl Refused {
    /// A refused address on `127.0.0.1`, on a port the kernel picks.
    pub fn loopback() -> Refused {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(([127, 0, 0, 1], 0).into())
            .expect("bind a socket that never listens");
        let addr = socket.local_addr().expect("local address");
        Refused {
            _socket: socket,
            addr,
        }
    }

    /// The address, refused while `self` lives.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
