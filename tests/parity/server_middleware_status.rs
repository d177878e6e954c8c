//! tonic's `Server::builder().timeout(..)` and `load_shed(true)` are tower layers on the server
//! (`timeout.rs`, `load_shed.rs`); on sockrpc's `Server::builder().layer(..)` tower's own
//! `TimeoutLayer` and `LoadShedLayer` fail a call with their boxed errors, which the server turns
//! into the status its client receives: `DEADLINE_EXCEEDED` and `RESOURCE_EXHAUSTED`, with the
//! error's text. The text is sent to the remote caller, so it says what happened without
//! blaming middleware on the caller's side: the layers that answered were the server's.

use crate::support::{bounded, channel, serve_layered};
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::time::Duration;

/// Slower than the server's timeout (and than the test's bound, were it not cut short).
struct Slow;

impl Test for Slow {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(Response::new(Output::default()))
    }
}

#[track_caller]
fn assert_blames_no_client(err: &Status) {
    assert!(
        !err.message().contains("client"),
        "a server layer's status blames the client side: {err:?}"
    );
}

#[tokio::test]
async fn a_server_timeout_layer_answers_deadline_exceeded() {
    let server = serve_layered(
        Server::builder()
            .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
                100,
            )))
            .add_service(TestServer::new(Slow)),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("unary", client.unary_call(Input {}))
        .await
        .expect_err("the server's timeout");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("timed out"), "{err:?}");
    assert_blames_no_client(&err);
    server.stop().await;
}

#[tokio::test]
async fn a_server_load_shed_layer_answers_resource_exhausted() {
    let server = serve_layered(
        Server::builder()
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(0))
            .add_service(TestServer::new(Slow)),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("unary", client.unary_call(Input {}))
        .await
        .expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("shed"), "{err:?}");
    assert_blames_no_client(&err);
    server.stop().await;
}
