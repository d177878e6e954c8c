//! `sockrpc serve`'s raw UDP echo: off unless `--raw-udp` asks for it, and then it echoes.
//!
//! That it never answers a datagram from its own address is tested beside the echo
//! (`raw::tests`), where the echo's socket can truly send a datagram to itself; from another
//! process the source of a datagram cannot be forged without raw sockets.

mod support;

use std::net::{SocketAddr, UdpSocket};
use support::{listening, serve, Duration};

/// Starts `sockrpc serve` with `args`; returns it with the `key=value` pairs of its first line.
fn serve_listing(args: &[&str]) -> (support::Server, Vec<(String, String)>) {
    let (server, line) = serve(args);
    (server, listening(&line))
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
    let (_server, fields) = serve_listing(&["--tcp", "127.0.0.1:0"]);
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
    let (_server, fields) = serve_listing(&["--tcp", "127.0.0.1:0", "--raw-udp", "127.0.0.1:0"]);
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
