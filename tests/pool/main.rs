//! The connection pool, reconnects, keepalive and graceful shutdown, on real loopback sockets.

use bytes::Bytes;
use sockrpc::client::Backoff;
use sockrpc::server::PingPolicy;
use sockrpc::transport::Keepalive;
use sockrpc::{Code, Endpoint, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod max_age;
mod nodelay;
mod room;
mod runtimes;
mod share;
mod stream_room;
mod wait_for_ready;
mod write_room;
mod yields;

const BOUND: Duration = Duration::from_secs(10);
/// A server's default limit of calls in flight per connection (`ServerConfig`).
const DEFAULT_MAX_CALLS: usize = 4096;

/// Counts what it serves, so a test can tell which server answered.
#[derive(Clone, Default)]
struct Counting {
    served: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    /// The most `sleep` calls that ever ran at once.
    peak: Arc<AtomicUsize>,
}

/// Takes one off a count of running calls when dropped.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.served.fetch_add(1, Ordering::SeqCst);
        let message = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: message.payload,
            id: message.id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        // Counted out when the handler ends, or is dropped: a cancelled call stops running too.
        let _running = Running(&self.running);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("not used"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::internal("not used"))
    }
}

struct TestServer {
    addr: SocketAddr,
    service: Counting,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    fn start(addr: SocketAddr, policy: PingPolicy) -> std::io::Result<TestServer> {
        TestServer::start_with(addr, policy, DEFAULT_MAX_CALLS)
    }

    /// A server that takes at most `max_calls` calls in flight per connection.
    fn start_with(
        addr: SocketAddr,
        policy: PingPolicy,
        max_calls: usize,
    ) -> std::io::Result<TestServer> {
        let listener = sockrpc::transport::bind_tcp(addr, &sockrpc::SocketConfig::default())?;
        let addr = listener.local_addr()?;
        let service = Counting::default();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .ping_policy(policy)
                .max_concurrent_calls(max_calls)
                .grace_period(Duration::from_secs(5))
                .add_service(EchoServer::new(service.clone()))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        Ok(TestServer {
            addr,
            service,
            stop: Some(stop),
            task,
        })
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    async fn stop(mut self) {
        self.signal_stop();
        tokio::time::timeout(BOUND, &mut self.task)
            .await
            .expect("server stops in time")
            .expect("task")
            .expect("serve");
    }
}

/// Connections of the pool that take calls.
fn live(channel: &sockrpc::Channel) -> usize {
    channel
        .connections()
        .iter()
        .filter(|c| !c.is_closed())
        .count()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn lenient() -> PingPolicy {
    let mut policy = PingPolicy::default();
    policy.min_interval = Duration::from_millis(10);
    policy.permit_without_calls = true;
    policy
}

/// A new server on the address of one just stopped: tried again while the port is not free yet
/// (the old listener still closing, or a connection of another test given it meanwhile).
async fn restart(addr: SocketAddr) -> TestServer {
    let started = Instant::now();
    loop {
        match TestServer::start(addr, PingPolicy::default()) {
            Ok(server) => return server,
            Err(_) if started.elapsed() < BOUND => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(err) => panic!("could not listen on {addr} again: {err}"),
        }
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < BOUND,
            "{what} did not happen within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Lets the proxy's held direction flow again and waits (each within `3 × BOUND`) for every task
/// of `tasks` to succeed; how many did.
async fn release_and_finish(
    proxy: &Proxy,
    tasks: &mut tokio::task::JoinSet<Result<(), Status>>,
    what: &str,
) -> usize {
    proxy.hold.send_replace(false);
    let mut done = 0;
    while let Some(result) = tokio::time::timeout(BOUND * 3, tasks.join_next())
        .await
        .unwrap_or_else(|_| panic!("{what}: not finished once the server reads"))
    {
        result
            .expect("task")
            .unwrap_or_else(|status| panic!("{what}: one failed: {status:?}"));
        done += 1;
    }
    done
}

/// The two pump tasks of one proxied connection.
type Links = Arc<Mutex<Vec<(JoinHandle<()>, JoinHandle<()>)>>>;

/// A TCP proxy whose connections can be cut one by one, made to swallow every byte, or made
/// to stop reading from the client (`hold`: the server, as the client sees it, stops reading).
struct Proxy {
    addr: SocketAddr,
    links: Links,
    swallow: Arc<AtomicBool>,
    hold: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(loopback()).await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let links: Links = Arc::default();
        let swallow = Arc::new(AtomicBool::new(false));
        let (hold, held) = tokio::sync::watch::channel(false);
        let (links2, swallow2) = (Arc::clone(&links), Arc::clone(&swallow));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = tokio::spawn(pump(cr, sw, Arc::clone(&swallow2), Some(held.clone())));
                let down = tokio::spawn(pump(sr, cw, Arc::clone(&swallow2), None));
                links2.lock().expect("lock").push((up, down));
            }
        });
        Proxy {
            addr,
            links,
            swallow,
            hold,
        }
    }

