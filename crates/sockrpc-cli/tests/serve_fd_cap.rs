//! `sockrpc serve` keeps its connection cap under its open-file limit: a client past the cap
//! gets the cap's GOAWAY and a closed connection (or, past the 64 refusals the server tells at
//! once, a connection closed at once), never silence in the listen backlog (where a cap at or
//! past the limit left it: `accept` fails with EMFILE first).

mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

/// The server's open-file limit, soft and hard: its cap is this less the 256 it keeps spare.
const NOFILE: usize = 320;
/// Connections opened: past the cap (64) and past what the limit would let it accept.
const CONNECTIONS: usize = 2 * NOFILE;

/// What one connection saw from the server within the wait.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Bytes, and the connection stays open: served.
    Served,
    /// Bytes, then the server closed it: refused at the cap.
    Refused,
    /// Served, then evicted at the cap for a newer connection, its handshake (here: its
    /// preface, never sent) not done: told with its own GOAWAY. Happens when connecting all of
    /// them takes longer than the eviction floor (a loaded machine).
    Evicted,
    /// Closed (or reset) without a byte: refused past the refusals the server tells at once.
    Closed,
    /// Nothing at all yet: left in the backlog.
    Nothing,
}

/// The eviction's GOAWAY message (`crates/sockrpc-transport/src/server/conn.rs`).
const EVICTED: &[u8] = b"before its handshake was done";

/// What `stream` has seen so far (it is non-blocking): bytes gathered in `got`.
fn look(stream: &mut TcpStream, got: &mut Vec<u8>) -> Seen {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) if got.windows(EVICTED.len()).any(|w| w == EVICTED) => return Seen::Evicted,
            Ok(0) if !got.is_empty() => return Seen::Refused,
            Ok(0) => return Seen::Closed,
            // Bounded: a served connection gets its preface, a refused one a GOAWAY more.
            Ok(n) if got.len() < 65_536 => got.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(err) if err.kind() != std::io::ErrorKind::WouldBlock => return Seen::Closed,
            Err(_) if !got.is_empty() => return Seen::Served,
            Err(_) => return Seen::Nothing,
        }
    }
}

#[test]
fn clients_past_the_connection_cap_are_told_never_left_waiting() {
    let program = sockrpc().get_program().to_owned();
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {NOFILE} && exec \"$0\" \"$@\""))
        .arg(program)
        .args(["serve", "--tcp", "127.0.0.1:0", "--workers", "1"]);
    let (_server, lines) = spawn_server(&mut command);
    let line = first_line(&lines);
    let addr: SocketAddr = tcp_addr(&line);
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {i}: {err}")))
        .collect();
    for stream in &streams {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    // Every client hears from the server at once (its preface); looked at again for up to 10 s.
    let mut got = vec![Vec::new(); CONNECTIONS];
    let mut seen = Vec::new();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        seen = streams
            .iter_mut()
            .zip(&mut got)
            .map(|(stream, got)| look(stream, got))
            .collect();
        if !seen.contains(&Seen::Nothing) {
            break;
        }
    }
    let count = |what: Seen| seen.iter().filter(|s| **s == what).count();
    let (served, refused, evicted, closed, nothing) = (
        count(Seen::Served),
        count(Seen::Refused),
        count(Seen::Evicted),
        count(Seen::Closed),
        count(Seen::Nothing),
    );
    eprintln!(
        "served {served}, refused {refused}, evicted {evicted}, closed {closed}, nothing {nothing}"
    );
    assert_eq!(nothing, 0, "{nothing} clients were told nothing");
    assert!(served > 0 && served <= NOFILE - 256, "served {served}");
    // At most 64 plain refusals are told at once (the rest are closed without a word); all
    // of these come at once, so at least one is told.
    assert!(refused > 0 && refused <= 64, "refused {refused}");
    assert_eq!(served + refused + evicted + closed, CONNECTIONS);
}
