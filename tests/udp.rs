//! Issue 4, UDP for small calls (must show 4 and 5), with the UDP server and client used
//! directly: small calls over UDP, truncation and the cached answer a TCP re-issue gets,
//! at-most-once through a lossy, duplicating proxy, no amplification toward unverified sources,
//! malformed datagrams dropped and counted, and fallback after repeated loss.
//!
//! Real sockets on 127.0.0.1, port 0. Every loop is bounded in count and in time.

use bytes::Bytes;
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN, HEADER_LEN};
use sockrpc::service::udp::{
    mark_reissue, take_reissue, Lookup, ReplyCache, UdpClient, UdpClientConfig, UdpOutcome,
    UdpServer, UdpServerConfig, UdpServerCounters, UdpServerStats,
};
use sockrpc::{Code, MetadataMap, MethodPath, Request, Response, Router, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Longest any single wait in these tests may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(10);

static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
static SLEEP: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Sleep");
static FAIL: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Fail");
static GROW: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Grow");

/// Counts how often each handler ran: at-most-once is the point of several tests.
#[derive(Default, Clone)]
struct Counting {
    echoes: Arc<AtomicU64>,
    sleeps: Arc<AtomicU64>,
    grows: Arc<AtomicU64>,
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.echoes.fetch_add(1, Ordering::SeqCst);
        let mut trailers = MetadataMap::new();
        if let Some(note) = request.metadata().get("x-note") {
            trailers.insert("x-note", note).expect("valid");
        }
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::from_parts(
            MetadataMap::new(),
            EchoReply { payload, id },
            trailers,
        ))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let FailRequest {
            code,
            message,
            details,
        } = request.into_inner();
        Err(Status::with_details(
            Code::from_u32(code as u32),
            message,
            details,
        ))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.grows.fetch_add(1, Ordering::SeqCst);
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![7u8; size]),
            id: 0,
        }))
    }
}

