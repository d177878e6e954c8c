//! At-most-once execution over UDP holds at its edges:
//!
//! - a method the `.proto` marks `NO_SIDE_EFFECTS` whose reply is too big for a datagram runs
//!   again on the TCP re-issue and succeeds (it skipped the cache, so there is nothing cached);
//! - under load with lost replies, a reply cache full of young answers refuses new calls
//!   (counted in `cache_full`) rather than evicting an answer a retransmission still needs: calls
//!   may fail, but no handler ever runs twice;
//! - a REQUEST larger than the server's datagram limit is refused unrun (`RESOURCE_EXHAUSTED`,
//!   counted in `oversized`), while one of exactly the limit runs.

use crate::support::{dropping_proxy, raw_echo_request, stop_server, XorShift, BOUND, ECHO};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, HEADER_LEN};
use sockrpc::service::udp::{
    ReplyCache, ReplyCacheConfig, UdpClient, UdpClientConfig, UdpOutcome, UdpServer,
    UdpServerConfig, UdpServerCounters, UdpServerStats,
};
use sockrpc::{Code, Limits, Request, Response, Router, Status};
use sockrpc_tests::blob::blobs_client::BlobsClient;
use sockrpc_tests::blob::blobs_server::{Blobs, BlobsServer};
use sockrpc_tests::blob::{Blob, ReadRequest};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;

// ---------------------------------------------------------------------------------------------
// (1) An idempotent method with a reply too big for a datagram.

#[derive(Clone, Default)]
struct CountingBlobs {
    reads: Arc<AtomicU64>,
}

impl Blobs for CountingBlobs {
    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<Blob>, Status> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let size = request.into_inner().size as usize;
        Ok(Response::new(Blob {
            data: Bytes::from(vec![3u8; size]),
        }))
    }
}

/// Through a `Channel` with `Endpoint::udp`: `Read` is `NO_SIDE_EFFECTS`, so the UDP server
/// keeps no answer for it; its 20 KB reply comes back TRUNCATED, and the TCP re-issue finds no
/// cached answer and simply runs it again instead of failing `ABORTED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_method_whose_reply_is_too_big_for_a_datagram_runs_again_over_tcp() {
    let blobs = CountingBlobs::default();
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind tcp");
    let tcp_addr = listener.local_addr().expect("addr");
    let udp_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(BlobsServer::new(blobs.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
        .expect("endpoint")
        .udp(udp_addr)
        .timeout(BOUND);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = BlobsClient::new(channel.clone());

    // Small: over UDP, once.
    let small = client
        .read(ReadRequest { size: 100 })
        .await
        .expect("small read")
        .into_inner();
    assert_eq!(small.data.len(), 100);
    // Once, or once more per retransmission: the method skips the cache, and a loaded machine
    // can hold the answer past the first timeout.
    let retransmitted = channel.udp_stats().expect("udp set up").retransmits;
    let ran = blobs.reads.load(Ordering::SeqCst);
    assert!(
        (1..=1 + retransmitted).contains(&ran),
        "the small read ran {ran} times with {retransmitted} retransmissions"
    );

    // Too big for a datagram: truncated, then run again over TCP. (An idempotent method skips
    // the cache, so a UDP retransmission on a busy machine may run it once more too.)
    for round in 1..=3u64 {
        let reads = blobs.reads.load(Ordering::SeqCst);
        let retransmits = channel.udp_stats().expect("udp set up").retransmits;
        let big = client
            .read(ReadRequest { size: 20_000 })
            .await
            .unwrap_or_else(|status| panic!("round {round}: {status:?}"))
            .into_inner();
        assert_eq!(big.data.len(), 20_000);
        assert!(big.data.iter().all(|&b| b == 3));
        let ran = blobs.reads.load(Ordering::SeqCst) - reads;
        let retransmitted = channel.udp_stats().expect("udp set up").retransmits - retransmits;
        assert!(
            (2..=2 + retransmitted).contains(&ran),
            "round {round}: ran {ran} times with {retransmitted} retransmissions; \
             expected once over UDP and once more for the TCP re-issue"
        );
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert_eq!(stats.truncations, 3, "{stats:?}");
    assert!(stats.replies >= 1, "{stats:?}");
    stop_server(stop, server).await;
}

// ---------------------------------------------------------------------------------------------
// A UDP server built by hand, with its own reply cache and a per-request-id run count.

/// Counts runs of `Echo` per request id: "ran twice" is the failure these tests look for.
/// `Sleep` is a call held in its handler until the test lets one go ([`PerId::release`]).
#[derive(Clone)]
pub(crate) struct PerId {
    runs: Arc<Mutex<HashMap<u64, u32>>>,
    gate: Arc<tokio::sync::Semaphore>,
    held: Arc<AtomicU64>,
}

impl Default for PerId {
    fn default() -> PerId {
        PerId {
            runs: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            held: Arc::default(),
        }
    }
}

impl PerId {
    pub(crate) fn runs(&self) -> HashMap<u64, u32> {
        self.runs.lock().expect("lock").clone()
    }

    /// `Sleep` calls that have started (held, or let go since).
    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::SeqCst)
    }

    /// Lets one held `Sleep` call answer.
    pub(crate) fn release(&self) {
        self.gate.add_permits(1);
    }

    fn total(&self) -> u32 {
        self.runs().values().sum()
    }
}

