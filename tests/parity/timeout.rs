//! tonic's `timeout.rs`: a handler slower than the call's deadline is cancelled and the client
//! gets `DEADLINE_EXCEEDED` (tonic answers `CANCELLED` "Timeout expired" there; gRPC's code
//! for a deadline that passed is `DEADLINE_EXCEEDED`, and that is what sockrpc sends); the
//! nearer of the client's deadline and the server's timeout wins. The deadline may be given
//! as tonic's tests give it, a `grpc-timeout` metadata entry ("500m"), as well as with
//! `Request::set_timeout`.

use crate::support::{bounded, channel, serve, wait_until};
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sleeps far longer than any deadline here; counts the handlers that were dropped unfinished.
#[derive(Clone, Default)]
struct Slow {
    cancelled: Arc<AtomicUsize>,
}

struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Test for Slow {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let guard = CountOnDrop(Arc::clone(&self.cancelled));
        tokio::time::sleep(Duration::from_secs(100)).await;
        std::mem::forget(guard);
        Ok(Response::new(Output::default()))
    }
}

/// A call against a `Slow` handler, behind a server with `server_timeout`; checks that it
/// fails `DEADLINE_EXCEEDED` (within the test's step bound, so well before the handler's
/// 100 s) and that the handler was cancelled.
async fn deadline_case(server_timeout: Duration, request: Request<Input>) {
    let slow = Slow::default();
    let server = serve(
        Server::builder()
            .timeout(server_timeout)
            .add_service(TestServer::new(slow.clone())),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("call", client.unary_call(request))
        .await
        .expect_err("the handler is too slow");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    wait_until("the handler is cancelled", || {
        slow.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    server.stop().await;
}

fn with_grpc_timeout(value: &str) -> Request<Input> {
    let mut request = Request::new(Input {});
    request
        .metadata_mut()
        .insert_str("grpc-timeout", value)
        .expect("ascii value");
    request
}

fn with_timeout(timeout: Duration) -> Request<Input> {
    let mut request = Request::new(Input {});
    request.set_timeout(timeout);
    request
}

#[tokio::test]
async fn cancelation_on_timeout() {
    // The server allows 100 s; the client's deadline is 500 ms, in tonic's metadata form.
    deadline_case(Duration::from_secs(100), with_grpc_timeout("500m")).await;
}

#[tokio::test]
async fn cancelation_on_timeout_set_on_the_request() {
    deadline_case(
        Duration::from_secs(100),
        with_timeout(Duration::from_millis(500)),
    )
    .await;
}

#[tokio::test]
async fn picks_server_timeout_if_its_lower() {
    // The client would wait 100 s, the server allows 100 ms.
    deadline_case(Duration::from_millis(100), with_grpc_timeout("100S")).await;
    deadline_case(
        Duration::from_millis(100),
        with_timeout(Duration::from_secs(100)),
    )
    .await;
}

#[tokio::test]
async fn picks_client_timeout_if_its_lower() {
    deadline_case(Duration::from_secs(100), with_grpc_timeout("100000u")).await;
    deadline_case(
        Duration::from_secs(100),
        with_timeout(Duration::from_millis(100)),
    )
    .await;
}

#[tokio::test]
async fn grpc_timeout_units_are_understood() {
    // Seconds, milli-, micro- and nanoseconds, each far shorter than the server's timeout
    // (hours and minutes, and values that are not timeouts, are the parser's unit tests).
    for value in ["1S", "300m", "300000u", "90000000n"] {
        deadline_case(Duration::from_secs(100), with_grpc_timeout(value)).await;
    }
}

/// Answers at once.
#[derive(Clone, Default)]
struct Quick;

impl Test for Quick {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

/// `Duration::MAX` as a timeout ("no hurry"), on the request, the endpoint and the server, is
/// the longest timeout there is, not a panic adding it to the clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_timeout_is_no_panic() {
    let server = serve(
        Server::builder()
            .timeout(Duration::MAX)
            .add_service(TestServer::new(Quick)),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .timeout(Duration::MAX)
        .connect_timeout(Duration::MAX);
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = TestClient::new(channel.clone());
    bounded("default timeout", client.unary_call(Input::default()))
        .await
        .expect("call with the endpoint's timeout");
    let mut request = Request::new(Input::default());
    request.set_timeout(Duration::MAX);
    assert_eq!(request.timeout(), Some(sockrpc::MAX_TIMEOUT));
    bounded("request timeout", client.unary_call(request))
        .await
        .expect("call with its own timeout");
    server.stop().await;
}
