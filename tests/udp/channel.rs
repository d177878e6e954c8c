//! The UDP path through a `Channel` and a `Router`: what fits goes over UDP, the rest over TCP,
//! and the `.proto`'s idempotency levels reach the server.

use crate::support::{eventually, stop_server, Counting, BOUND};
use bytes::Bytes;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc::{Channel, Request, Response, Router, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A `Server` on TCP and UDP with the echo service, and a channel to it using `policy`.
struct Served {
    handlers: Counting,
    channel: Channel,
    client: EchoClient<Channel>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start(
        config: UdpServerConfig,
        policy: impl FnOnce(SocketAddr) -> UdpPolicy,
    ) -> Served {
        let handlers = Counting::default();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
        let tcp_addr = listener.local_addr().expect("addr");
        let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
        let udp_addr = udp_socket.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            sockrpc::Server::builder()
                .udp(udp_socket, config)
                .add_service(EchoServer::new(handlers.clone()))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
            .expect("endpoint")
            .udp_policy(Some(policy(udp_addr)))
            .timeout(Duration::from_secs(20));
        let channel = Channel::connect(endpoint).await.expect("connect");
        let client = EchoClient::new(channel.clone());
        Served {
            handlers,
            channel,
            client,
            stop,
            task,
        }
    }

    fn udp_stats(&self) -> sockrpc::service::udp::UdpClientStats {
        self.channel.udp_stats().expect("udp set up")
    }

    /// One call first (cookie and watermarks set up); then a `Sleep` call of `millis`, which
    /// holds the client's watermark until it answers, and `later` echo calls (ids 1 on) made
    /// while it runs.
    async fn behind_straggler(
        &mut self,
        millis: u64,
        later: u64,
    ) -> JoinHandle<Result<(), Status>> {
        self.client.echo(echo(0, 32)).await.expect("first call");
        let straggler = self.straggler(millis).await;
        for id in 1..=later {
            let call = self.client.echo(echo(id, 32));
            call.await.expect("a call behind the straggler");
        }
        straggler
    }

    /// Starts a `Sleep` call of `millis` over UDP, and waits until its handler runs: until it
    /// answers, it holds the client's watermark.
    async fn straggler(&self, millis: u64) -> JoinHandle<Result<(), Status>> {
        let mut client = self.client.clone();
        let task = tokio::spawn(async move {
            let sleep = SleepRequest {
                millis,
                token: String::new(),
            };
            client.sleep(sleep).await.map(drop)
        });
        let sleeps = &self.handlers.sleeps;
        eventually("the straggler runs", || sleeps.load(Ordering::SeqCst) == 1).await;
        task
    }

    async fn shutdown(self) {
        stop_server(self.stop, self.task).await;
    }
}

fn echo(id: u64, len: usize) -> EchoRequest {
    EchoRequest {
        payload: Bytes::from(vec![id as u8; len]),
        id,
    }
}

/// The whole path through a `Channel`: small calls go over UDP, a reply too large for a datagram
/// comes back over TCP from the UDP side's cache (the handler runs once), large requests use TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_uses_udp_when_it_fits_and_tcp_for_the_rest() {
    let mut served = Served::start(UdpServerConfig::default(), UdpPolicy::new).await;
    let handlers = served.handlers.clone();
    for id in 0..20u64 {
        let reply = served
            .client
            .echo(echo(id, 32))
            .await
            .expect("small call")
            .into_inner();
        assert_eq!(reply.id, id);
        assert_eq!(reply.payload.len(), 32);
    }
    let stats = served.udp_stats();
    assert!(stats.replies >= 20, "small calls went over UDP: {stats:?}");

    // Too large to answer in a datagram: truncated, then fetched over TCP without a rerun.
    let grows_before = handlers.grows.load(Ordering::SeqCst);
    let reply = served
        .client
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
    assert!(served.udp_stats().truncations >= 1);

    // Too large to ask in a datagram: TCP from the start.
    let echoes_before = handlers.echoes.load(Ordering::SeqCst);
    let reply = served
        .client
        .echo(echo(99, 10_000))
        .await
        .expect("large request")
        .into_inner();
    assert_eq!(reply.payload.len(), 10_000);
    assert_eq!(handlers.echoes.load(Ordering::SeqCst), echoes_before + 1);
    served.shutdown().await;
}