impl Echo for PerId {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { payload, id } = request.into_inner();
        *self.runs.lock().expect("lock").entry(id).or_default() += 1;
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.held.fetch_add(1, Ordering::SeqCst);
        let permit = self
            .gate
            .acquire()
            .await
            .map_err(|_| Status::unavailable("gate closed"))?;
        permit.forget();
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

pub(crate) struct HandBuilt {
    pub(crate) addr: SocketAddr,
    pub(crate) handlers: PerId,
    pub(crate) cache: Arc<ReplyCache>,
    stats: Arc<UdpServerStats>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HandBuilt {
    pub(crate) async fn start(config: UdpServerConfig, cache: ReplyCacheConfig) -> HandBuilt {
        let handlers = PerId::default();
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let router = Router::new().add_service(EchoServer::new(handlers.clone()));
        let cache = Arc::new(ReplyCache::new(cache));
        let dispatcher = sockrpc::server::Dispatcher::new(router);
        let server =
            UdpServer::new(socket, dispatcher, config, Arc::clone(&cache)).expect("udp server");
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        HandBuilt {
            addr,
            handlers,
            cache,
            stats,
            stop,
            task,
        }
    }

    pub(crate) fn counters(&self) -> UdpServerCounters {
        self.stats.snapshot()
    }

    pub(crate) async fn shutdown(self) {
        stop_server(self.stop, self.task).await;
    }
}

/// A UDP proxy that forwards every request and drops `drop_pct` % of what the server sends back.
async fn reply_dropping_proxy(
    server: SocketAddr,
    drop_pct: u64,
    seed: u64,
) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let mut rng = XorShift(seed);
    dropping_proxy(server, move |_| rng.percent() < drop_pct).await
}

// ---------------------------------------------------------------------------------------------
// (2) A full reply cache refuses new calls; it never evicts an answer still needed.

/// 400 calls at once (a burst far above the cache's 64 entries) through a proxy that loses half
/// the replies. Calls whose reply was lost retransmit; had their answers been evicted to make
/// room for later calls, the retransmission would run them again. Instead the cache keeps every
/// answer and refuses calls past its bound: those fail by their deadline, each refusal counted
/// in `cache_full`, and no request id ever ran twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reply_cache_refuses_new_calls_and_never_lets_one_run_twice() {
    const CALLS: u64 = 400;
    const MAX_ENTRIES: usize = 64;
    let mut cache = ReplyCacheConfig::default();
    cache.max_entries = MAX_ENTRIES;
    let server = HandBuilt::start(UdpServerConfig::default(), cache).await;
    let (proxy, dropped, proxy_task) = reply_dropping_proxy(server.addr, 50, 0x2545_F491).await;
    let mut config = UdpClientConfig::default();
    // Retransmit soon, and never give up on UDP: this test is about what the server runs.
    config.initial_rto = Duration::from_millis(20);
    config.min_rto = Duration::from_millis(2);
    config.fallback_after_losses = u32::MAX;
    let client = UdpClient::connect(proxy, config).await.expect("client");
    // The cookie exchange first, so the burst below is all REQUESTs.
    let warm = Request::new(Bytes::from(
        EchoRequest {
            payload: Bytes::new(),
            id: u64::MAX,
        }
        .encode_to_vec(),
    ));
    let mut warmed = false;
    for _ in 0..20 {
        let deadline = Some(Instant::now() + Duration::from_millis(500));
        if let UdpOutcome::Reply(Ok(_)) = client.call(&ECHO, &warm, deadline).await {
            warmed = true;
            break;
        }
    }
    assert!(
        warmed,
        "one call gets through a proxy that loses half the replies"
    );

    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for id in 0..CALLS {
        let client = client.clone();
        calls.spawn(async move {
            let request = Request::new(Bytes::from(
                EchoRequest {
                    payload: Bytes::from(id.to_be_bytes().to_vec()),
                    id,
                }
                .encode_to_vec(),
            ));
            let deadline = Some(Instant::now() + Duration::from_secs(2));
            (id, client.call(&ECHO, &request, deadline).await)
        });
    }
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    while let Some(done) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("every call ends by its deadline")
    {
        let (id, outcome) = done.expect("call task");
        match outcome {
            UdpOutcome::Reply(Ok(response)) => {
                let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
                assert_eq!(reply.id, id, "the answer to its own call");
                succeeded.push(id);
            }
            UdpOutcome::Reply(Err(status)) => {
                // Refused by the full cache (it did not run, and the REPLY says so: UNAVAILABLE
                // marked not processed), or out of time.
                assert!(
                    status.is_not_processed()
                        || matches!(status.code(), Code::DeadlineExceeded | Code::Unavailable),
                    "call {id}: {status:?}"
                );
                failed.push(id);
            }
            other => panic!("call {id}: {other:?}"),
        }
    }
    let elapsed = started.elapsed();

