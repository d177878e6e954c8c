//! Connections that never send their preface cannot lock real clients out: at the connection
//! cap, a new connection evicts the oldest one still waiting for its preface (closed, with a
//! WARN naming its peer and age) and takes its slot; established connections are never evicted,
//! so when they fill the cap a newcomer is refused as before.
//!
//! Before the fix every connection held its slot until the handshake timeout: 16 silent
//! connections (or an attacker reopening them as they timed out) kept every real client of a
//! server capped at 16 refused. The tests run on tokio's paused clock with a handshake timeout
//! of a minute, so a connection closed within the tests' bound (5 s) was evicted, not timed out.

use crate::raw::{concat, connect, frame, open, read_until_closed, read_while_open};
use crate::raw::{Closed, ECHO_PATH, END_STREAM, MESSAGE};
use crate::service::HardEcho;
use crate::support::{bounded, Running, Warnings};
use crate::wire::{end_code, RawConn, OK, RESOURCE_EXHAUSTED};
use prost::Message as _;
use sockrpc::{Code, Server};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The server's connection cap in these tests.
const CAP: usize = 16;

/// Long enough that no connection here is closed by the handshake timeout.
const HANDSHAKE: Duration = Duration::from_secs(60);

const EVICTED: &str = "evicted at the connection limit";

fn capped_server() -> Running {
    Running::start(
        Server::builder()
            .max_connections(CAP)
            .handshake_timeout(HANDSHAKE)
            .idle_timeout(None)
            .add_service(EchoServer::new(HardEcho::default())),
    )
}

/// One echo call on a fresh generated client (its own connection).
async fn fresh_call(addr: SocketAddr, id: u64) -> Result<u64, sockrpc::Status> {
    bounded("a fresh client's call", async {
        let mut client = EchoClient::connect(format!("tcp://{addr}")).await?;
        let request = EchoRequest {
            payload: Default::default(),
            id,
        };
        Ok(client.echo(request).await?.into_inner().id)
    })
    .await
}

/// One echo call on `conn`, a raw client connection, answered OK.
async fn raw_call(conn: &mut RawConn, call_id: u32, what: &str) {
    let request = EchoRequest::default().encode_to_vec();
    conn.send(&concat(&[
        &open(call_id, ECHO_PATH, &[]),
        &frame(MESSAGE, END_STREAM, call_id, &request),
    ]))
    .await;
    let frames = conn.call_until_end(call_id, what).await;
    assert_eq!(end_code(frames.last().expect("an END")), OK, "{what}");
}

