//! A channel with UDP used by many runtimes in turn (a static shared by many `#[tokio::test]`
//! functions): each runtime's calls go over UDP on a client of its own
//! (`client/udp_side.rs`), and the clients of runtimes that ended are let go, their sockets
//! closed. The channel kept every one before (and stopped using UDP after 64 runtimes).

use super::slow::{Options, SlowServer};
use super::support::{on_runtime, serving, Flavor};
use super::unary_in_flight::echo;
use sockrpc::{Channel, Endpoint};

/// Runtimes in turn: past the 64 UDP clients a channel used to make.
const TURNS: usize = 80;

/// Descriptors this process has open (Linux).
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// What the test prints once it counted (the proof that it ran).
const COUNTED: &str = "descriptors open: ";

#[test]
fn every_runtime_in_turn_calls_over_udp_and_ended_ones_leave_no_socket() {
    // It counts this process's descriptors: under `cargo test` the binary's other tests open
    // and close theirs meanwhile (dozens for a balanced channel's servers), so it runs in a
    // process of its own, and here only checks that it passed there.
    let name = sockrpc_tests::child::test_name(
        module_path!(),
        "every_runtime_in_turn_calls_over_udp_and_ended_ones_leave_no_socket",
    );
    if !sockrpc_tests::child::alone(&name, COUNTED) {
        return;
    }
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options {
        tls: None,
        udp: true,
    }));
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .udp(server.udp.expect("UDP"));
    let channel = Channel::lazy(endpoint).expect("channel");
    let mut before = None;
    for turn in 0..TURNS {
        let over_udp = on_runtime(Flavor::Current, &format!("turn {turn}"), || async {
            let answer = echo(&channel, turn as u64).await;
            assert_eq!(answer.ok(), Some(turn as u64), "turn {turn}");
            channel.udp_stats().map(|stats| stats.replies)
        });
        assert_eq!(
            over_udp,
            Some(1),
            "turn {turn}: answered over UDP, on its own client"
        );
        if turn == 0 {
            before = Some(open_descriptors());
        }
    }
    // Each runtime left a socket behind before (one per turn); a few come and go with the
    // turns (the stream's connection, made again on each runtime): a margin well under one
    // per turn.
    let after = open_descriptors();
    eprintln!("{COUNTED}{after} after the last turn, {before:?} after the first");
    let grown = after.saturating_sub(before.unwrap_or(0));
    assert!(
        grown < TURNS / 2,
        "{grown} more descriptors open after {TURNS} runtimes"
    );
    drop(channel);
    drop(server);
    drop(serving);
}