    let runs = server.handlers.runs();
    let counters = server.counters();
    let stats = client.stats();
    eprintln!(
        "{CALLS} calls in {elapsed:?}: {} ok, {} failed; replies dropped {}; \
         server {counters:?}; client {stats:?}",
        succeeded.len(),
        failed.len(),
        dropped.load(Ordering::Relaxed)
    );
    // The point: no request id ran twice.
    let mut twice: Vec<(u64, u32)> = runs
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, n)| (*id, *n))
        .collect();
    twice.sort_unstable();
    assert!(
        twice.is_empty(),
        "{} request ids ran more than once, e.g. (id, runs) {:?}",
        twice.len(),
        &twice[..twice.len().min(8)]
    );
    // The load really did lose replies and retransmit, and the cache really did fill.
    assert!(dropped.load(Ordering::Relaxed) > 0);
    assert!(stats.retransmits > 0, "{stats:?}");
    assert!(
        counters.resent > 0,
        "lost replies were resent from the cache: {counters:?}"
    );
    assert!(counters.cache_full > 0, "{counters:?}");
    assert!(server.cache.len() <= MAX_ENTRIES, "{}", server.cache.len());
    // Every call that succeeded ran (once); every call that never ran was refused by the full
    // cache, at least once per such call.
    let ran = |id: &u64| runs.get(id).copied().unwrap_or(0) == 1;
    assert!(succeeded.iter().all(ran), "answered without running");
    let never_ran = (0..CALLS).filter(|id| !ran(id)).count() as u64;
    assert!(never_ran > 0, "the cache bound was reached");
    assert!(
        counters.cache_full >= never_ran,
        "{never_ran} calls never ran, but only {} refusals: {counters:?}",
        counters.cache_full
    );
    assert_eq!(
        counters.executed,
        u64::from(server.handlers.total()),
        "{counters:?}"
    );
    assert_eq!(counters.overloaded, 0, "{counters:?}");
    proxy_task.abort();
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (3) A request larger than the server's datagram limit never runs.

/// A REQUEST datagram with an `EchoRequest` of `payload` bytes, from no verified source.
fn raw_request(call_id: u32, payload: usize) -> BytesMut {
    raw_echo_request(0x5EED_0000_0000_0001, call_id, payload)
}

/// Sends `datagram` and returns the status of the REPLY it gets.
async fn exchange(socket: &UdpSocket, datagram: &[u8], call_id: u32) -> Result<(), Status> {
    socket.send(datagram).await.expect("send");
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(BOUND, socket.recv(&mut buf))
        .await
        .expect("an answer")
        .expect("recv");
    let header = Header::parse(&buf[..n]).expect("header");
    assert_eq!(header.kind, Kind::Reply, "{header:?}");
    assert_eq!(header.call_id, call_id);
    let body = Bytes::copy_from_slice(&buf[HEADER_LEN..n]);
    datagram::parse_reply(body, &Limits::default())
        .expect("a well-formed REPLY")
        .map(drop)
}

/// With the default 1,232-byte limit: a REQUEST of exactly 1,232 bytes runs; one of 1,233 is
/// answered `RESOURCE_EXHAUSTED` without running, and counted as `oversized`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_servers_datagram_limit_is_refused_unrun() {
    let config = UdpServerConfig::default();
    let limit = config.max_datagram;
    let server = HandBuilt::start(config, ReplyCacheConfig::default()).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(server.addr).await.expect("connect");

    // Fit the payload so the datagram is exactly the limit.
    let mut payload = limit;
    while raw_request(1, payload).len() > limit {
        payload -= 1;
    }
    let at_limit = raw_request(1, payload);
    assert_eq!(at_limit.len(), limit);
    exchange(&socket, &at_limit, 1)
        .await
        .expect("a request of exactly the limit runs");
    assert_eq!(server.handlers.runs().get(&1), Some(&1));

    let over = raw_request(2, payload + 1);
    assert_eq!(over.len(), limit + 1);
    let status = exchange(&socket, &over, 2)
        .await
        .expect_err("one byte over the limit is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    let runs = server.handlers.runs();
    assert_eq!(
        runs.get(&2),
        None,
        "the oversized request never ran: {runs:?}"
    );
    let counters = server.counters();
    assert_eq!(counters.oversized, 1, "{counters:?}");
    assert_eq!(counters.executed, 1, "{counters:?}");
    assert_eq!(server.cache.len(), 1, "nothing cached for the refused call");
    server.shutdown().await;
}
