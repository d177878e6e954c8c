//! Spoofed sources against a verified client: many addresses that never complete the cookie
//! exchange (so may be forged) flood the server with calls, and a client that did complete it
//! keeps its UDP service. Unverified sources share one small pool of the reply cache and of the
//! calls in flight (`ReplyCacheConfig::max_unverified_entries`,
//! `UdpServerConfig::max_unverified_in_flight`), as DNS cookies and QUIC address validation
//! keep what an unvalidated address may cost; before that pool, eight forged /32s filled the
//! cache (or every call slot) and every client's UDP calls were refused and went over TCP.

use crate::at_most_once::HandBuilt;
use crate::in_flight_share::held_call_of;
use crate::support::{eventually, raw_echo_request, request, ECHO};
use bytes::Bytes;
use sockrpc::service::udp::datagram::COOKIE_LEN;
use sockrpc::service::udp::{
    ReplyCacheConfig, UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig,
};
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Forged-looking sources: 127.0.0.2 ..= 127.0.0.(1 + `count`), each bound with port 0.
async fn sources(count: u8, server: SocketAddr) -> Vec<UdpSocket> {
    let mut sockets = Vec::new();
    for n in 2..2 + count {
        let socket = UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, n), 0))
            .await
            .expect("bind 127.0.0.n");
        socket.connect(server).await.expect("connect");
        sockets.push(socket);
    }
    sockets
}

/// A verified client (its cookie exchange done by a first call) from 127.0.0.1.
async fn verified_client(server: SocketAddr) -> UdpClient {
    let client = UdpClient::connect(server, UdpClientConfig::default())
        .await
        .expect("client");
    // One call: the client holds one entry in the cache when the flood comes.
    let call = request(&EchoRequest {
        payload: Bytes::from_static(b"first"),
        id: 0,
    });
    let deadline = Some(Instant::now() + Duration::from_secs(5));
    match client.call(&ECHO, &call, deadline).await {
        UdpOutcome::Reply(Ok(_)) => {}
        other => panic!("the verified client's first call: {other:?}"),
    }
    assert_eq!(client.stats().cookie_requests, 1);
    client
}

