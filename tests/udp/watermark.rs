//! Watermarks: a client tells the server which calls it is done with, so the reply cache holds
//! about the calls in flight instead of `ttl` × the call rate, and late duplicates are refused.

use crate::at_most_once::HandBuilt;
use crate::support::{dropping_proxy, eventually, BOUND, ECHO, SLEEP};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{
    ReplyCacheConfig, UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig,
};
use sockrpc::{MetadataMap, Request};
use sockrpc_tests::echo::{EchoReply, EchoRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

fn echo(id: u64) -> Request<Bytes> {
    Request::new(Bytes::from(
        EchoRequest {
            payload: Bytes::from(id.to_be_bytes().to_vec()),
            id,
        }
        .encode_to_vec(),
    ))
}

async fn call_ok(client: &UdpClient, id: u64) {
    let deadline = Some(Instant::now() + BOUND);
    match client.call(&ECHO, &echo(id), deadline).await {
        UdpOutcome::Reply(Ok(response)) => {
            let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
            assert_eq!(reply.id, id);
        }
        other => panic!("call {id}: {other:?}"),
    }
}

/// With a reply cache of 16 entries, 1,000 sequential calls and 20 bursts of 12 concurrent
/// ones all run over UDP, once each, and the cache never fills: every REQUEST's watermark lets
/// the server drop the answers the client already has. (Without watermarks the 17th call would
/// be refused until the first answer's 30 s ttl passed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_reply_cache_serves_a_long_run_of_calls() {
    const MAX_ENTRIES: usize = 16;
    let mut cache = ReplyCacheConfig::default();
    cache.max_entries = MAX_ENTRIES;
    let server = HandBuilt::start(UdpServerConfig::default(), cache).await;
    let client = UdpClient::connect(server.addr, UdpClientConfig::default())
        .await
        .expect("client");
    let mut next = 0u64;
    for _ in 0..1_000 {
        call_ok(&client, next).await;
        next += 1;
    }
    for _ in 0..20 {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let client = client.clone();
            let id = next;
            next += 1;
            burst.spawn(async move { call_ok(&client, id).await });
        }
        while let Some(done) = tokio::time::timeout(BOUND, burst.join_next())
            .await
            .expect("a burst ends")
        {
            done.expect("call task");
        }
    }
    let counters = server.counters();
    assert_eq!(counters.cache_full, 0, "{counters:?}");
    assert!(
        server.cache.len() <= MAX_ENTRIES,
        "{} answers kept",
        server.cache.len()
    );
    let runs = server.handlers.runs();
    assert_eq!(runs.len() as u64, next, "every call ran");
    assert!(runs.values().all(|&n| n == 1), "and ran once");
    assert_eq!(client.stats().calls, next);
    server.shutdown().await;
}

/// After the client moved its watermark past a call, a copy of that call's REQUEST (a late
/// duplicate from the network) is dropped unrun, even though its answer is no longer cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_duplicate_below_the_watermark_never_runs() {
    let server = HandBuilt::start(UdpServerConfig::default(), ReplyCacheConfig::default()).await;
    let client = UdpClient::connect(server.addr, UdpClientConfig::default())
        .await
        .expect("client");
    // Ids 1..=50 on the wire; each REQUEST after the first moves the mark past the one before.
    for id in 0..50 {
        call_ok(&client, id).await;
    }
    assert!(
        server.cache.len() <= 2,
        "{} answers kept",
        server.cache.len()
    );

    // A copy of call 10 (request id 9), as the network might deliver it late.
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: client.instance(),
        call_id: 10,
        cookie: [0; COOKIE_LEN],
    };
    let mut late = BytesMut::new();
    datagram::encode_request(
        &mut late,
        &header,
        None,
        None,
        &ECHO,
        &MetadataMap::new(),
        &echo(9).into_inner(),
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(&late, server.addr).await.expect("send");
    let waited = Instant::now() + BOUND;
    while server.counters().stale == 0 && Instant::now() < waited {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let counters = server.counters();
    assert_eq!(counters.stale, 1, "{counters:?}");
    assert_eq!(server.handlers.runs().get(&9), Some(&1), "call 10 ran once");
    server.shutdown().await;
}

/// A call that takes long holds its client's watermark back while later calls finish; when it
/// ends, the mark jumps past all of them in one REQUEST. Five rounds of a call held in its
/// handler while 1,000 others run, through a reply cache of 1,500 entries: none is refused, and
/// the answers the jumps passed over are gone a few calls later. (When a jump dropped at most
/// 256 answers and left the rest to the 30 s ttl, 745 of each round's stayed: at 100 k calls/s
/// with occasional loss, that filled a 64 MiB cache in seconds, and a full cache refused every
/// UDP client's calls for 30 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stragglers_leave_no_answers_behind() {
    const LATER: u64 = 1_000;
    let mut cache = ReplyCacheConfig::default();
    cache.max_entries = 1_500;
    let server = HandBuilt::start(UdpServerConfig::default(), cache).await;
    let client = UdpClient::connect(server.addr, UdpClientConfig::default())
        .await
        .expect("client");
    let sleep = Request::new(Bytes::from(SleepRequest::default().encode_to_vec()));
    let mut next = 0u64;
    for round in 1..=5u64 {
        let straggler = {
            let (client, sleep) = (client.clone(), sleep.clone());
            tokio::spawn(async move {
                let deadline = Some(Instant::now() + BOUND);
                client.call(&SLEEP, &sleep, deadline).await
            })
        };
        eventually("the straggler runs", || server.handlers.held() == round).await;
        for _ in 0..LATER {
            call_ok(&client, next).await;
            next += 1;
        }
        assert!(
            server.cache.len() >= LATER as usize,
            "held behind the straggler: {} answers kept",
            server.cache.len()
        );
        server.handlers.release();
        let outcome = tokio::time::timeout(BOUND, straggler)
            .await
            .expect("the straggler ends")
            .expect("task");
        assert!(matches!(outcome, UdpOutcome::Reply(Ok(_))), "{outcome:?}");
        for _ in 0..8 {
            call_ok(&client, next).await;
            next += 1;
        }
        assert!(
            server.cache.len() <= 4,
            "round {round}: {} answers left behind by the jump",
            server.cache.len()
        );
    }
    let counters = server.counters();
    assert_eq!(counters.cache_full, 0, "{counters:?}");
    server.shutdown().await;
}

