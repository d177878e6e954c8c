//! Unary calls in flight on a connection whose runtime ends while theirs lives on: a client in
//! a static, whose connection the first test to run made (its reader task runs on that test's
//! runtime), used by a second test at the same time; the first test returns mid-call.
//!
//! A grpc-go or tonic user expects a call in flight on a dropped connection to fail
//! `UNAVAILABLE` (retryable), not to hang, and the next call to work. The connection's reader
//! is the one that completes calls and fires their deadlines: dropped with its runtime, it
//! left every call in flight waiting forever, past its deadline.

use super::slow::{Options, SlowServer};
use super::support::{on_runtime, serving, Flavor};
use super::together::{by_deadline, Beside};
use sockrpc::{Channel, Code, Endpoint, Request, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::time::Duration;
use tokio::time::Instant;

/// How long each call in flight asks the server to take: far longer than the test waits.
const SLOW: Duration = Duration::from_secs(3);

/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(5);

pub(crate) async fn echo(channel: &Channel, id: u64) -> Result<u64, Status> {
    let mut request = Request::new(EchoRequest {
        payload: Default::default(),
        id,
    });
    request.set_timeout(DEADLINE);
    let reply = EchoClient::new(channel.clone()).echo(request).await?;
    Ok(reply.into_inner().id)
}

pub(crate) async fn slow(channel: Channel) -> Result<(), Status> {
    let mut request = Request::new(SleepRequest {
        millis: SLOW.as_millis() as u64,
        token: String::new(),
    });
    request.set_timeout(DEADLINE);
    EchoClient::new(channel).sleep(request).await.map(drop)
}

/// The first runtime connects `endpoint` (every pooled connection, to `server`) and makes a
/// call; the second starts `calls` slow calls on those connections and waits until `server` has
/// begun `at_server` of them (the others wait in the client for room in the pool), then the
/// first runtime ends: each call must fail `UNAVAILABLE` at once, and the next call must work.
pub(crate) fn in_flight_when_the_connections_runtime_ends(
    first: Flavor,
    second: Flavor,
    endpoint: Endpoint,
    server: &SlowServer,
    calls: usize,
    at_server: usize,
) {
    let (beside, channel) = Beside::start(first, move || async move {
        let channel = Channel::connect(endpoint).await.expect("connect");
        echo(&channel, 1).await.expect("the first runtime's call");
        channel
    });
    on_runtime(second, "second runtime", || async {
        let deadline = Instant::now() + DEADLINE;
        let before = server.sleeps();
        let slow_calls: Vec<_> = (0..calls)
            .map(|_| tokio::spawn(slow(channel.clone())))
            .collect();
        // The calls are sent, on the first runtime's connections: the server has them. Waited
        // for, not assumed after a while (300 ms once): a call a stalled machine had not sent
        // yet when the runtime ended would go on a new connection and succeed.
        server
            .sleeping(before + at_server, deadline, "the calls in flight")
            .await;
        beside.end().await;
        for (n, call) in slow_calls.into_iter().enumerate() {
            let what = format!("call {n} in flight");
            let ended = by_deadline(&what, deadline, call).await.expect("call task");
            let status = ended.expect_err("the server never answered it");
            assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        }
        // Long before their deadline.
        assert!(
            Instant::now() < deadline,
            "the calls ended at their deadline"
        );
        let next = echo(&channel, 2).await;
        assert_eq!(next.ok(), Some(2), "the next call on the second runtime");
    });
}

fn endpoint(server: &SlowServer) -> Endpoint {
    Endpoint::from_uri(&format!("tcp://{}", server.tcp)).expect("endpoint")
}

#[test]
fn a_unary_call_in_flight_fails_unavailable_and_the_next_works() {
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options::default()));
    for (first, second) in [
        (Flavor::Current, Flavor::Current),
        (Flavor::Multi, Flavor::Current),
        (Flavor::Current, Flavor::Multi),
    ] {
        in_flight_when_the_connections_runtime_ends(
            first,
            second,
            endpoint(&server),
            &server,
            1,
            1,
        );
    }
    drop(server);
    drop(serving);
}

#[test]
fn pooled_calls_in_flight_on_every_connection_fail_unavailable() {
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options::default()));
    // One call per connection: the second call goes on the second connection.
    let pooled = endpoint(&server).pool_size(2).calls_per_connection(1);
    // The third waits in the client: the server has two.
    in_flight_when_the_connections_runtime_ends(
        Flavor::Current,
        Flavor::Current,
        pooled,
        &server,
        3,
        2,
    );
    drop(server);
    drop(serving);
}