struct UdpTestServer {
    addr: SocketAddr,
    handlers: Counting,
    cache: Arc<ReplyCache>,
    stats: Arc<UdpServerStats>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl UdpTestServer {
    async fn start() -> UdpTestServer {
        UdpTestServer::start_with(UdpServerConfig::default()).await
    }

    async fn start_with(config: UdpServerConfig) -> UdpTestServer {
        let handlers = Counting::default();
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let router = Router::new().add_service(EchoServer::new(handlers.clone()));
        let cache = Arc::new(ReplyCache::default());
        let server = UdpServer::new(socket, router, config, Arc::clone(&cache));
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        UdpTestServer {
            addr,
            handlers,
            cache,
            stats,
            stop: Some(stop),
            task,
        }
    }

    fn counters(&self) -> UdpServerCounters {
        self.stats.snapshot()
    }

    async fn client(&self) -> UdpClient {
        UdpClient::connect(self.addr, UdpClientConfig::default())
            .await
            .expect("client")
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(BOUND, &mut self.task)
            .await
            .expect("server stops")
            .expect("task")
            .expect("serve");
    }
}

fn request(message: &impl prost::Message) -> Request<Bytes> {
    Request::new(Bytes::from(message.encode_to_vec()))
}

fn deadline() -> Option<Instant> {
    Some(Instant::now() + BOUND)
}

fn reply_of(outcome: UdpOutcome) -> Result<Response<Bytes>, Status> {
    match outcome {
        UdpOutcome::Reply(answer) => answer,
        other => panic!("expected a UDP reply, got {other:?}"),
    }
}

fn echo_reply(response: &Response<Bytes>) -> EchoReply {
    EchoReply::decode(response.get_ref().clone()).expect("decode EchoReply")
}

/// Polls `check` every 10 ms for up to [`BOUND`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// (1) Small calls go over UDP: answers, errors and metadata intact, no truncation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_calls_succeed_over_udp() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    for id in 0..20u64 {
        let mut req = request(&EchoRequest {
            payload: Bytes::from(format!("hello {id}")),
            id,
        });
        req.metadata_mut().insert("x-note", "kept").expect("valid");
        let response = reply_of(client.call(&ECHO, &req, deadline()).await).expect("echo");
        let reply = echo_reply(&response);
        assert_eq!(reply.id, id);
        assert_eq!(&reply.payload[..], format!("hello {id}").as_bytes());
        assert_eq!(response.trailers().get("x-note"), Some("kept"));
    }

    // An error status comes back whole, over UDP too.
    let fail = request(&FailRequest {
        code: Code::NotFound as i32,
        message: "no such thing: tab\t 𝄞".into(),
        details: Bytes::from_static(b"\x00\x01\x02"),
    });
    let status = reply_of(client.call(&FAIL, &fail, deadline()).await).expect_err("fails");
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no such thing: tab\t 𝄞");
    assert_eq!(&status.details()[..], b"\x00\x01\x02");

    // A handler that waits runs in a task of its own; with the RTO now at a few milliseconds
    // the client retransmits while it sleeps, and those retransmissions never run it again.
    let slow = request(&SleepRequest {
        millis: 150,
        token: String::new(),
    });
    reply_of(client.call(&SLEEP, &slow, deadline()).await).expect("sleep");
    assert_eq!(server.handlers.sleeps.load(Ordering::SeqCst), 1);

    let stats = client.stats();
    assert_eq!(stats.calls, 22, "{stats:?}");
    assert_eq!(stats.replies, 22, "{stats:?}");
    assert_eq!(stats.truncations, 0, "{stats:?}");
    assert_eq!(stats.not_suitable, 0, "{stats:?}");
    assert_eq!(stats.cookie_requests, 1, "one cookie exchange: {stats:?}");
    assert!(client.srtt().is_some());
    let counters = server.counters();
    assert_eq!(counters.executed, 22, "{counters:?}");
    assert_eq!(counters.truncated, 0, "{counters:?}");
    assert!(
        stats.retransmits == 0 || counters.in_progress_duplicates + counters.resent > 0,
        "retransmissions were answered without running the call: {stats:?} {counters:?}"
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 20);

    // A request too big for a datagram is not sent at all: the caller uses TCP.
    let big = request(&EchoRequest {
        payload: Bytes::from(vec![1u8; 2000]),
        id: 0,
    });
    assert!(!client.fits(&ECHO, &big));
    assert!(matches!(
        client.call(&ECHO, &big, deadline()).await,
        UdpOutcome::NotSuitable
    ));
    assert_eq!(server.counters().requests, counters.requests);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (2) A large answer: TRUNCATED; the TCP re-issue gets the cached answer; the handler ran once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answer_is_truncated_and_cached_for_the_tcp_reissue() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let grow = request(&GrowRequest { size: 5000 });
    let (instance, call_id) = match client.call(&GROW, &grow, deadline()).await {
        UdpOutcome::Truncated { instance, call_id } => (instance, call_id),
        other => panic!("expected Truncated, got {other:?}"),
    };
    assert_eq!(instance, client.instance());
    assert_eq!(client.stats().truncations, 1);
    assert_eq!(server.counters().truncated, 1);

    // What the TCP path does: the re-issued request carries the identity in its metadata; the
    // server takes it off and answers from the cache.
    let mut reissue = grow.clone();
    mark_reissue(reissue.metadata_mut(), instance, call_id);
    let identity = take_reissue(reissue.metadata_mut()).expect("marked");
    assert_eq!(identity, (instance, call_id));
    assert!(reissue.metadata().is_empty(), "the mark is not passed on");
    let cached = match server.cache.wait(identity.0, identity.1, deadline()).await {
        Lookup::Done(answer) => answer.expect("grow succeeded"),
        other => panic!("expected the cached answer, got {other:?}"),
    };
    let reply = echo_reply(&cached);
    assert_eq!(reply.payload.len(), 5000);
    assert!(reply.payload.iter().all(|&b| b == 7));
    assert!(matches!(
        server.cache.lookup(instance, call_id + 1),
        Lookup::Missing
    ));
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "ran exactly once"
    );

    // An answer that fits still comes straight back.
    let fits = request(&GrowRequest { size: 1000 });
    let response = reply_of(client.call(&GROW, &fits, deadline()).await).expect("grow");
    assert_eq!(echo_reply(&response).payload.len(), 1000);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 2);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (3) Through a proxy that drops 30 % and duplicates 10 % of datagrams both ways, 1,000 calls