/// A UDP proxy that forwards everything but the first REPLY to call `call_id`.
async fn drop_first_reply_to(
    server: SocketAddr,
    call_id: u32,
) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let mut dropped = false;
    dropping_proxy(server, move |datagram| {
        let lost = !dropped
            && Header::parse(datagram).is_ok_and(|h| h.kind == Kind::Reply && h.call_id == call_id);
        dropped |= lost;
        lost
    })
    .await
}

/// A call whose answer was lost, with a 30 s RTO ahead of it, is retransmitted as soon as
/// the calls after it show it lost: once half the window is used, by an answer to a call started
/// more than a reordering window after it (RACK), or else when the window is full, by the call
/// that finds it full (and goes `NotSuitable`). Either way it retransmits once, early
/// (`hurried`), and is answered long before its RTO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_retransmitted_before_its_rto() {
    const WINDOW: usize = 8;
    let server = HandBuilt::start(UdpServerConfig::default(), ReplyCacheConfig::default()).await;
    // Wire ids count from 1: the first call below is 1, the one that loses its answer 2.
    let (proxy, dropped, proxy_task) = drop_first_reply_to(server.addr, 2).await;
    let mut config = UdpClientConfig::default();
    config.initial_rto = Duration::from_secs(30);
    config.min_rto = Duration::from_secs(30);
    config.max_rto = Duration::from_secs(60);
    config.max_window = WINDOW;
    let client = UdpClient::connect(proxy, config).await.expect("client");
    call_ok(&client, 0).await;

    let lost = {
        let client = client.clone();
        tokio::spawn(async move {
            let deadline = Some(Instant::now() + Duration::from_secs(20));
            client.call(&ECHO, &echo(1), deadline).await
        })
    };
    eventually("the answer is lost", || dropped.load(Ordering::SeqCst) == 1).await;
    // Later calls, until the window behind the lost call is full (the last may find it so).
    let mut not_sent = 0;
    for id in 2..=WINDOW as u64 + 1 {
        let deadline = Some(Instant::now() + BOUND);
        match client.call(&ECHO, &echo(id), deadline).await {
            UdpOutcome::Reply(Ok(_)) => {}
            UdpOutcome::NotSuitable => not_sent += 1,
            other => panic!("call {id}: {other:?}"),
        }
    }
    assert!(not_sent <= 1, "only a full window refuses: {not_sent}");
    let outcome = tokio::time::timeout(BOUND, lost)
        .await
        .expect("answered long before its RTO")
        .expect("task");
    match outcome {
        UdpOutcome::Reply(Ok(response)) => {
            let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
            assert_eq!(reply.id, 1);
        }
        other => panic!("{other:?}"),
    }
    let stats = client.stats();
    assert_eq!(stats.hurried, 1, "{stats:?}");
    assert_eq!(stats.retransmits, 1, "{stats:?}");
    assert_eq!(stats.window_full, not_sent, "{stats:?}");
    assert_eq!(server.handlers.runs().get(&1), Some(&1), "ran once");
    proxy_task.abort();
    server.shutdown().await;
}
