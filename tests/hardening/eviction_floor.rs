//! Attacks on eviction at the connection cap (`crates/sockrpc-transport/src/server/
//! handshakes.rs`, `evict.rs`): the floor an attacker raises must come down for every client
//! that is established, however its preface arrives; a connection closing politely before its
//! preface must not hold a slot it was evicted from; the slots stay exact under long churn; and
//! a call on an evicted connection goes again. Real sockets, tokio's paused clock.

use crate::evicted::{assert_told_evicted, call_through, capped_server, delaying_proxy, quiet};
use crate::raw::GOAWAY;
use crate::service::HardEcho;
use crate::support::{bounded, Running};
use crate::wire::{goaway_of, ping, RawConn, PONG, RESOURCE_EXHAUSTED};
use sockrpc::Server;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::collections::VecDeque;
use std::time::Duration;

/// Longer than the floor ever grows (1.6 s): a connection this old is always evictable.
const OLD: Duration = Duration::from_secs(2);

/// `conn` was evicted: a GOAWAY (last call id 0, UNAVAILABLE, the connection limit named), then
/// the close.
async fn assert_evicted(conn: &mut RawConn, what: &str) {
    let (frames, _) = conn.until_closed(what).await;
    assert_told_evicted(&frames, what);
}

/// `conn` (its preface sent) is served: a PING comes back as a PONG, not a refusal.
async fn assert_served(conn: &mut RawConn, payload: u64, what: &str) {
    conn.send(&ping(payload)).await;
    let frame = conn.next_frame(what).await;
    assert_eq!(
        frame.kind,
        PONG,
        "{what}: not served: {:?}",
        (frame.kind == GOAWAY).then(|| goaway_of(&frame))
    );
}

/// An attacker raises the floor to 1.6 s (4 caps' worth of evictions, none established), then a
/// client whose preface comes alone (no frame after it in the same read: an idle client, a raw
/// one, a preface split from its first frame) is established. That must halve the floor, as
/// the module docs promise. It used to leave the set without counting (`deadlines.rs` dropped
/// its ticket), so the floor stayed at 1.6 s for as long as only such clients got in: here a
/// stalled connection 1.2 s old (past 800 ms) could not be evicted and the newcomer was refused.
#[tokio::test(start_paused = true)]
async fn a_client_whose_preface_comes_alone_brings_the_raised_floor_down() {
    let _warnings = quiet();
    const CAP: usize = 2;
    let server = capped_server(CAP);
    let mut stalled = VecDeque::new();
    for _ in 0..CAP {
        stalled.push_back(RawConn::connect_silent(server.addr).await);
    }
    for round in 0..4 * CAP {
        tokio::time::sleep(OLD).await;
        stalled.push_back(RawConn::connect_silent(server.addr).await);
        let mut oldest = stalled.pop_front().expect("one stalled");
        assert_evicted(&mut oldest, &format!("stalled connection, round {round}")).await;
    }
    // The floor is at 1.6 s. A real client's preface, alone, 2 s later: it evicts the oldest
    // and is established (its PING, a read later, answered).
    tokio::time::sleep(OLD).await;
    let mut client = RawConn::connect(server.addr).await;
    let mut oldest = stalled.pop_front().expect("one stalled");
    assert_evicted(&mut oldest, "the stalled connection the client replaced").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_served(&mut client, 1, "the client").await;
    // The other stalled connection is old; a fresh one takes its place.
    let mut young = RawConn::connect_silent(server.addr).await;
    let mut oldest = stalled.pop_front().expect("one stalled");
    assert_evicted(&mut oldest, "the last old stalled connection").await;
    // 1.2 s on: past the halved floor (800 ms), short of 1.6 s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut newcomer = RawConn::connect(server.addr).await;
    assert_served(&mut newcomer, 2, "a newcomer once the floor came down").await;
    assert_evicted(&mut young, "the stalled connection past the halved floor").await;
    drop((client, newcomer));
    server.stop().await;
}

