//! tonic's `routes.rs` and `routes_builder.rs` as tonic writes them: `Routes::default()` and
//! `RoutesBuilder::default()` filled by reference (`routes.add_service(a).add_service(b)` on a
//! `let mut`), then handed to `add_routes`: `sockrpc::service::{Routes, RoutesBuilder}`,
//! tonic's `tonic::service` names, also at tonic's older `transport::server` path (sockrpc's
//! own `Router` takes and returns itself, which a by-reference chain cannot use). One channel
//! reaches both services, unary and streaming.

use crate::support::{bounded, channel, serve, Test1Svc};
use futures_util::StreamExt;
use sockrpc::service::Routes;
use sockrpc::transport::server::RoutesBuilder;
use sockrpc::{Request, Response, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Input1, Output};

struct Svc1;

impl Test for Svc1 {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: "svc1".into(),
        }))
    }
}

/// Calls both services through one channel: `Test`, then `Test1` unary and streaming.
async fn both_served(server: crate::support::Running) {
    let channel = channel(server.addr).await;
    let mut client1 = TestClient::new(channel.clone());
    let mut client2 = Test1Client::new(channel);
    let resp1 = bounded("svc1", client1.unary_call(Input {}))
        .await
        .expect("Test")
        .into_inner();
    assert_eq!(resp1.message, "svc1");
    let hello = Input1 {
        buf: b"hello".to_vec().into(),
    };
    let resp2 = bounded("svc2", client2.unary_call(hello))
        .await
        .expect("Test1")
        .into_inner();
    assert_eq!(&resp2.buf[..], b"hello");
    let world = Input1 {
        buf: b"world".to_vec().into(),
    };
    let mut stream = bounded("svc2 stream", client2.stream_call(world))
        .await
        .expect("Test1 stream")
        .into_inner();
    let first = bounded("first", stream.next())
        .await
        .expect("one item")
        .expect("a message");
    assert_eq!(&first.buf[..], b"world");
    assert!(bounded("end", stream.next()).await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn multiple_service_using_routes() {
    let mut routes = Routes::default();
    routes
        .add_service(TestServer::new(Svc1))
        .add_service(Test1Server::new(Test1Svc::default()));
    both_served(serve(Server::builder().add_routes(routes))).await;
}

#[tokio::test]
async fn multiple_service_using_routes_builder() {
    let mut routes_builder = RoutesBuilder::default();
    routes_builder
        .add_service(TestServer::new(Svc1))
        .add_service(Test1Server::new(Test1Svc::default()));
    both_served(serve(Server::builder().add_routes(routes_builder.routes()))).await;
}

#[tokio::test]
async fn routes_new_then_one_more() {
    let mut routes = Routes::new(TestServer::new(Svc1));
    routes.add_service(Test1Server::new(Test1Svc::default()));
    both_served(serve(Server::builder().add_routes(routes.prepare()))).await;
}
