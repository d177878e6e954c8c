//! tonic's `http2_keep_alive.rs`, in tonic's own forms: a server built with
//! `http2_keepalive_interval(Some(..))`, served from `TcpIncoming::from(listener)` until a
//! shutdown signal, and a channel from `Channel::from_shared(..)?.http2_keep_alive_interval(..)`
//! connected with `connect().await`. Both set sockrpc's PING keepalive (there are no HTTP/2
//! PINGs here); what tonic checks is that calls go through with it on, and that the server's
//! shutdown returns, which is what these check.

use crate::support::bounded;
use sockrpc::transport::server::TcpIncoming;
use sockrpc::transport::{Channel, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

/// tonic's server of both tests: keepalive every `interval`, served until `tx` fires.
async fn serve(interval: Duration) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let (tx, rx) = oneshot::channel::<()>();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let jh = tokio::spawn(async move {
        Server::builder()
            .http2_keepalive_interval(Some(interval))
            .add_service(TestServer::new(Svc))
            .serve_with_incoming_shutdown(incoming, async { drop(rx.await) })
            .await
            .expect("serves");
    });
    (addr, tx, jh)
}

#[tokio::test]
async fn http2_keepalive_does_not_cause_panics() {
    let (addr, tx, jh) = serve(Duration::from_secs(10)).await;
    let mut client = bounded("connect", TestClient::connect(format!("http://{addr}")))
        .await
        .expect("connects");
    let res = bounded("call", client.unary_call(Request::new(Input {}))).await;
    assert!(res.is_ok(), "{res:?}");
    tx.send(()).expect("server still running");
    // The client is still held, as in tonic's test: an idle connection does not hold the
    // shutdown.
    bounded("shutdown", jh).await.expect("server task");
    drop(client);
}

#[tokio::test]
async fn http2_keepalive_does_not_cause_panics_on_client_side() {
    let (addr, tx, jh) = serve(Duration::from_secs(5)).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("an address")
        .http2_keep_alive_interval(Duration::from_secs(5))
        .connect();
    let channel = bounded("connect", channel).await.expect("connects");
    let mut client = TestClient::new(channel);
    let res = bounded("call", client.unary_call(Request::new(Input {}))).await;
    assert!(res.is_ok(), "{res:?}");
    tx.send(()).expect("server still running");
    // The client is still held, as in tonic's test: an idle connection does not hold the
    // shutdown.
    bounded("shutdown", jh).await.expect("server task");
    drop(client);
}
