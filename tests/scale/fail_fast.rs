//! gRPC's fail-fast and wait-for-ready through a balanced channel: with every endpoint failing
//! (down, or `NOT_SERVING`), a fail-fast call fails `UNAVAILABLE` at once instead of waiting out
//! its deadline; a wait-for-ready call waits up to its deadline (`DEADLINE_EXCEEDED`), or until
//! an endpoint comes up.

use super::support::{Server, GREETER};
use sockrpc::service::balance::{BalanceBuilder, Balanced, Health};
use sockrpc::service::discovery::{self, Change, Discovery};
use sockrpc::transport::endpoint::Endpoint;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_health::GrpcHealthProbe;
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use sockrpc_tests::refused::Refused;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// An address on `ip` where nothing listens, for as long as the [`Refused`] lives: connecting
/// is refused.
fn refused(ip: &str) -> Refused {
    Refused::on(ip.parse().expect("ip"))
}

/// One call with `timeout` and, when given, the call's own wait-for-ready choice; bounded by
/// 20 s on top, and the time it took.
async fn call(
    channel: &Balanced,
    timeout: Option<Duration>,
    wait_for_ready: Option<bool>,
) -> (Result<String, Status>, Duration) {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    if let Some(wait) = wait_for_ready {
        request.set_wait_for_ready(wait);
    }
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), client.say_hello(request))
        .await
        .expect("the call ended within 20 s")
        .map(|reply| reply.into_inner().message);
    (result, started.elapsed())
}