/// `rounds` rounds of 16 echo calls of `client` at once, each answered over UDP: none refused,
/// none sent to TCP. (At once, because one call at a time frees its own entry before the next:
/// its watermark acks the answer before, so a full cache still takes it.)
async fn calls_succeed_over_udp(client: &UdpClient, rounds: u64) {
    for round in 0..rounds {
        let calls = (0..16u64).map(|n| async move {
            let call = request(&EchoRequest {
                payload: Bytes::from_static(b"verified"),
                id: round * 16 + n,
            });
            let deadline = Some(Instant::now() + Duration::from_secs(5));
            (n, client.call(&ECHO, &call, deadline).await)
        });
        for (n, outcome) in futures_util::future::join_all(calls).await {
            match outcome {
                UdpOutcome::Reply(Ok(_)) => {}
                other => panic!("call {n} of round {round} of the verified client: {other:?}"),
            }
        }
    }
    let stats = client.stats();
    assert_eq!(stats.refused, 0, "{stats:?}");
    assert_eq!(stats.fallbacks, 0, "{stats:?}");
    assert_eq!(stats.not_suitable, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_sources_cannot_fill_the_reply_cache_for_a_verified_client() {
    const SOURCES: u8 = 16;
    const PER_SOURCE: u64 = 8;
    let mut cache = ReplyCacheConfig::default();
    cache.max_entries = 64;
    cache.max_entries_per_source = 16;
    cache.max_unverified_entries = 16;
    let server = HandBuilt::start(UdpServerConfig::default(), cache).await;
    let client = verified_client(server.addr).await;

    // 16 sources × 8 calls, each a new client instance with no cookie and no watermark: twice
    // what the whole cache holds, each source within its own share.
    let flooders = sources(SOURCES, server.addr).await;
    let mut instance = 0x5000;
    for socket in &flooders {
        for _ in 0..PER_SOURCE {
            instance += 1;
            socket
                .send(&raw_echo_request(instance, 1, 0))
                .await
                .expect("send");
        }
    }
    let flood = u64::from(SOURCES) * PER_SOURCE;
    eventually("every flooded request handled", || {
        // The verified client's first call, and the flood.
        server.counters().requests > flood
    })
    .await;

    calls_succeed_over_udp(&client, 4).await;
    let after = server.counters();
    assert_eq!(after.cache_full, 0, "{after:?}");
    assert_eq!(
        after.unverified_refused,
        flood - 16,
        "only the pool ran: {after:?}"
    );
    assert!(server.cache.len() <= 16 + 16, "{after:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_sources_cannot_take_every_call_slot_from_a_verified_client() {
    const SOURCES: u8 = 8;
    const PER_SOURCE: u32 = 4;
    let mut config = UdpServerConfig::default();
    config.max_in_flight = 16;
    config.max_in_flight_per_source = PER_SOURCE as usize;
    config.max_unverified_in_flight = 4;
    let server = HandBuilt::start(config, ReplyCacheConfig::default()).await;
    let client = verified_client(server.addr).await;

    // 8 sources × 4 calls that never end, without a cookie: twice the server's slots.
    let flooders = sources(SOURCES, server.addr).await;
    let mut instance = 0x6000;
    for socket in &flooders {
        instance += 1;
        for call_id in 1..=PER_SOURCE {
            socket
                .send(&held_call_of(instance, call_id, [0; COOKIE_LEN]))
                .await
                .expect("send");
        }
    }
    let flood = u64::from(SOURCES) * u64::from(PER_SOURCE);
    eventually("every flooded request handled", || {
        // The verified client's first call, and the flood.
        server.counters().requests > flood
    })
    .await;

    calls_succeed_over_udp(&client, 4).await;
    let after = server.counters();
    assert_eq!(after.overloaded, 0, "{after:?}");
    assert_eq!(server.handlers.held(), 4, "only the pool runs: {after:?}");
    assert_eq!(after.unverified_refused, flood - 4, "{after:?}");
    for _ in 0..server.handlers.held() {
        server.handlers.release();
    }
    server.shutdown().await;
}

/// A verified client whose cookie goes stale while unverified sources hold their whole pool:
/// its next call is unverified, refused (the pool is full), and the refusal, no larger than the
/// request, comes as TRUNCATED with FITS and the fresh cookie; the client sends the call again at
/// once with it, and the call runs over UDP. (The cookie's clock is the wall clock: this test
/// waits two cookie lifetimes of 1 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_cookie_went_stale_gets_through_a_full_unverified_pool() {
    const POOL: u64 = 4;
    let mut config = UdpServerConfig::default();
    config.cookie_lifetime = Duration::from_secs(1);
    let mut cache = ReplyCacheConfig::default();
    cache.max_unverified_entries = POOL as usize;
    let server = HandBuilt::start(config, cache).await;
    let client = verified_client(server.addr).await;
    let flooders = sources(2, server.addr).await;
    for (n, socket) in flooders.iter().enumerate() {
        for call in 0..POOL {
            let instance = 0x7000 + n as u64 * 100 + call;
            socket
                .send(&raw_echo_request(instance, 1, 0))
                .await
                .expect("send");
        }
    }
    eventually("the pool full", || {
        server.counters().unverified_refused >= POOL
    })
    .await;
    // Two lifetimes: the client's cookie is no longer valid.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = server.counters();
    // 16 calls at once: those sent before the fresh cookie came carry the stale one.
    calls_succeed_over_udp(&client, 1).await;
    let after = server.counters();
    assert_eq!(client.stats().cookie_refreshes, 1, "{:?}", client.stats());
    let refused = after.unverified_refused - before.unverified_refused;
    assert!(
        (1..=16).contains(&refused),
        "each stale call was refused once, then ran verified: {after:?}"
    );
    server.shutdown().await;
}