// all succeed within their deadlines and the handler ran exactly 1,000 times.

/// Deterministic xorshift64.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

#[derive(Default, Debug)]
struct ProxyCounts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
}

/// A UDP proxy: clients talk to the returned address, the proxy talks to `server` from a socket
/// of its own. Every datagram, either way, is dropped with `drop_pct` % probability, otherwise
/// sent, and then sent again with `dup_pct` % probability.
async fn lossy_proxy(
    server: SocketAddr,
    drop_pct: u64,
    dup_pct: u64,
    seed: u64,
) -> (SocketAddr, Arc<ProxyCounts>, tokio::task::JoinHandle<()>) {
    let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind front");
    let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind back");
    back.connect(server).await.expect("connect back");
    let addr = front.local_addr().expect("addr");
    let counts = Arc::new(ProxyCounts::default());
    let task = {
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let mut rng = XorShift(seed);
            let mut client: Option<SocketAddr> = None;
            let mut up = vec![0u8; 65536];
            let mut down = vec![0u8; 65536];
            loop {
                // (datagram, toward the server?)
                let (len, to_server) = tokio::select! {
                    got = front.recv_from(&mut up) => match got {
                        Ok((n, from)) => { client = Some(from); (n, true) }
                        Err(_) => continue,
                    },
                    got = back.recv(&mut down) => match got {
                        Ok(n) => (n, false),
                        Err(_) => continue,
                    },
                };
                if rng.percent() < drop_pct {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let copies = if rng.percent() < dup_pct { 2 } else { 1 };
                if copies == 2 {
                    counts.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                for _ in 0..copies {
                    counts.forwarded.fetch_add(1, Ordering::Relaxed);
                    if to_server {
                        let _ = back.send(&up[..len]).await;
                    } else if let Some(client) = client {
                        let _ = front.send_to(&down[..len], client).await;
                    }
                }
            }
        })
    };
    (addr, counts, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_calls_through_a_lossy_duplicating_proxy_run_exactly_once() {
    const CALLS: u64 = 1000;
    const WORKERS: u64 = 8;
    let server = UdpTestServer::start().await;
    let (proxy, counts, proxy_task) = lossy_proxy(server.addr, 30, 10, 0x9E37_79B9_7F4A_7C15).await;
    // Fallback to TCP is what a channel would do after a run of losses; this test is about
    // retransmission and deduplication, so the client stays on UDP whatever it loses.
    let mut config = UdpClientConfig::default();
    config.fallback_after_losses = u32::MAX;
    let client = UdpClient::connect(proxy, config).await.expect("client");

    let run = async {
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let client = client.clone();
            workers.spawn(async move {
                let mut failures = Vec::new();
                for i in 0..CALLS / WORKERS {
                    let id = worker * (CALLS / WORKERS) + i;
                    let req = request(&EchoRequest {
                        payload: Bytes::from(id.to_be_bytes().to_vec()),
                        id,
                    });
                    let call_deadline = Instant::now() + BOUND;
                    match client.call(&ECHO, &req, Some(call_deadline)).await {
                        UdpOutcome::Reply(Ok(response)) if echo_reply(&response).id == id => {
                            assert!(Instant::now() <= call_deadline);
                        }
                        other => failures.push((id, format!("{other:?}"))),
                    }
                }
                failures
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = workers.join_next().await {
            failures.extend(done.expect("worker"));
        }
        failures
    };
    let failures = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("1,000 calls finish in bounded time");
    assert!(failures.is_empty(), "failed calls: {failures:?}");

    let executed = server.handlers.echoes.load(Ordering::SeqCst);
    assert_eq!(executed, CALLS, "every call ran exactly once");
    let stats = client.stats();
    let counters = server.counters();
    eprintln!("client: {stats:?}\nserver: {counters:?}\nproxy: {counts:?}");
    assert_eq!(stats.replies, CALLS, "{stats:?}");
    assert_eq!(counters.executed, CALLS, "{counters:?}");
    // The proxy really did lose and duplicate, and the server really did see repeats.
    assert!(counts.dropped.load(Ordering::Relaxed) > 0, "{counts:?}");
    assert!(counts.duplicated.load(Ordering::Relaxed) > 0, "{counts:?}");
    assert!(stats.retransmits > 0, "{stats:?}");
    assert!(
        counters.resent + counters.in_progress_duplicates > 0,
        "{counters:?}"
    );
    proxy_task.abort();
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (4) No amplification: from a fresh socket with no cookie, nothing comes back larger than what
// caused it; a datagram shaped like an answer gets no answer at all.

fn raw_request(
    call_id: u32,
    cookie: [u8; COOKIE_LEN],
    path: &MethodPath,
    pad: usize,
    message: &[u8],
) -> Vec<u8> {
    let mut metadata = MetadataMap::new();
    if pad > 0 {
        metadata.insert("x-pad", &"p".repeat(pad)).expect("valid");
    }
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: 0x00C0_FFEE,
        call_id,
        cookie,
    };
    let mut out = bytes::BytesMut::new();
    datagram::encode_request(&mut out, &header, None, path, &metadata, message);
    out.to_vec()
}

/// Receives one datagram within `wait`, if one comes.
async fn recv_within(socket: &UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_sources_never_get_more_bytes_than_they_sent() {
    let server = UdpTestServer::start().await;
    let raw = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    raw.connect(server.addr).await.expect("connect");
    let mut call_id = 0u32;
    let mut kinds = Vec::new();
    let (mut total_sent, mut total_received) = (0usize, 0usize);
    // No cookie, and a made-up one: both are "unverified".
    for cookie in [[0u8; COOKIE_LEN], [0x5a; COOKIE_LEN]] {
        for grow in [0u64, 100, 400, 1000, 1200, 5000, 60_000] {
            for pad in [0usize, 100, 400, 900] {
                call_id += 1;
                let message = GrowRequest { size: grow }.encode_to_vec();
                let sent = raw_request(call_id, cookie, &GROW, pad, &message);
                raw.send(&sent).await.expect("send");
                total_sent += sent.len();
                // Exactly one answer per request: REPLY if it is no larger, else TRUNCATED.
                let got = recv_within(&raw, BOUND).await.expect("an answer");
                let header = Header::parse(&got).expect("server header");
                assert_eq!(header.call_id, call_id);
                assert!(
                    got.len() <= sent.len(),
                    "grow {grow}, pad {pad}: sent {} bytes, got {} ({:?})",
                    sent.len(),
                    got.len(),
                    header.kind
                );
                assert_ne!(header.flags & datagram::FLAG_STALE_COOKIE, 0);
                total_received += got.len();
                kinds.push(header.kind);
            }
        }
    }
    assert!(total_received <= total_sent);
    assert!(
        kinds.contains(&Kind::Reply),
        "small answers still come back"
    );
    assert!(kinds.contains(&Kind::Truncated));

    // A bare COOKIE_REQUEST (no padding) is answered with a COOKIE no larger than it.
    let mut bare = bytes::BytesMut::new();
    Header {
        kind: Kind::CookieRequest,
        flags: 0,
        client_instance: 1,
        call_id: 0,
        cookie: [0; COOKIE_LEN],
    }
    .encode(&mut bare);
    raw.send(&bare).await.expect("send");
    let cookie = recv_within(&raw, BOUND).await.expect("cookie");
    assert!(cookie.len() <= bare.len());
    assert_eq!(Header::parse(&cookie).expect("header").kind, Kind::Cookie);

    // Answers are never answered: REPLY, TRUNCATED and COOKIE shapes, well-formed.
    let before = server.counters();
    let mut reply = bytes::BytesMut::new();
    let answer: Result<Response<Bytes>, Status> = Ok(Response::new(Bytes::from(vec![0u8; 500])));
    let header = |kind| Header {
        kind,
        flags: 0,
        client_instance: 1,
        call_id: 77,
        cookie: [0; COOKIE_LEN],
    };
    datagram::encode_reply(&mut reply, &header(Kind::Reply), &answer);
    let mut truncated = bytes::BytesMut::new();
    datagram::encode_header_only(&mut truncated, &header(Kind::Truncated));
    let mut cookie_shaped = bytes::BytesMut::new();
    datagram::encode_header_only(&mut cookie_shaped, &header(Kind::Cookie));
    for shaped in [&reply[..], &truncated[..], &cookie_shaped[..]] {
        raw.send(shaped).await.expect("send");
    }
    assert!(
        recv_within(&raw, Duration::from_millis(200))
            .await
            .is_none(),
        "an answer-shaped datagram was answered"
    );
    let after = server.counters();
    assert_eq!(after.ignored_answers - before.ignored_answers, 3);
    assert_eq!(after.executed, before.executed);
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// (5) Malformed datagrams are dropped and counted; the server keeps serving a good client.

/// A REQUEST header (no cookie) followed by `body`, written out by hand from docs/UDP.md.
fn by_hand(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x55, 0x01, kind, flags];
    out.extend_from_slice(&42u64.to_be_bytes());
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(&[0u8; 16]);
    assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(body);
    out
}

/// A REQUEST body: no deadline, `path`, a raw metadata block, then `message`.
fn request_body(path: &[u8], path_len: u16, metadata: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = 0u64.to_be_bytes().to_vec();
    out.extend_from_slice(&path_len.to_be_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(metadata);
    out.extend_from_slice(message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_dropped_and_counted() {
    let server = UdpTestServer::start().await;
    let client = server.client().await;
    let hello = request(&EchoRequest {
        payload: Bytes::from_static(b"before"),
        id: 1,
    });
    reply_of(client.call(&ECHO, &hello, deadline()).await).expect("served before");

    let mut bad: Vec<Vec<u8>> = Vec::new();
    // Random bytes of random lengths (seeded; none happens to start with a valid header).
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..100 {
        let len = (rng.next() % 300) as usize;
        bad.push((0..len).map(|_| rng.next() as u8).collect());
    }
    // Every cut of a header, the empty datagram included.
    let good = raw_request(5, [0; COOKIE_LEN], &ECHO, 0, b"");
    for cut in 0..HEADER_LEN {
        bad.push(good[..cut].to_vec());
    }
    let echo = b"/sockrpc.test.Echo/Echo";
    let no_metadata = [0u8, 0];
    bad.extend([
        // Wrong magic, wrong version, unknown kind, flags set, call id 0.
        [&[0x54u8][..], &good[1..]].concat(),
        [&good[..1], &[0x02u8][..], &good[2..]].concat(),
        by_hand(0x7f, 0, 1, &request_body(echo, 23, &no_metadata, b"")),
        by_hand(0x01, 0x80, 1, &request_body(echo, 23, &no_metadata, b"")),
        by_hand(0x01, 0, 0, &request_body(echo, 23, &no_metadata, b"")),
        // Bodies whose lengths lie: path longer than the datagram, metadata count with no
        // entries, a value length past the end, a key length past the end.
        by_hand(0x01, 0, 1, &request_body(echo, 900, &no_metadata, b"")),
        by_hand(0x01, 0, 1, &request_body(echo, 23, &[0xff, 0xff], b"")),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 1, b'k', 0xff, 0xff], b""),
        ),
        by_hand(0x01, 0, 1, &request_body(echo, 23, &[0, 1, 200, b'k'], b"")),
        // A body cut inside the timeout; a path that is not /Service/Method; a metadata key
        // with a space; a text value with a control byte.
        by_hand(0x01, 0, 1, &[0, 0, 0]),
        by_hand(0x01, 0, 1, &request_body(b"nopath", 6, &no_metadata, b"")),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 3, b'a', b' ', b'b', 0, 1, b'v'], b""),
        ),
        by_hand(
            0x01,
            0,
            1,
            &request_body(echo, 23, &[0, 1, 1, b'k', 0, 1, 0x07], b""),
        ),
        // A COOKIE_REQUEST with a call id, and one whose padding is not zero.
        by_hand(0x02, 0, 3, &[0u8; 32]),
        by_hand(0x02, 0, 0, &[1u8; 32]),
    ]);
    for datagram in &bad {
        assert!(
            refused_as_malformed(datagram),
            "test datagram is accidentally acceptable: {datagram:?}"
        );
    }

    let raw = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    raw.connect(server.addr).await.expect("connect");
    let before = server.counters().malformed;
    for datagram in &bad {
        raw.send(datagram).await.expect("send");
    }
    let expected = before + bad.len() as u64;
    eventually("every malformed datagram counted", || {
        server.counters().malformed >= expected
    })
    .await;
    assert_eq!(server.counters().malformed, expected);
    assert!(
        recv_within(&raw, Duration::from_millis(200))
            .await
            .is_none(),
        "a malformed datagram was answered"
    );

    // The server is unharmed: the good client keeps being served.
    for id in 2..12u64 {
        let req = request(&EchoRequest {
            payload: Bytes::from_static(b"after"),
            id,
        });
        let response = reply_of(client.call(&ECHO, &req, deadline()).await).expect("served after");
        assert_eq!(echo_reply(&response).id, id);
    }
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 11);
    assert!(!server.task.is_finished());
    server.shutdown().await;
}

/// Whether the server must drop `datagram` as malformed, by the rules of docs/UDP.md (a sanity
/// check on the test's own datagrams: a random one could, in principle, be well-formed).
fn refused_as_malformed(datagram: &[u8]) -> bool {
    let Ok(header) = Header::parse(datagram) else {
        return true;
    };
    if header.kind.is_from_server() {
        // Ignored, but counted as an answer, not as malformed.
        return false;
    }
    if header.flags != 0 {
        return true;
    }
    let body = &datagram[HEADER_LEN..];
    match header.kind {
        Kind::Request => {
            header.call_id == 0
                || datagram::parse_request(
                    Bytes::copy_from_slice(body),
                    &sockrpc::Limits::default(),
                )
                .is_err()
        }
        Kind::CookieRequest => header.call_id != 0 || body.iter().any(|&b| b != 0),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Loss: the deadline bounds a call to a silent server, and repeated loss sends new calls to TCP.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_deadline_then_fallback() {
    // A socket that never answers.
    let hole = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = hole.local_addr().expect("addr");
    let mut config = UdpClientConfig::default();
    config.initial_rto = Duration::from_millis(20);
    config.fallback_after_losses = 1_000;
    let patient = UdpClient::connect(addr, config.clone())
        .await
        .expect("client");
    let req = request(&EchoRequest::default());
    let started = Instant::now();
    let outcome = patient
        .call(
            &ECHO,
            &req,
            Some(Instant::now() + Duration::from_millis(100)),
        )
        .await;
    match outcome {
        UdpOutcome::Reply(Err(status)) => assert_eq!(status.code(), Code::DeadlineExceeded),
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < BOUND,
        "{took:?}"
    );
    assert!(patient.stats().retransmits > 0);

    config.fallback_after_losses = 3;
    let client = UdpClient::connect(addr, config).await.expect("client");
    // Nothing got through, not even the cookie exchange, so nothing can have run: NotSuitable.
    assert!(matches!(
        client.call(&ECHO, &req, deadline()).await,
        UdpOutcome::NotSuitable
    ));
    assert!(client.in_fallback());
    let stats = client.stats();
    assert_eq!(stats.fallbacks, 1, "{stats:?}");
    assert_eq!(stats.calls, 0, "no REQUEST was sent: {stats:?}");
    // While in fallback, calls go to TCP at once.
    let started = Instant::now();
    assert!(matches!(
        client.call(&ECHO, &req, deadline()).await,
        UdpOutcome::NotSuitable
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(hole);
}

/// The whole path through a `Channel`: small calls go over UDP, a reply too large for a datagram
/// comes back over TCP from the UDP side's cache (the handler runs once), large requests use TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_uses_udp_when_it_fits_and_tcp_for_the_rest() {
    use sockrpc_tests::echo::echo_client::EchoClient;
    let handlers = Counting::default();
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
            .add_service(EchoServer::new(handlers.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
        .expect("endpoint")
        .udp(udp_addr)
        .timeout(Duration::from_secs(5));
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(channel.clone());

    for id in 0..20u64 {
        let reply = client
            .echo(EchoRequest {
                payload: Bytes::from(vec![id as u8; 32]),
                id,
            })
            .await
            .expect("small call")
            .into_inner();
        assert_eq!(reply.id, id);
        assert_eq!(reply.payload.len(), 32);
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.replies >= 20, "small calls went over UDP: {stats:?}");

    // Too large to answer in a datagram: truncated, then fetched over TCP without a rerun.
    let grows_before = handlers.grows.load(Ordering::SeqCst);
    let reply = client
        .grow(GrowRequest { size: 50_000 })
        .await
        .expect("large reply")
        .into_inner();
    assert_eq!(reply.payload.len(), 50_000);
    assert_eq!(
        handlers.grows.load(Ordering::SeqCst),
        grows_before + 1,
        "ran once"
    );
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.truncations >= 1, "{stats:?}");

    // Too large to ask in a datagram: TCP from the start.
    let echoes_before = handlers.echoes.load(Ordering::SeqCst);
    let reply = client
        .echo(EchoRequest {
            payload: Bytes::from(vec![1u8; 10_000]),
            id: 99,
        })
        .await
        .expect("large request")
        .into_inner();
    assert_eq!(reply.payload.len(), 10_000);
    assert_eq!(handlers.echoes.load(Ordering::SeqCst), echoes_before + 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("task")
        .expect("serve");
}

/// Methods the `.proto` marks `NO_SIDE_EFFECTS` or `IDEMPOTENT` are known to the server, which
/// lets them skip the UDP reply cache; the others keep at-most-once execution.
#[test]
fn idempotency_levels_from_the_proto_reach_the_router() {
    use sockrpc::NamedService;
    use sockrpc_tests::counter::counter_server::{Counter, CounterServer};
    use sockrpc_tests::counter::{AddRequest, GetRequest, Total};

    struct Noop;
    impl Counter for Noop {
        async fn add(&self, _: Request<AddRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
        async fn get(&self, _: Request<GetRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
        async fn set(&self, _: Request<AddRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
    }

    let mut marked = CounterServer::<Noop>::IDEMPOTENT_METHODS.to_vec();
    marked.sort_unstable();
    assert_eq!(
        marked,
        [
            "/sockrpc.test.counter.Counter/Get",
            "/sockrpc.test.counter.Counter/Set"
        ]
    );
    let router = Router::new().add_service(CounterServer::new(Noop));
    let mut known: Vec<&str> = router.idempotent_methods().collect();
    known.sort_unstable();
    assert_eq!(known, marked);
    assert!(!known.contains(&"/sockrpc.test.counter.Counter/Add"));
}