    fn cut(&self, index: usize) {
        let links = self.links.lock().expect("lock");
        let (up, down) = &links[index];
        up.abort();
        down.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    swallow: Arc<AtomicBool>,
    mut held: Option<tokio::sync::watch::Receiver<bool>>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(held) = &mut held {
            if held.wait_for(|held| !*held).await.is_err() {
                return;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // A peer that vanished without a reset: bytes go in, nothing comes out.
        if swallow.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_spreads_calls_fails_only_the_broken_connection_and_heals() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let proxy = Proxy::start(server.addr).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", proxy.addr))
        .expect("endpoint")
        .pool_size(4);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    assert_eq!(channel.connections().len(), 4);

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..400 {
        let mut client = EchoClient::new(channel.clone());
        calls.spawn(async move {
            client
                .sleep(SleepRequest {
                    millis: 1_000,
                    token: String::new(),
                })
                .await
        });
    }
    let running = Arc::clone(&server.service.running);
    wait_until("400 calls running", || {
        running.load(Ordering::SeqCst) == 400
    })
    .await;
    let stats = channel.connection_stats();
    assert_eq!(stats.len(), 4);
    for (i, conn) in stats.iter().enumerate() {
        assert!(
            conn.in_flight > 0,
            "connection {i} carries no call: {stats:?}"
        );
    }
    let on_cut = stats[1].in_flight;

    proxy.cut(1);
    let mut ok = 0;
    let mut unavailable = 0;
    let results = tokio::time::timeout(BOUND, async {
        while let Some(result) = calls.join_next().await {
            match result.expect("task") {
                Ok(_) => ok += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                    unavailable += 1;
                }
            }
        }
    })
    .await;
    assert!(results.is_ok(), "calls did not finish");
    assert_eq!(unavailable, on_cut, "only the cut connection's calls fail");
    assert_eq!(ok + unavailable, 400);

    wait_until("pool healed", || {
        channel
            .connections()
            .iter()
            .filter(|c| !c.is_closed())
            .count()
            == 4
    })
    .await;
    let mut client = EchoClient::new(channel.clone());
    for id in 0..20 {
        let reply = client
            .echo(EchoRequest {
                payload: Bytes::from_static(b"after"),
                id,
            })
            .await
            .expect("after healing");
        assert_eq!(reply.into_inner().id, id);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_on_the_same_port_reconnects_with_backoff() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let addr = server.addr;
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .backoff(Backoff::starting_at(Duration::from_millis(50)).max(Duration::from_millis(400)));
    let mut client = EchoClient::connect(endpoint).await.expect("connect");
    client.echo(EchoRequest::default()).await.expect("first");
    server.stop().await;

    // Down: a call with a 200 ms deadline fails by then, with a code a program can act on.
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = client.echo(request).await.expect_err("server is down");
    assert!(
        matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
        "{err:?}"
    );
    // By then, give or take a loaded machine (`cargo test` runs this binary's tests at once,
    // on CI's 2 cores, where a stall of a few seconds happens): within BOUND (10 s), not the
    // 20 s of a connect timeout.
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());

    let restarted = restart(addr).await;
    let started = Instant::now();
    let mut succeeded = false;
    // Bounded: 500 calls, BOUND. Fail-fast calls made while the pool backs off fail at once,
    // so the caller paces its retries.
    for _ in 0..500 {
        let mut request = Request::new(EchoRequest::default());
        request.set_timeout(Duration::from_millis(500));
        if client.echo(request).await.is_ok() {
            succeeded = true;
            break;
        }
        assert!(started.elapsed() < BOUND);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(succeeded, "no call succeeded after the restart");
    assert!(restarted.service.served.load(Ordering::SeqCst) >= 1);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_detects_a_peer_that_stops_answering() {
    let server = TestServer::start(loopback(), lenient()).expect("server");
    let proxy = Proxy::start(server.addr).await;
    let interval = Duration::from_millis(200);
    let timeout = Duration::from_millis(300);
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", proxy.addr))
        .expect("endpoint")
        .keepalive(Some(Keepalive::new(interval, timeout)));
    let mut client = EchoClient::connect(endpoint).await.expect("connect");
    // Pings flow while the peer answers: a call longer than several intervals succeeds.
    client
        .sleep(SleepRequest {
            millis: 700,
            token: String::new(),
        })
        .await
        .expect("keepalive does not disturb a healthy peer");

    let mut sleeper = client.clone();
    let call = tokio::spawn(async move {
        sleeper
            .sleep(SleepRequest {
                millis: 30_000,
                token: String::new(),
            })
            .await
    });
    let running = Arc::clone(&server.service.running);
    wait_until("call running", || running.load(Ordering::SeqCst) == 1).await;
    proxy.swallow.store(true, Ordering::SeqCst);
    // Detected within interval + timeout (0.5 s), plus slack for a loaded machine (`cargo test`
    // runs this binary's tests at once, on CI's 2 cores, where a stall of a few seconds
    // happens): within BOUND (10 s), not the 30 s call, nor TCP's minutes.
    let result = tokio::time::timeout(BOUND, call)
        .await
        .expect("the call must fail within BOUND, not hang")
        .expect("task");
    let err = result.expect_err("peer stopped answering");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_polices_pings_that_come_too_often() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .keepalive(Some(Keepalive::new(
            Duration::from_millis(20),
            Duration::from_secs(5),
        )));
    let mut client = EchoClient::connect(endpoint).await.expect("connect");
    let conn = client_connection(&mut client);
    let err = tokio::time::timeout(
        BOUND,
        client.sleep(SleepRequest {
            millis: 5_000,
            token: String::new(),
        }),
    )
    .await
    .expect("bounded")
    .expect_err("the server closes a connection that pings every 20 ms");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let reason = conn.closed_reason().expect("closed");
    assert!(reason.message().contains("too_many_pings"), "{reason:?}");
    server.stop().await;
}

fn client_connection(client: &mut EchoClient) -> sockrpc::transport::ClientConnection {
    let channel = client.clone().into_inner();
    channel
        .connections()
        .into_iter()
        .next()
        .expect("a connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_calls_and_new_calls_reach_a_new_server() {
    let first = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let addr = first.addr;
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .backoff(Backoff::starting_at(Duration::from_millis(20)).max(Duration::from_millis(100)));
    let client = EchoClient::connect(endpoint).await.expect("connect");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let mut client = client.clone();
        calls.spawn(async move {
            client
                .sleep(SleepRequest {
                    millis: 500,
                    token: String::new(),
                })
                .await
        });
    }
    let running = Arc::clone(&first.service.running);
    wait_until("100 calls running", || {
        running.load(Ordering::SeqCst) == 100
    })
    .await;
    let served_by_first = Arc::clone(&first.service.served);
    let mut first = first;
    first.signal_stop();

    // The old server drops its listener at once; the new one takes the port.
    let second = restart(addr).await;
    let mut fresh = client.clone();
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(Duration::from_secs(5));
    fresh.echo(request).await.expect("a new call after GOAWAY");
    assert_eq!(
        second.service.served.load(Ordering::SeqCst),
        1,
        "went to the new server"
    );

    let mut ok = 0;
    while let Some(result) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("calls finish")
    {
        result.expect("task").expect("in-flight call lost");
        ok += 1;
    }
    assert_eq!(ok, 100);
    assert_eq!(served_by_first.load(Ordering::SeqCst), 100);
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_and_the_pool_grows_back_under_load() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    // Each connection takes 8 calls before the next gets any (see `share.rs`): 30 calls need
    // the extras back.
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(3)
        .calls_per_connection(8)
        .idle_timeout(Duration::from_millis(100));
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    assert_eq!(live(&channel), 3);
    // Nothing to do: the extras close, the first stays.
    wait_until("pool shrank to one", || live(&channel) == 1).await;

    // Load comes back: concurrent calls find the one connection full and reopen the others.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let mut client = EchoClient::new(channel.clone());
        calls.spawn(async move {
            client
                .sleep(SleepRequest {
                    millis: 300,
                    token: String::new(),
                })
                .await
        });
    }
    wait_until("pool grew back", || live(&channel) == 3).await;
    while let Some(result) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("calls finish")
    {
        result.expect("task").expect("call");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_resolve_and_every_address_is_tried() {
    // `localhost` may resolve to ::1 before 127.0.0.1; the server listens on 127.0.0.1 only, so
    // a client that tried just the first address would fail where the resolver lists ::1 first.
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let uri = format!("tcp://localhost:{}", server.addr.port());
    let mut client = EchoClient::connect(uri.as_str())
        .await
        .expect("connect by name");
    client.echo(EchoRequest::default()).await.expect("call");
    let err = EchoClient::connect("tcp://no-such-host.invalid:1")
        .await
        .expect_err("unresolvable");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    server.stop().await;
}
