//! A call whose endpoint's connection went away under it goes to an endpoint connected now,
//! without waiting for that endpoint to reconnect: grpc-go picks again when a picked
//! connection is no longer ready. It used to wait, in the endpoint's pool, for the reconnection
//! (up to the connect timeout, or the call's deadline) before trying another endpoint: with a
//! deadline shorter than the connect timeout, the call failed `DEADLINE_EXCEEDED` although
//! another endpoint was up all along; with a longer one, each endpoint tried could cost a
//! connect timeout.
//!
//! The first endpoint is a bare sockrpc speaker on a socket of the test's: it completes the
//! handshake, answers the first call with a GOAWAY that refuses it unstarted, and stalls every
//! later connection in its handshake (as a server that went away behind a load balancer that
//! still accepts). On tokio's paused clock, so the waits cannot be cut short by the machine.
//!
//! And a wait-for-ready call that meets no connection again and again (its endpoint's
//! connection cut each time it is picked) waits within its deadline, re-picking as its
//! endpoint reconnects: a call never sent is no attempt (grpc-go re-picks a call that never
//! reached a transport, without counting it, until the deadline). It used to fail `UNAVAILABLE`
//! after 3 such non-attempts (`BalanceBuilder::attempts`), its deadline far. Nor do such
//! failures count for outlier ejection: no server saw the call (they ejected an endpoint after
//! `OutlierConfig::consecutive_failures` of them, though its server had failed no call).

use super::counted::{Counted, Cutter};
use super::support::Server;
use sockrpc::protocol::frame::{encode_goaway, encode_settings, HEADER_LEN, PREFACE};
use sockrpc::service::balance::{BalanceBuilder, Members, OutlierConfig, Picker};
use sockrpc::service::discovery;
use sockrpc::{Call, Code};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The first usable endpoint in list order: the call meets the refusing endpoint first.
struct ListOrder;

impl Picker for ListOrder {
    fn pick(&self, members: &Members, _: &Call, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        (0..members.list().len()).find(|&i| usable(i))
    }
}

/// The frame kind of an OPEN.
const OPEN: u8 = 1;

/// Serves the handshake on the first connection and refuses its first call with GOAWAY (last
/// call id 0); holds every later connection open without a word. Counts the calls refused.
async fn refusing() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let refused = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&refused);
    tokio::spawn(async move {
        let mut stalled = Vec::new();
        let mut first = true;
        while let Ok((stream, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                tokio::spawn(refuse_first_call(stream, Arc::clone(&count)));
            } else {
                stalled.push(stream);
            }
        }
    });
    (addr, refused)
}

async fn refuse_first_call(mut stream: TcpStream, refused: Arc<AtomicUsize>) {
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&PREFACE);
    encode_settings(&mut out, 0, 100);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    // The client's preface, then frames until an OPEN.
    let mut preface = [0u8; PREFACE.len()];
    if stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    loop {
        let mut head = [0u8; HEADER_LEN];
        if stream.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        if head[4] == OPEN {
            break;
        }
    }
    let mut goaway = bytes::BytesMut::new();
    encode_goaway(&mut goaway, 0, Code::Unavailable, "going away");
    let _ = stream.write_all(&goaway).await;
    let _ = stream.flush().await;
    refused.fetch_add(1, Ordering::SeqCst);
    // Held open: the client sees the GOAWAY, not a reset.
    tokio::time::sleep(Duration::from_secs(3_600)).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_refused_unsent_goes_to_a_connected_endpoint_without_waiting() {
    let (refusing, refused) = refusing().await;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let endpoints = [refusing, server.addr].map(|a| format!("tcp://{a}"));
    let channel = BalanceBuilder::default()
        .picker(ListOrder)
        .build(discovery::fixed(endpoints).expect("endpoints"));
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("both connected");

    // A deadline well inside the connect timeout (20 s): waiting for the refusing endpoint's
    // reconnection would spend all of it.
    let mut client = GreeterClient::new(channel.clone());
    let mut request = sockrpc::Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_secs(5));
    let reply = tokio::time::timeout(Duration::from_secs(60), client.say_hello(request))
        .await
        .expect("the call ended")
        .unwrap_or_else(|status| {
            panic!(
                "the call failed instead of going to the connected endpoint: {status:?}; \
                 {:?}",
                channel.stats()
            )
        });
    let answered: SocketAddr = reply.into_inner().message.parse().expect("an address");
    assert_eq!(answered, server.addr);
    // It did meet the refusing endpoint first.
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    let stats = channel.stats();
    assert_eq!(stats[0].answered, 0, "{stats:?}");
    assert_eq!(stats[1].answered, 1, "{stats:?}");
    server.shutdown().await;
}

/// The first usable endpoint in list order, whose connections it cuts `left` times before it
/// returns it, waiting (blocking: a picker is synchronous) until the channel saw them go: the
/// call picked then finds no connection up, and fails never sent. Notes whether a pick found
/// the endpoint ejected.
struct Cutting {
    cutter: Cutter,
    left: Arc<AtomicUsize>,
    ejected: Arc<AtomicBool>,
}

