//! A health watch that ends while its connection stays up, cleanly (the server's OK status
//! after some answers) or with an error other than UNIMPLEMENTED: as in grpc-go's health client
//! (gRFC A17: "any other status"), the endpoint leaves the rotation (TRANSIENT_FAILURE) until a
//! new `Watch` answers SERVING. Its last answer no longer stands: a server that ends the stream
//! may be going away, or its health service broken. With another endpoint, calls go there;
//! alone, a fail-fast call fails UNAVAILABLE at once and a wait-for-ready call waits for the
//! answer, as with every endpoint NOT_SERVING (`fail_fast.rs`). A server whose `Watch` answers
//! once and ends is asked again after a pause, not in a loop. On tokio's paused clock: the
//! waits are the watch's own, whatever the machine's load.

use super::support::{hello, run_calls, shares, Named, GREETER};
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::service::balance::{BalanceBuilder, Balanced, EndpointStats, Health, RoundRobin};
use sockrpc::service::discovery;
use sockrpc::{Code, Request, Response, Status};
use sockrpc_health::pb::health_server::{Health as HealthService, HealthServer};
use sockrpc_health::pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use sockrpc_health::{GrpcHealthProbe, ServingStatus};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Past this many `Watch` calls, a service that answers once and ends stops answering.
const ASKED_AT_MOST: usize = 200;

/// How a `Watch` stream ends when told to.
#[derive(Clone, Copy, Debug)]
enum End {
    /// The server's OK status: the stream ends cleanly.
    Clean,
    /// `INTERNAL`, after the answers.
    Error,
}

/// What the test has the health service do: end each open `Watch` stream (`ends` raised), and
/// hold the answer of the next ones (`hold`).
#[derive(Clone, Copy, Default)]
struct Phase {
    ends: u64,
    hold: bool,
}

/// A health service whose `Watch` answers SERVING (once `hold` is off), then keeps the stream
/// open until told to end it, the way `end` says; or, `once`, ends it right after the answer.
/// It counts the `Watch` calls ([`ASKED_AT_MOST`] when it answers once and ends).
#[derive(Clone)]
struct Ending {
    end: End,
    once: bool,
    phase: Arc<tokio::sync::watch::Sender<Phase>>,
    watches: Arc<AtomicUsize>,
}

impl Ending {
    fn new(end: End) -> Ending {
        Ending {
            end,
            once: false,
            phase: Arc::new(tokio::sync::watch::Sender::new(Phase::default())),
            watches: Arc::default(),
        }
    }

    /// Ends the streams open now; the next ones answer only once [`release`](Self::release)d.
    fn end_and_hold(&self) {
        self.phase.send_modify(|p| {
            p.ends += 1;
            p.hold = true;
        });
    }

    /// The held streams answer SERVING.
    fn release(&self) {
        self.phase.send_modify(|p| p.hold = false);
    }

    fn watches(&self) -> usize {
        self.watches.load(Ordering::SeqCst)
    }
}

impl HealthService for Ending {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Err(Status::internal("Check is not asked here"))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::internal("List is not asked here"))
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let n = self.watches.fetch_add(1, Ordering::SeqCst) + 1;
        if self.once && n > ASKED_AT_MOST {
            // Asked in a loop: no more answers, so the loop waits and the paused clock moves
            // on (a loop with work to do all the time would stop it, and the test would hang
            // rather than fail).
            return Ok(Response::new(stream::pending().boxed()));
        }
        let mut answer = self.phase.subscribe();
        let mut end = self.phase.subscribe();
        let began = end.borrow().ends;
        let (how, once) = (self.end, self.once);
        let answer = async move {
            // Fails only once the service is gone: the answer goes anyway.
            let _ = answer.wait_for(|p| !p.hold).await;
            Ok(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })
        };
        let end = async move {
            if !once {
                let _ = end.wait_for(|p| p.ends > began).await;
            }
            match how {
                End::Clean => None,
                End::Error => Some(Err(Status::internal("watch broke"))),
            }
        };
        let stream = stream::once(answer).chain(stream::once(end).filter_map(|e| async move { e }));
        Ok(Response::new(stream.boxed()))
    }
}

/// A Greeter with `health` on 127.0.0.1.
async fn serve(health: Ending) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let named = Named {
        addr,
        delay: Duration::ZERO,
        sick: Default::default(),
    };
    let server = sockrpc::Server::builder()
        .add_service(sockrpc_tests::helloworld::greeter_server::GreeterServer::new(named))
        .add_service(HealthServer::new(health));
    tokio::spawn(server.serve_with_listener(listener));
    addr
}

fn balanced(addrs: &[SocketAddr]) -> Balanced {
    BalanceBuilder::default()
        .picker(RoundRobin::new())
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(discovery::fixed(addrs.iter().map(|a| format!("tcp://{a}"))).expect("endpoints"))
}

