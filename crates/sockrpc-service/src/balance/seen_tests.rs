//! The connection the driver's upkeep notes for a member it finds connected
//! (`Reconnect::seen_connected`) is the one that made it connected: live and past its
//! handshake. It was the first of the pool's connections not closed, which in a pool with
//! several slots may be one still waiting for the server's preface (and never closing); and
//! when the connection closed between the upkeep's look (`Member::is_connected`) and the note,
//! nothing was noted, which counted as the same connection: connections that each lasted a
//! moment added up to the time that proves a server ([`PROVEN_AFTER`]), the backoff started
//! over and the failure was cleared. The schedules are set by hand, on real connections over
//! loopback, as those windows cannot be hit on demand.

use super::health_tests::hello_server;
use super::member::Member;
use super::reconnect::PROVEN_AFTER;
use crate::Channel;
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_transport::endpoint::Endpoint;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a step over loopback may take.
const BOUND: Duration = Duration::from_secs(10);

/// A server by hand on loopback whose first connection never hears a word (its handshake never
/// completes, and it stays open), and whose others do, as `hello_server`'s.
async fn silent_first_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            let silent = std::mem::take(&mut first);
            tokio::spawn(async move {
                if !silent {
                    let mut hello = BytesMut::new();
                    hello.extend_from_slice(&PREFACE);
                    frame::encode_settings(&mut hello, 0, 100);
                    if socket.write_all(&hello).await.is_err() {
                        return;
                    }
                }
                let mut sink = vec![0u8; 16 * 1024];
                while matches!(socket.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A channel to `endpoint`, connected past its handshake.
async fn connected(endpoint: &Endpoint) -> Channel {
    let channel = tokio::time::timeout(BOUND, Channel::connect(endpoint.clone()))
        .await
        .expect("connected in time")
        .expect("connected");
    tokio::time::timeout(BOUND, channel.connection_up())
        .await
        .expect("handshaken in time");
    channel
}

/// A member over `channel`, its backoff grown by a failed attempt: the upkeep judges what it
/// finds up.
fn failed_member(endpoint: &Endpoint, channel: &Channel) -> Member {
    let member = Member::new(
        "member".to_owned(),
        endpoint.clone(),
        1,
        Duration::from_secs(1),
    );
    let _ = member.set_channel(channel.clone());
    member.reconnect().failed(endpoint.backoff);
    member.connect_failed("refused".to_owned());
    member
}

#[tokio::test]
async fn the_connection_noted_is_the_live_one_past_its_handshake() {
    let endpoint = Endpoint::new("127.0.0.1", silent_first_server().await).pool_size(2);
    // Slot 0: the silent connection; slot 1: the one up (the pool fills its slots in order).
    let channel = connected(&endpoint).await;
    let conns = channel.connections();
    assert_eq!(conns.len(), 2, "both slots filled");
    assert!(
        !conns[0].is_handshaken() && conns[1].is_handshaken(),
        "slot 0 waits for its preface, slot 1 is up"
    );
    let member = failed_member(&endpoint, &channel);
    tokio::time::pause();
    assert!(member.is_connected());
    member.seen_connected();
    // The connection up goes at once, as a flapping server's do; the silent one stays open.
    conns[1].close();
    tokio::time::advance(PROVEN_AFTER).await;
    member.seen_connected();
    assert!(
        member.reconnect().grown(),
        "a connection that never completed its handshake, noted in place of the one up, \
         proved the server"
    );
}

#[tokio::test]
async fn a_connection_closed_before_the_note_is_not_taken_for_the_next_one() {
    let endpoint = Endpoint::new("127.0.0.1", hello_server().await);
    let first = connected(&endpoint).await;
    let second = connected(&endpoint).await;
    let member = failed_member(&endpoint, &first);
    tokio::time::pause();
    member.seen_connected();
    // The upkeep finds the member connected, then its connection closes before the note.
    let conn = first
        .connections()
        .into_iter()
        .next()
        .expect("a connection");
    conn.close();
    member.seen_connected();
    // A while later the next connection is up (the pool's own, or as here another channel
    // set), and it is up for less than the proof when the upkeep looks again.
    tokio::time::advance(PROVEN_AFTER / 2 + Duration::from_secs(1)).await;
    let _ = member.set_channel(second.clone());
    member.seen_connected();
    tokio::time::advance(PROVEN_AFTER / 2).await;
    member.seen_connected();
    assert!(
        member.reconnect().grown(),
        "two connections, up for no time and for {:?}, proved the server",
        PROVEN_AFTER / 2
    );
}
