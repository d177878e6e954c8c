//! tonic's `load_shed.rs`: a server with no room for a call refuses it at once with
//! `RESOURCE_EXHAUSTED` (the handler never runs); with room, the call succeeds. tonic's
//! `concurrency_limit_per_connection(n)` with `load_shed(true)` is sockrpc's `LoadShedLayer`
//! (a limit across connections); tower's own `LoadShedLayer` over a full
//! `ConcurrencyLimitLayer` refuses the same way.

use crate::support::{bounded, channel, serve_layered};
use sockrpc::middleware::limit::LoadShedLayer;
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
struct Svc {
    calls: Arc<AtomicUsize>,
}

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Output::default()))
    }
}

async fn call_with_limit(limit: usize) -> (Result<(), Status>, usize) {
    let svc = Svc::default();
    let server = serve_layered(
        Server::builder()
            .layer(LoadShedLayer::new(limit))
            .add_service(TestServer::new(svc.clone())),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let result = bounded("call", client.unary_call(Input {}))
        .await
        .map(|_| ());
    server.stop().await;
    (result, svc.calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn service_resource_exhausted() {
    let (result, calls) = call_with_limit(0).await;
    let err = result.expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(calls, 0, "the handler ran");
}

#[tokio::test]
async fn service_resource_not_exhausted() {
    let (result, calls) = call_with_limit(1).await;
    result.expect("room for one");
    assert_eq!(calls, 1);
}

#[tokio::test]
async fn tower_load_shed_over_a_full_concurrency_limit() {
    let svc = Svc::default();
    let server = serve_layered(
        Server::builder()
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::ConcurrencyLimitLayer::new(0))
            .add_service(TestServer::new(svc.clone())),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("call", client.unary_call(Input {}))
        .await
        .expect_err("no room");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(svc.calls.load(Ordering::SeqCst), 0, "the handler ran");
    server.stop().await;
}
