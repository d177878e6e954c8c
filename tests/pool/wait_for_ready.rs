//! gRPC's fail-fast and wait-for-ready, for a call that finds no connection up.
//!
//! A fail-fast call (the default) waits only for the outcome of the connection attempt under
//! way (or one due within the first backoff) and fails `UNAVAILABLE` with its error, whatever
//! its deadline: a server that is down costs a caller one connect, not its whole deadline, and
//! in a longer backoff nothing at all. A wait-for-ready call
//! (`Request::set_wait_for_ready`, or `Endpoint::wait_for_ready` for every call) waits across
//! failed attempts: it is answered once the server comes up, or fails `DEADLINE_EXCEEDED` when
//! its deadline passes first, naming the last attempt's error.

use super::{TestServer, BOUND};
use sockrpc::client::Backoff;
use sockrpc::server::PingPolicy;
use sockrpc::{Channel, Code, Endpoint, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use sockrpc_tests::refused::Refused;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// An endpoint for `addr` whose reconnect backoff starts at `backoff`.
fn endpoint(addr: SocketAddr, backoff: Duration) -> Endpoint {
    Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .backoff(Backoff::starting_at(backoff).max(backoff))
}

/// An echo request with a timeout, waiting for a connection or not.
fn request(timeout: Duration, wait_for_ready: Option<bool>) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest::default());
    request.set_timeout(timeout);
    if let Some(wait) = wait_for_ready {
        request.set_wait_for_ready(wait);
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_a_long_deadline_fails_fast_when_nothing_listens() {
    let vacant = Refused::loopback();
    let addr = vacant.addr();
    // The first retry after 50 ms, the next after 50 s: longer than the test's bound, so no
    // call can be answered by a later attempt.
    let mut backoff = Backoff::starting_at(Duration::from_millis(50)).max(Duration::from_secs(50));
    backoff.multiplier = 1000.0;
    backoff.jitter = 0.0;
    let slow = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .backoff(backoff);
    let channel = Channel::lazy(slow).expect("channel");
    let mut client = EchoClient::new(channel.clone());
    let started = Instant::now();
    let err = tokio::time::timeout(BOUND, client.echo(request(Duration::from_secs(60), None)))
        .await
        .expect("a fail-fast call ends with the failed attempt, not at its 60 s deadline")
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("cannot connect"), "{err:?}");
    assert!(started.elapsed() < BOUND);
    // The first retry is due within the first backoff: the next call waits for it, and fails
    // with it. After that the retry is 50 s off: a call fails at once (it waited neither for
    // that attempt nor for the 20 s connect timeout), with the last attempt's error.
    for what in ["the first retry", "a call in a long backoff"] {
        let err = tokio::time::timeout(BOUND, client.echo(request(Duration::from_secs(60), None)))
            .await
            .unwrap_or_else(|_| panic!("{what}: a fail-fast call waited"))
            .expect_err("nothing listens");
        assert_eq!(err.code(), Code::Unavailable, "{what}: {err:?}");
        assert!(err.message().contains("cannot connect"), "{what}: {err:?}");
    }

    // A stream opens the same way.
    let other_vacant = Refused::loopback();
    let other =
        Channel::lazy(endpoint(other_vacant.addr(), Duration::from_secs(60))).expect("channel");
    let mut streamer = StreamerClient::new(other);
    let mut open = Request::new(ProduceRequest::default());
    open.set_timeout(Duration::from_secs(60));
    let err = tokio::time::timeout(BOUND, streamer.produce(open))
        .await
        .expect("a fail-fast stream ends with the failed attempt")
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_ready_call_is_answered_once_the_server_comes_up() {
    let vacant = Refused::loopback();
    let addr = vacant.addr();
    let channel = Channel::lazy(endpoint(addr, Duration::from_millis(50))).expect("channel");
    let mut waiting = EchoClient::new(channel.clone());
    let call = tokio::spawn(async move { waiting.echo(request(BOUND * 2, Some(true))).await });

    // Attempts fail meanwhile: a fail-fast call on the same channel hears so, while the
    // wait-for-ready call still waits.
    let mut client = EchoClient::new(channel.clone());
    let err = tokio::time::timeout(BOUND, client.echo(request(BOUND * 2, None)))
        .await
        .expect("the fail-fast call ends with a failed attempt")
        .expect_err("nothing listens yet");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // Past a few more failed attempts (backoff 50 ms), the waiting call is still waiting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !call.is_finished(),
        "the wait-for-ready call gave up: {call:?}"
    );

    // The server binds the port itself (its own socket options): held until just before.
    let server =
        TestServer::start(vacant.release(), PingPolicy::default()).expect("server on the port");
    let answer = tokio::time::timeout(BOUND, call)
        .await
        .expect("answered once the server is up")
        .expect("task");
    answer.expect("the call waited for the server and reached it");
    assert_eq!(server.service.served.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_ready_call_fails_deadline_exceeded_naming_the_last_attempt() {
    let vacant = Refused::loopback();
    let addr = vacant.addr();
    // Every call waits for a connection by default.
    let endpoint = endpoint(addr, Duration::from_millis(20)).wait_for_ready(true);
    let channel = Channel::lazy(endpoint).expect("channel");
    let mut client = EchoClient::new(channel);
    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let err = tokio::time::timeout(BOUND, client.echo(request(timeout, None)))
        .await
        .expect("ends at its deadline")
        .expect_err("nothing listens");
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("cannot connect"), "{err:?}");
    // It waited across the failed attempts (every 20 ms), not only the first.
    assert!(waited >= timeout, "gave up after {waited:?}");

    // The call's own choice overrides the endpoint's: fail-fast.
    let err = tokio::time::timeout(BOUND, client.echo(request(BOUND * 2, Some(false))))
        .await
        .expect("a fail-fast call ends with a failed attempt")
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}