/// A call that a full reply cache refuses unrun comes back marked so (REPLY's
/// `FLAG_NOT_PROCESSED`), and the channel sends it over TCP: the caller gets its answer and the
/// handler runs once. The cache (`UdpServerConfig::reply_cache`, 2 entries) is filled the way
/// load fills it: a slow call holds the client's watermark while later calls finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_by_a_full_reply_cache_goes_over_tcp() {
    let mut config = UdpServerConfig::default();
    config.reply_cache.max_entries = 2;
    // The straggler is dropped unanswered at the end: do not wait for it at shutdown.
    config.grace_period = Duration::from_millis(50);
    let mut served = Served::start(config, UdpPolicy::new).await;
    let straggler = served.behind_straggler(15_000, 2).await;
    let before = served.udp_stats();
    let echoes = served.handlers.echoes.load(Ordering::SeqCst);

    let reply = served
        .client
        .echo(echo(3, 32))
        .await
        .expect("answered over TCP");
    assert_eq!(reply.into_inner().id, 3);
    let echoed = served.handlers.echoes.load(Ordering::SeqCst);
    assert_eq!(echoed, echoes + 1, "ran once");
    let after = served.udp_stats();
    assert_eq!(after.refused, before.refused + 1, "{after:?}");
    assert_eq!(
        after.calls,
        before.calls + 1,
        "sent over UDP once: {after:?}"
    );
    straggler.abort();
    served.shutdown().await;
}

/// A call long unanswered holds its client's watermark, and the server keeps every answer
/// made since: so a client starts at most `max_window` calls past its oldest unanswered one.
/// The calls past it go over TCP (`NotSuitable`, counted `window_full`), and once the slow call
/// ends, calls go over UDP again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_window_of_a_slow_call_go_over_tcp() {
    let mut served = Served::start(UdpServerConfig::default(), |addr| {
        let mut policy = UdpPolicy::new(addr);
        policy.config.max_window = 3;
        policy
    })
    .await;
    // The straggler and the two calls after it fill the window of 3.
    let straggler = served.behind_straggler(200, 2).await;
    let before = served.udp_stats();
    let reply = served.client.echo(echo(3, 32)).await.expect("over TCP");
    assert_eq!(reply.into_inner().id, 3);
    let after = served.udp_stats();
    assert_eq!(after.window_full, before.window_full + 1, "{after:?}");
    assert_eq!(after.calls, before.calls, "not sent over UDP: {after:?}");

    tokio::time::timeout(BOUND, straggler)
        .await
        .expect("the straggler ends")
        .expect("task")
        .expect("the slow call succeeds");
    served
        .client
        .echo(echo(4, 32))
        .await
        .expect("over UDP again");
    let last = served.udp_stats();
    assert_eq!(last.calls, after.calls + 1, "{last:?}");
    assert_eq!(last.window_full, after.window_full, "{last:?}");
    let echoed = served.handlers.echoes.load(Ordering::SeqCst);
    assert_eq!(echoed, 5, "each ran once");
    served.shutdown().await;
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

/// A closed channel's UDP client stops: the channel lets it go (its socket and its timer task
/// go with it, `udp_stats` has none to show), and a small call after the close goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_channel_lets_its_udp_client_go() {
    let mut served = Served::start(UdpServerConfig::default(), UdpPolicy::new).await;
    served.client.echo(echo(1, 32)).await.expect("a UDP call");
    assert!(served.udp_stats().replies >= 1);
    let echoes = served.handlers.echoes.load(Ordering::SeqCst);
    served.channel.close();
    tokio::time::timeout(BOUND, served.channel.closed())
        .await
        .expect("closed() resolves");
    assert!(
        served.channel.udp_stats().is_none(),
        "the closed channel still holds its UDP client"
    );
    let status = served
        .client
        .echo(echo(2, 32))
        .await
        .expect_err("a call after the close fails");
    assert_eq!(status.code(), sockrpc::Code::Unavailable, "{status:?}");
    assert_eq!(served.handlers.echoes.load(Ordering::SeqCst), echoes);
    served.shutdown().await;
}

/// `Duration::MAX` in the UDP client's durations means "never", as in every other duration
/// setter (`tests/tonic/huge_durations.rs`): a retransmit window of it was added to the call's
/// start (`started + retransmit_window`) and panicked every call made over UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_client_durations_of_duration_max_mean_never() {
    let mut served = Served::start(UdpServerConfig::default(), |addr| {
        let mut policy = UdpPolicy::new(addr);
        policy.config.retransmit_window = Duration::MAX;
        policy.config.fallback_for = Duration::MAX;
        policy
    })
    .await;
    for id in 1..=3 {
        let call = tokio::time::timeout(BOUND, served.client.echo(echo(id, 32)));
        let reply = call.await.expect("answered in time").expect("a UDP call");
        assert_eq!(reply.into_inner().id, id);
    }
    assert!(served.udp_stats().replies >= 3, "{:?}", served.udp_stats());
    served.shutdown().await;
}