impl Picker for Cutting {
    fn pick(&self, members: &Members, _: &Call, usable: &dyn Fn(usize) -> bool) -> Option<usize> {
        let i = (0..members.list().len()).find(|&i| usable(i))?;
        if members.list()[i].is_ejected() {
            self.ejected.store(true, Ordering::SeqCst);
        }
        let cut = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if cut.is_ok() {
            let member = &members.list()[i];
            tokio::task::block_in_place(|| {
                for _ in 0..500 {
                    // Again each turn: the server notes a connection just after it starts
                    // serving it, perhaps after the channel saw it up.
                    self.cutter.cut();
                    if !member.is_connected() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
        Some(i)
    }
}

/// Cuts: more than the 3 attempts a call refused unprocessed may make.
const CUTS: usize = 5;

/// What [`cutting_channel`] gives: the server, the count of cuts left (none yet), whether a
/// pick found the endpoint ejected, and the channel.
type Cut = (
    Counted,
    Arc<AtomicUsize>,
    Arc<AtomicBool>,
    sockrpc::service::balance::Balanced,
);

/// A server and a wait-for-ready balanced channel to it (ejecting as `outlier` says),
/// connected, whose picker cuts the server's connection while cuts are left.
async fn cutting_channel(outlier: OutlierConfig) -> Cut {
    let server = Counted::start().await;
    let left = Arc::new(AtomicUsize::new(0));
    let ejected = Arc::new(AtomicBool::new(false));
    let channel = BalanceBuilder::default()
        .picker(Cutting {
            cutter: server.cutter(),
            left: Arc::clone(&left),
            ejected: Arc::clone(&ejected),
        })
        .outlier(outlier)
        .wait_for_ready(true)
        .build(discovery::fixed([format!("tcp://{}", server.addr)]).expect("endpoints"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("connected");
    (server, left, ejected, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_ready_call_never_sent_again_and_again_waits_within_its_deadline() {
    let (server, left, _, channel) = cutting_channel(OutlierConfig::default()).await;
    answered_after_the_cuts(&server, &left, &channel).await;
}

/// A call never sent is no failure of its endpoint's: [`CUTS`] of them in a row, past the
/// failures that eject, leave it in rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_never_sent_do_not_eject_their_endpoint() {
    let outlier = OutlierConfig {
        consecutive_failures: 2,
        base_ejection: Duration::from_secs(600),
        max_ejection: Duration::from_secs(600),
    };
    let (server, left, ejected, channel) = cutting_channel(outlier).await;
    answered_after_the_cuts(&server, &left, &channel).await;
    assert!(
        !ejected.load(Ordering::SeqCst),
        "a pick found the endpoint ejected; {:?}",
        channel.stats()
    );
}

/// Makes a call (deadline 30 s) whose first [`CUTS`] picks find the connection cut, and
/// checks that `server` answered it after them.
async fn answered_after_the_cuts(
    server: &Counted,
    left: &AtomicUsize,
    channel: &sockrpc::service::balance::Balanced,
) {
    left.store(CUTS, Ordering::SeqCst);
    let mut client = GreeterClient::new(channel.clone());
    // On a task: the picker blocks its worker while the connection goes.
    let call = tokio::spawn(async move {
        let mut request = sockrpc::Request::new(HelloRequest { name: "x".into() });
        request.set_timeout(Duration::from_secs(30));
        client.say_hello(request).await
    });
    let reply = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ended")
        .expect("the call's task")
        .unwrap_or_else(|status| {
            panic!(
                "the call failed within its deadline: {status:?}; {} cuts left; {:?}",
                left.load(Ordering::SeqCst),
                channel.stats()
            )
        });
    let answered: SocketAddr = reply.into_inner().message.parse().expect("an address");
    assert_eq!(answered, server.addr);
    assert_eq!(left.load(Ordering::SeqCst), 0, "every cut met the call");
    assert!(server.accepted() > CUTS, "reconnected after each cut");
}

/// Bounded by its deadline, not by a count: a wait-for-ready call whose endpoint's connection
/// is cut every time it is picked fails `DEADLINE_EXCEEDED` as its deadline passes (it failed
/// `UNAVAILABLE` after 3 picks). A connection cut before the server answered a call is a failed
/// attempt, reconnected with backoff (`tests/hostile/balance_flapping.rs`: 1 s, 1.6 s, 2.56 s,
/// ±20 %), so the deadline leaves room for more than 3 picks: the fourth comes by 6.2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_never_sent_until_its_deadline_fails_deadline_exceeded() {
    let (_server, left, _, channel) = cutting_channel(OutlierConfig::default()).await;
    const ENDLESS: usize = 1_000_000;
    left.store(ENDLESS, Ordering::SeqCst);
    let mut client = GreeterClient::new(channel.clone());
    let timeout = Duration::from_secs(8);
    let started = std::time::Instant::now();
    let call = tokio::spawn(async move {
        let mut request = sockrpc::Request::new(HelloRequest { name: "x".into() });
        request.set_timeout(timeout);
        client.say_hello(request).await
    });
    let status = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the call ended")
        .expect("the call's task")
        .expect_err("every pick was cut");
    let took = started.elapsed();
    let cuts = ENDLESS - left.load(Ordering::SeqCst);
    assert_eq!(
        status.code(),
        Code::DeadlineExceeded,
        "{status:?}; {cuts} cuts"
    );
    assert!(took >= timeout, "ended after {took:?}, before its deadline");
    assert!(cuts > 3, "picked again past the attempts: {cuts} cuts");
}
