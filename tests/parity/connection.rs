//! tonic's `connection.rs` and `http2_keep_alive.rs`: a connect that cannot succeed fails, a
//! call after the server went away is `UNAVAILABLE`, and a lazy channel (tonic's
//! `Endpoint::connect_lazy`, here `Channel::lazy`) fails its first call while nothing listens,
//! succeeds once the server is up, and fails `UNAVAILABLE` again once it stopped.

use crate::support::{bounded, channel, serve, uri, Refused, Running};
use sockrpc::{Channel, Code, Keepalive, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Answers; the first call also fires `first` (the test stops the server on it).
#[derive(Clone, Default)]
struct Svc {
    first: Arc<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        if let Some(first) = self.first.lock().expect("lock").take() {
            let _ = first.send(());
        }
        Ok(Response::new(Output::default()))
    }
}

#[tokio::test]
async fn connect_returns_err() {
    // Nothing listens: refused, UNAVAILABLE.
    let vacant = Refused::loopback();
    let err = bounded("connect", TestClient::connect(uri(vacant.addr())))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // A name that does not resolve (a reserved top-level domain) fails too, without hanging.
    let result = bounded(
        "connect",
        TestClient::connect("tcp://thisdoesntexist.invalid:50051"),
    )
    .await;
    assert!(result.is_err(), "connected to nothing");
}

#[tokio::test]
async fn connect_returns_err_via_call_after_connected() {
    let (first, first_done) = oneshot::channel();
    let svc = Svc {
        first: Arc::new(Mutex::new(Some(first))),
    };
    let server = serve(Server::builder().add_service(TestServer::new(svc)));
    let mut client = TestClient::new(channel(server.addr).await);
    bounded("first call", client.unary_call(Input {}))
        .await
        .expect("the server is up");
    bounded("first call seen", first_done)
        .await
        .expect("handler ran");
    server.stop().await;
    let err = bounded("call after shutdown", client.unary_call(Input {}))
        .await
        .expect_err("the server is gone");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test]
async fn connect_lazy_reconnects_after_first_failure() {
    let vacant = Refused::loopback();
    let mut client = TestClient::new(Channel::lazy(uri(vacant.addr())).expect("endpoint"));
    // Nothing listens yet.
    let err = bounded("first call", client.unary_call(Input {}))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // The server comes up on that port (held till now): the next call reaches it.
    let server = Running::start_on(
        vacant.listen(),
        Server::builder().add_service(TestServer::new(Svc::default())),
    );
    bounded("second call", client.unary_call(Input {}))
        .await
        .expect("the server is up now");
    // The server stops: UNAVAILABLE again.
    server.stop().await;
    let err = bounded("third call", client.unary_call(Input {}))
        .await
        .expect_err("the server is gone");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test]
async fn calls_succeed_with_keepalive_on_both_sides() {
    let keepalive = Keepalive::new(Duration::from_secs(10), Duration::from_secs(5));
    let server = serve(
        Server::builder()
            .keepalive(Some(keepalive))
            .add_service(TestServer::new(Svc::default())),
    );
    let channel = crate::support::channel_with(server.addr, |e| e.keepalive(Some(keepalive))).await;
    let mut client = TestClient::new(channel);
    bounded("call", client.unary_call(Input {}))
        .await
        .expect("keepalive does not get in the way");
    server.stop().await;
}
