//! tonic's way of making a channel, as its `connect_info.rs`, `routes.rs`, `user_agent.rs` and
//! `origin.rs` write it: `Endpoint::from_shared(..)?.connect().await?` for a channel connected
//! before its first call, `Endpoint::from_static(..).connect_lazy()` (infallible, as tonic's)
//! for one that connects on it. sockrpc's `Endpoint` lives below `Channel`, so the two methods
//! come from `EndpointExt`, imported beside the endpoint.

use crate::support::{bounded, serve, Refused};
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};

/// Answers every call.
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

#[tokio::test]
async fn endpoint_connect_returns_a_connected_channel() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc)));
    let channel = bounded(
        "connect",
        Endpoint::from_shared(format!("http://{}", server.addr))
            .expect("address")
            .connect(),
    )
    .await
    .expect("the server is up");
    // Connected before any call, as tonic's `connect` is.
    assert!(!channel.connections().is_empty(), "no connection yet");
    let mut client = TestClient::new(channel);
    bounded("unary", client.unary_call(Input {}))
        .await
        .expect("served");
    server.stop().await;
}

#[tokio::test]
async fn endpoint_connect_to_nothing_fails_unavailable() {
    let vacant = Refused::loopback();
    let err = bounded(
        "connect",
        Endpoint::from_shared(format!("http://{}", vacant.addr()))
            .expect("address")
            .connect(),
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test]
async fn endpoint_connect_lazy_connects_on_the_first_call() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc)));
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("address")
        .connect_lazy();
    assert!(channel.connections().is_empty(), "connected before a call");
    let mut client = TestClient::new(channel.clone());
    bounded("unary", client.unary_call(Request::new(Input {})))
        .await
        .expect("served");
    assert!(!channel.connections().is_empty(), "the call connected it");
    server.stop().await;
}