/// Waits (bounded, on the paused clock) until `addr`'s endpoint satisfies `cond`.
async fn until(channel: &Balanced, addr: SocketAddr, what: &str, cond: fn(&EndpointStats) -> bool) {
    let key = addr.to_string();
    for _ in 0..1_000 {
        if channel.stats().iter().any(|s| s.key == key && cond(s)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{key} never {what}: {:?}", channel.stats());
}

/// Out of rotation: no answer standing, and why it is failing.
fn failing(s: &EndpointStats) -> bool {
    s.connected && s.health != Health::Serving && s.health_failure.is_some()
}

fn serving(s: &EndpointStats) -> bool {
    s.connected && s.health == Health::Serving && s.health_failure.is_none()
}

/// Two endpoints; the first's watch ends the way `end` says, its next one answers only when
/// released: until then, every call goes to the second.
async fn calls_avoid_an_endpoint_whose_watch_ended(end: End) {
    let (ended, other) = (Ending::new(end), Ending::new(end));
    let (a, b) = (serve(ended.clone()).await, serve(other).await);
    let channel = balanced(&[a, b]);
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("2 serving");
    let both = shares(&run_calls(&channel, 20, 2, |_| {}).await);
    assert!(both.contains_key(&a) && both.contains_key(&b), "{both:?}");

    ended.end_and_hold();
    until(&channel, a, "failing after its watch ended", failing).await;
    let failure = channel
        .stats()
        .into_iter()
        .find(|s| s.key == a.to_string())
        .and_then(|s| s.health_failure);
    assert!(
        failure
            .as_deref()
            .is_some_and(|f| f.contains("health check RPC")),
        "{failure:?}"
    );
    // Watched again after the pause (200 ms); that watch has not answered.
    for _ in 0..100 {
        if ended.watches() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ended.watches(), 2, "watched again once");

    // For 2 s, every call goes to the other endpoint, and the held watch is left to answer.
    for _ in 0..10 {
        let results = run_calls(&channel, 10, 2, |_| {}).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let to = shares(&results);
        assert!(
            !to.contains_key(&a),
            "{end:?}: the ended endpoint took calls: {to:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        ended.watches(),
        2,
        "the unanswered watch is waited for, not asked again"
    );

    // It answers SERVING: back in rotation.
    ended.release();
    until(&channel, a, "serving again", serving).await;
    let back = shares(&run_calls(&channel, 20, 2, |_| {}).await);
    assert!(back.contains_key(&a), "{back:?}");
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_whose_watch_ended_cleanly_takes_no_calls_until_it_answers_again() {
    calls_avoid_an_endpoint_whose_watch_ended(End::Clean).await;
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_whose_watch_failed_after_answers_takes_no_calls_until_it_answers_again() {
    calls_avoid_an_endpoint_whose_watch_ended(End::Error).await;
}

/// One call with a 30 s deadline and the given wait-for-ready choice.
async fn call(channel: &Balanced, wait_for_ready: bool) -> Result<String, Status> {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_secs(30));
    request.set_wait_for_ready(wait_for_ready);
    tokio::time::timeout(Duration::from_secs(40), client.say_hello(request))
        .await
        .map_err(|_| Status::internal("HANG: the call outlived its deadline"))?
        .map(|reply| reply.into_inner().message)
}

/// The only endpoint's watch ended cleanly: as with it NOT_SERVING, a fail-fast call fails
/// UNAVAILABLE at once, naming why, and a wait-for-ready call waits for its next answer.
#[tokio::test(start_paused = true)]
async fn alone_an_endpoint_whose_watch_ended_fails_fast_calls_and_holds_waiting_ones() {
    let health = Ending::new(End::Clean);
    let addr = serve(health.clone()).await;
    let channel = balanced(&[addr]);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("serving");
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);

    health.end_and_hold();
    until(&channel, addr, "failing after its watch ended", failing).await;
    let started = Instant::now();
    let err = call(&channel, false).await.expect_err("fail fast");
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("health check RPC"), "{err}");
    assert!(waited < Duration::from_secs(1), "waited {waited:?}: {err}");

    let waiting = tokio::spawn({
        let channel = channel.clone();
        async move { call(&channel, true).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        !waiting.is_finished(),
        "the wait-for-ready call did not wait"
    );
    health.release();
    let answer = waiting
        .await
        .expect("call task")
        .expect("answered once serving");
    assert_eq!(answer, addr.to_string());
}

/// A server whose `Watch` answers SERVING and ends at once, every time (a `Check` in disguise),
/// is asked again every 200 ms, not in a loop: about 55 times in 11 s.
#[tokio::test(start_paused = true)]
async fn a_watch_that_answers_once_and_ends_is_asked_again_after_a_pause() {
    let mut health = Ending::new(End::Clean);
    health.once = true;
    let addr = serve(health.clone()).await;
    // Not waited for as serving: its answer stands for an instant only.
    let _channel = balanced(&[addr]);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let asked = health.watches();
    assert!((10..=70).contains(&asked), "{asked} Watch calls in 11 s");
}
