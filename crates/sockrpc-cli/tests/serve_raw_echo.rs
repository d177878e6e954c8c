//! `sockrpc serve` always runs the raw TCP echo (the floor of `sockrpc bench`) beside the
//! sockrpc service, in the same process, on a port of its own. A peer there must not be able to
//! make the process hold what it merely announces: unfinished frames are charged to a budget the
//! echo's connections share, and past it they wait instead of growing
//! (`crates/sockrpc-cli/src/raw_echo.rs`). Before that budget, 16 connections each sending 59 MiB
//! of a 60 MiB frame took the process from 7 to 951 MiB.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use support::*;

/// Connections, each announcing a 4 MiB frame (the echo's largest) and leaving it unfinished.
const CONNS: usize = 64;
const ANNOUNCED: u32 = 4 << 20;
const SENT: usize = (4 << 20) - (64 << 10);
/// What the server may hold for all of them: the echo's 64 MiB budget, its connections' base
/// buffers and slack, far less than the 252 MiB they try to send.
const BOUND_MIB: u64 = 112;

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("VmRSS")
        / 1024
}

#[test]

fn unfinished_frames_at_the_raw_echo_hold_bounded_memory() {
    let (mut server, lines) = spawn_server(sockrpc().args(["serve", "--workers", "1"]));
    let line = first_line(&lines);
    let raw: SocketAddr = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("raw="))
        .unwrap_or_else(|| panic!("no raw= in {line:?}"))
        .parse()
        .expect("address");
    let pid = server.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_mib(pid);
    let chunk = vec![b'r'; 1 << 20];
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        let mut stream = TcpStream::connect(raw).expect("connect");
        stream
            // Past the budget the echo stops reading: a write that blocks ends this sender.
            .set_write_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        stream.write_all(&ANNOUNCED.to_be_bytes()).expect("length");
        for _ in 0..SENT / chunk.len() {
            if stream.write_all(&chunk).is_err() {
                // Cut off: what a fixed echo may do.
                break;
            }
        }
        conns.push(stream);
    }
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_mib(pid);
    eprintln!("raw echo: RSS {before} -> {after} MiB with {CONNS} unfinished 4 MiB frames");
    assert!(
        after.saturating_sub(before) < BOUND_MIB,
        "the raw echo holds {} MiB for {CONNS} unfinished frames (bound {BOUND_MIB} MiB)",
        after - before
    );
    // Small frames need no budget: the echo still answers them while the budget is spent.
    let mut fresh = TcpStream::connect(raw).expect("connect");
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let frame = [0, 0, 0, 3, b'a', b'b', b'c'];
    fresh.write_all(&frame).expect("small frame");
    let mut back = [0u8; 7];
    fresh.read_exact(&mut back).expect("its echo");
    assert_eq!(back, frame);
    drop(conns);
    terminate(&mut server);
}