/// Waits (bounded) until every endpoint of `channel` has failed a connection attempt.
async fn wait_all_failing(channel: &Balanced) {
    for _ in 0..500 {
        let stats = channel.stats();
        if !stats.is_empty() && stats.iter().all(|s| s.failure.is_some()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("endpoints never failed: {:?}", channel.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_call_fails_at_once_when_every_endpoint_is_down() {
    let down = [refused("127.0.0.1"), refused("127.0.0.2")];
    let channel = Channel::balance(
        discovery::fixed(down.iter().map(|a| format!("tcp://{}", a.addr()))).expect("endpoints"),
    );
    // The first call waits for the first attempts (as gRPC's CONNECTING), then fails with them.
    let (first, _) = call(&channel, Some(Duration::from_secs(60)), None).await;
    let status = first.expect_err("nothing listens");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("failing"), "{status}");
    wait_all_failing(&channel).await;
    // Later calls, with a 60 s deadline, do not wait out the backoff or the 10 s wait.
    for _ in 0..3 {
        let (result, took) = call(&channel, Some(Duration::from_secs(60)), None).await;
        let status = result.expect_err("nothing listens");
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(
            took < Duration::from_secs(5),
            "fail-fast call waited {took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_call_waits_to_its_deadline_then_for_a_server() {
    let down = refused("127.0.0.1");
    let addr = down.addr();
    let channel = BalanceBuilder::default()
        .build(discovery::fixed([format!("tcp://{addr}")]).expect("endpoints"));
    wait_all_failing(&channel).await;

    let (result, took) = call(&channel, Some(Duration::from_millis(1500)), Some(true)).await;
    let status = result.expect_err("nothing listens");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        took >= Duration::from_millis(1400),
        "gave up after {took:?}"
    );

    // A waiting call without a deadline is answered once the server comes up; a fail-fast
    // call made meanwhile fails.
    let waiting = tokio::spawn({
        let channel = channel.clone();
        async move { call(&channel, None, Some(true)).await.0 }
    });
    let (fast, _) = call(&channel, Some(Duration::from_secs(60)), Some(false)).await;
    assert_eq!(
        fast.expect_err("down").code(),
        Code::Unavailable,
        "fail-fast"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the waiting call gave up");
    // The server comes up on the port held till now.
    let server = Server::on(down.listen(), Duration::ZERO);
    let answer = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("answered within 15 s")
        .expect("task");
    assert_eq!(answer.expect("answered"), addr.to_string());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builder_default_makes_calls_wait_and_the_call_choice_wins() {
    let down = refused("127.0.0.1");
    let addr = down.addr();
    let channel = BalanceBuilder::default()
        .wait_for_ready(true)
        .build(discovery::fixed([format!("tcp://{addr}")]).expect("endpoints"));
    wait_all_failing(&channel).await;
    let (result, took) = call(&channel, Some(Duration::from_millis(800)), None).await;
    assert_eq!(
        result.expect_err("down").code(),
        Code::DeadlineExceeded,
        "waited by default"
    );
    assert!(took >= Duration::from_millis(700), "gave up after {took:?}");
    let (result, took) = call(&channel, Some(Duration::from_secs(60)), Some(false)).await;
    assert_eq!(result.expect_err("down").code(), Code::Unavailable);
    assert!(
        took < Duration::from_secs(5),
        "fail-fast call waited {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_call_fails_at_once_when_every_endpoint_is_not_serving() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
    ];
    let channel = BalanceBuilder::default()
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(
            discovery::fixed(servers.iter().map(|s| format!("tcp://{}", s.addr)))
                .expect("endpoints"),
        );
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("2 serving");
    for server in &servers {
        server.health.set_not_serving(GREETER);
    }
    for _ in 0..500 {
        if channel
            .stats()
            .iter()
            .all(|s| s.health == Health::NotServing)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (result, took) = call(&channel, Some(Duration::from_secs(60)), None).await;
    let status = result.expect_err("none serving");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("not serving"), "{status}");
    assert!(
        took < Duration::from_secs(5),
        "fail-fast call waited {took:?}"
    );

    // Wait-for-ready waits for one to serve again.
    let waiting = tokio::spawn({
        let channel = channel.clone();
        async move {
            call(&channel, Some(Duration::from_secs(15)), Some(true))
                .await
                .0
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the waiting call gave up");
    servers[1].health.set_serving(GREETER);
    let answer = waiting.await.expect("task").expect("answered");
    assert_eq!(answer, servers[1].addr.to_string());
    for server in servers {
        server.shutdown().await;
    }
}

/// The endpoints' `Endpoint::wait_for_ready` holds for a call made before discovery answered,
/// and their `Endpoint::timeout` bounds a waiting call that set no deadline.
#[tokio::test(flavor = "current_thread")]
async fn endpoint_defaults_apply_before_discovery_answers() {
    let down = refused("127.0.0.1");
    let addr = down.addr();
    let template = |timeout: Option<Duration>| {
        move |a: SocketAddr| {
            let endpoint = Endpoint::from_uri(&format!("tcp://{a}"))
                .expect("endpoint")
                .wait_for_ready(true);
            match timeout {
                Some(t) => endpoint.timeout(t),
                None => endpoint,
            }
        }
    };
    // Built and called at once, on one thread: the set is still empty at the first look.
    let channel = BalanceBuilder::default().build(discovery::from_addrs([addr], template(None)));
    let (result, took) = call(&channel, Some(Duration::from_millis(1500)), None).await;
    let status = result.expect_err("nothing listens");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    assert!(
        took >= Duration::from_millis(1400),
        "gave up after {took:?}"
    );
    assert!(
        status.message().contains("refused"),
        "names the failure: {status}"
    );
    // No deadline on the call: the endpoints' 1 s timeout is its deadline.
    let channel = BalanceBuilder::default().build(discovery::from_addrs(
        [addr],
        template(Some(Duration::from_secs(1))),
    ));
    let (result, took) = call(&channel, None, None).await;
    assert_eq!(result.expect_err("down").code(), Code::DeadlineExceeded);
    assert!(took >= Duration::from_millis(900), "gave up after {took:?}");
}

/// A set discovery says is empty fails fail-fast calls at once: an empty fixed list, and a
/// set whose every endpoint was removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_set_fails_fail_fast_calls_at_once() {
    let empty = Channel::balance(discovery::fixed(Vec::<String>::new()).expect("empty list"));
    let (result, took) = call(&empty, Some(Duration::from_secs(60)), None).await;
    let status = result.expect_err("no endpoint");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("no endpoints"), "{status}");
    assert!(took < Duration::from_secs(5), "waited {took:?}");

    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let (changes, source) = Discovery::channel();
    let key = server.addr.to_string();
    changes
        .send(Change::insert(
            key.clone(),
            Endpoint::from_uri(&format!("tcp://{}", server.addr)).expect("endpoint"),
        ))
        .expect("send");
    let channel = Channel::balance(source);
    channel.ready(1, Duration::from_secs(10)).await.expect("up");
    let (answer, _) = call(&channel, Some(Duration::from_secs(5)), None).await;
    answer.expect("answered");
    changes.send(Change::Remove(key)).expect("send");
    for _ in 0..500 {
        if channel.stats().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (result, took) = call(&channel, Some(Duration::from_secs(60)), None).await;
    assert_eq!(result.expect_err("removed").code(), Code::Unavailable);
    assert!(took < Duration::from_secs(5), "waited {took:?}");
    server.shutdown().await;
}

/// A source about to send its answer to an error (`Problem::clear_after`), which the channel
/// has not applied yet: a fail-fast call in between waits for the endpoints and is answered,
/// instead of failing with no endpoint (the window when a DNS name that was gone comes back).
/// The error clears only once every change of the answer is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_fast_call_waits_for_an_answer_on_its_way() {
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let key = server.addr.to_string();
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr)).expect("endpoint");
    let (changes, source) = Discovery::channel();
    let problem = discovery::Problem::default();
    let channel = Channel::balance(source.with_problem(problem.clone()));
    changes
        .send(Change::insert(key.clone(), endpoint.clone()))
        .expect("send");
    channel.ready(1, Duration::from_secs(10)).await.expect("up");
    // The name goes: discovery says why, and the endpoint leaves (applied once it is gone).
    problem.set("the name is gone");
    changes.send(Change::Remove(key.clone())).expect("send");
    for _ in 0..500 {
        if channel.stats().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(channel.stats().is_empty(), "{:?}", channel.stats());
    // The driver's last step for the removal, after the set went empty, is done well before.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (result, _) = call(&channel, Some(Duration::from_secs(60)), None).await;
    let status = result.expect_err("no endpoint");
    assert_eq!(status.code(), Code::Unavailable, "{status}");
    assert!(status.message().contains("the name is gone"), "{status}");
    // The name is back: the source will send its answer (two changes, held back here).
    problem.clear_after(2);
    let waiting = tokio::spawn({
        let channel = channel.clone();
        async move { call(&channel, Some(Duration::from_secs(60)), None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "{:?}", waiting.await);
    changes
        .send(Change::Remove("a server long gone".into()))
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "{:?}", waiting.await);
    assert_eq!(problem.get().as_deref(), Some("the name is gone"));
    changes.send(Change::insert(key, endpoint)).expect("send");
    let (answer, _) = waiting.await.expect("join");
    answer.expect("answered by the endpoint on its way");
    assert_eq!(problem.get(), None, "cleared once applied");
    server.shutdown().await;
}