/// With an idle timeout shorter than the handshake's, a connection that never sent its preface
/// is closed politely (GOAWAY, FIN, up to 1 s reading what the client still sends). Evicted
/// then, it used to ignore the eviction until its linger ended: the accept loop waited 100 ms,
/// aborted it, and refused the newcomer that room was made for.
#[tokio::test(start_paused = true)]
async fn a_connection_lingering_before_its_preface_gives_up_its_slot_when_evicted() {
    let _warnings = quiet();
    let server = Running::start(
        Server::builder()
            .max_connections(1)
            .handshake_timeout(Duration::from_secs(60))
            .idle_timeout(Some(Duration::from_secs(1)))
            .add_service(EchoServer::new(HardEcho::default())),
    );
    let mut silent = RawConn::connect_silent(server.addr).await;
    // Its idle timeout at 1 s; it lingers until 2 s (it neither reads nor closes).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut newcomer = RawConn::connect(server.addr).await;
    assert_served(&mut newcomer, 1, "the newcomer").await;
    let (frames, _) = silent.until_closed("the lingering connection").await;
    assert!(frames.iter().any(|f| f.kind == GOAWAY), "{frames:?}");
    drop(newcomer);
    server.stop().await;
}

/// The slots stay exact under churn: 1,000 rounds of stalled connections evicted, clients that
/// close before their preface, and clients established then gone; afterwards exactly `CAP`
/// clients are established at once and the next is refused (a slot leaked would refuse one of
/// the `CAP`; a slot released twice would let the next in).
#[tokio::test(start_paused = true)]
async fn after_a_thousand_evictions_and_closes_exactly_the_cap_is_served() {
    let _warnings = quiet();
    const CAP: usize = 4;
    const ROUNDS: u64 = 1_000;
    let server = capped_server(CAP);
    let mut stalled: VecDeque<RawConn> = VecDeque::new();
    let mut evictions = 0;
    for round in 0..ROUNDS {
        match round % 5 {
            // A client that gives up before its preface.
            4 => drop(stalled.pop_back()),
            kind => {
                // Old enough to evict at any floor, and the closes before seen by the server.
                tokio::time::sleep(OLD).await;
                let evicts = stalled.len() == CAP;
                if kind == 3 {
                    let mut client = RawConn::connect(server.addr).await;
                    assert_served(&mut client, round, "a client in the churn").await;
                } else {
                    stalled.push_back(RawConn::connect_silent(server.addr).await);
                }
                if evicts {
                    let mut oldest = stalled.pop_front().expect("one stalled");
                    assert_evicted(&mut oldest, &format!("round {round}")).await;
                    evictions += 1;
                }
            }
        }
    }
    assert!(evictions > 100, "only {evictions} evictions");
    drop(stalled);
    tokio::time::sleep(OLD).await;
    let mut clients = Vec::new();
    for n in 0..CAP as u64 {
        let mut client = RawConn::connect(server.addr).await;
        assert_served(&mut client, n, &format!("client {n} of the cap")).await;
        clients.push(client);
    }
    let mut past = RawConn::connect(server.addr).await;
    let (code, reason) = past.goaway_then_close("the client past the cap").await;
    assert_eq!(code, RESOURCE_EXHAUSTED, "{reason}");
    drop(clients);
    server.stop().await;
}

/// A call made on a connection evicted before the server read its preface goes again on a new
/// connection and succeeds (the GOAWAY's last call id 0 says it never ran). Cap 2: the client's
/// connection (its bytes held 300 ms by a proxy), then a silent one, then a newcomer that evicts
/// the client's; the retry evicts the silent one and is served.
#[tokio::test(start_paused = true)]
async fn a_call_on_an_evicted_connection_is_retried_and_served() {
    let _warnings = quiet();
    let server = capped_server(2);
    let mut proxy = delaying_proxy(server.addr, Duration::from_millis(300)).await;
    let call = tokio::spawn(call_through(proxy.addr, 7));
    // The order is the server's: the client's connection first, then 50 ms later the silent
    // one, 100 ms later the newcomer, all counted from when the proxy connected the client's.
    proxy.connected(1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let silent = RawConn::connect_silent(server.addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let newcomer = RawConn::connect_silent(server.addr).await;
    let served = bounded("the evicted client's call", call)
        .await
        .expect("call task");
    assert_eq!(served.map_err(|s| format!("{s:?}")), Ok(7));
    drop((silent, newcomer));
    server.stop().await;
}