#[tokio::test(start_paused = true)]
async fn connections_without_a_preface_are_evicted_oldest_first_for_real_clients() {
    let warnings = Warnings::capture();
    let server = capped_server();
    let started = Instant::now();
    // The cap's worth of connections that never send a byte.
    let mut stalled = Vec::new();
    for _ in 0..CAP {
        stalled.push(connect(server.addr).await);
    }
    // While they are young (under 100 ms: a real client's preface may be on its way), a
    // newcomer is refused as at the cap, and evicts none of them.
    let mut early = RawConn::connect(server.addr).await;
    let (frames, _) = early.until_closed("a client at the cap, all young").await;
    let goaway = frames.iter().find(|f| f.kind == crate::raw::GOAWAY);
    let (code, reason) = crate::wire::goaway_of(goaway.expect("refused with a GOAWAY"));
    assert_eq!(code, RESOURCE_EXHAUSTED, "{reason}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A real client is served: it took the oldest silent connection's slot.
    let mut real = RawConn::connect(server.addr).await;
    raw_call(&mut real, 1, "a real client's call at the cap").await;
    // Three more silent newcomers take the next three oldest slots, in order: the real
    // client's connection is established, not theirs to take.
    for _ in 0..3 {
        stalled.push(connect(server.addr).await);
    }
    for (i, stream) in stalled.iter_mut().take(4).enumerate() {
        let (_, closed) = read_until_closed(stream, &format!("silent connection {i}")).await;
        assert!(matches!(closed, Closed::Eof), "{i}: {closed:?}");
    }
    assert!(
        Instant::now() < started + HANDSHAKE,
        "evicted, not timed out"
    );
    // The younger ones are all still open (checked together: one period in all).
    let open_ones = stalled
        .iter_mut()
        .enumerate()
        .skip(4)
        .map(|(i, stream)| async move {
            read_while_open(stream, Duration::from_secs(1), &format!("silent {i}")).await
        });
    futures_util::future::join_all(open_ones).await;

    let evictions = warnings.lines_with(EVICTED);
    assert_eq!(
        evictions.len(),
        1,
        "one WARN, the rest at DEBUG: {evictions:#?}"
    );
    assert!(
        evictions[0].contains("WARN")
            && evictions[0].contains("peer=Some(127.0.0.1:")
            && evictions[0].contains("age="),
        "{evictions:?}"
    );
    raw_call(&mut real, 3, "the real client's next call").await;
    // Another real client (generated, on a connection of its own) gets in, as the first did.
    assert_eq!(
        fresh_call(server.addr, 3).await.expect("a second client"),
        3
    );
    drop(stalled);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn established_idle_connections_at_the_cap_are_never_evicted() {
    let warnings = Warnings::capture();
    let server = capped_server();
    // The cap's worth of established connections, each with a call answered, then idle.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        let mut conn = RawConn::connect(server.addr).await;
        raw_call(&mut conn, 1, "a call under the cap").await;
        idle.push(conn);
    }
    // Newcomers are refused as at the cap before, with the reason; more than once, and with
    // raw connections that never send a preface too: none of them evicts an established one.
    for id in 0..3 {
        let refused = fresh_call(server.addr, id)
            .await
            .expect_err("no slot, no call");
        assert!(
            matches!(refused.code(), Code::Unavailable | Code::ResourceExhausted),
            "{refused:?}"
        );
        assert!(
            refused.message().contains("connection limit"),
            "the client is told why: {refused:?}"
        );
        let mut silent = RawConn::connect_silent(server.addr).await;
        let _ = silent.until_closed("a silent newcomer at the cap").await;
    }
    // Every idle connection still works, on its own socket.
    for (i, conn) in idle.iter_mut().enumerate() {
        raw_call(conn, 3, &format!("idle connection {i}'s next call")).await;
    }
    assert!(warnings.lines_with(EVICTED).is_empty());
    drop(idle);
    server.stop().await;
}

/// An attacker opening silent connections in a loop (one every 10 ms, 400 in all, keeping each
/// open: more than the cap every 100 ms would be needed to keep clients out) while real clients call one after another on fresh connections: every
/// real call is served. Without eviction the first 16 held every slot for the handshake
/// timeout and each real client was refused.
#[tokio::test(start_paused = true)]
async fn real_calls_are_served_while_an_attacker_reconnects_in_a_loop() {
    let _warnings = crate::evicted::quiet();
    const ATTACKS: usize = 400;
    const CALLS: u64 = 40;
    let server = capped_server();
    let addr = server.addr;
    let (filled_tx, filled_rx) = tokio::sync::oneshot::channel();
    let attacker = tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        let mut filled = Some(filled_tx);
        for _ in 0..ATTACKS {
            held.push(connect(addr).await);
            if held.len() >= CAP {
                if let Some(filled) = filled.take() {
                    let _ = filled.send(());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        held.len()
    });
    bounded("the attacker filling the cap", filled_rx)
        .await
        .expect("attacker running");
    for id in 0..CALLS {
        assert_eq!(
            fresh_call(addr, id).await.unwrap_or_else(|status| panic!(
                "real call {id} refused while the attacker reconnects: {status:?}"
            )),
            id
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        bounded("the attacker's loop", attacker)
            .await
            .expect("attacker"),
        ATTACKS
    );
    // And on a raw connection: established, answered.
    let mut conn = RawConn::connect(addr).await;
    raw_call(&mut conn, 1, "a raw call after the attack").await;
    server.stop().await;
}
