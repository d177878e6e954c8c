//! tonic's `connection.rs` stops where a server went away: its calls fail `UNAVAILABLE`. Once
//! a server is back on the same address, the channel reaches it again: here for a channel
//! connected up front and a lazy one, after calls failed while the server was away.
//!
//! Where tonic differs: a tonic channel reconnects on demand, at every call, so its first call
//! after the restart succeeds. A sockrpc channel reconnects on its own with gRPC's connection
//! backoff (1 s, ×1.6, ±20 %; `docs/PROTOCOL.md`), and while the next attempt is further off
//! than the first backoff a fail-fast call (gRPC's default) fails at once, as grpc-go's does in
//! `TRANSIENT_FAILURE`: it may fail for a second or two after the server is back. A call marked
//! wait-for-ready waits for that attempt instead, and after it the channel serves every call.

use crate::support::{bounded, uri};
use sockrpc::{Channel, Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::net::SocketAddr;

#[derive(Clone, Copy, Default)]
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

fn start_at(addr: SocketAddr) -> Running {
    Running::start_at(addr, Server::builder().add_service(TestServer::new(Svc)))
}

async fn lives_through_a_restart(mut client: TestClient, first: Running) {
    let addr = first.addr;
    bounded("first call", client.unary_call(Input {}))
        .await
        .expect("the server is up");
    first.stop().await;
    // While nothing listens, calls fail (twice: a failed reconnect must not stick).
    for n in 0..2 {
        let err = bounded("call while away", client.unary_call(Input {}))
            .await
            .expect_err("the server is gone");
        assert_eq!(err.code(), Code::Unavailable, "call {n}: {err:?}");
    }
    // Back on the same address: a wait-for-ready call waits out the backoff and reaches it
    // (a fail-fast one may still be failed at once until the next attempt, see above).
    let second = start_at(addr);
    let mut request = Request::new(Input {});
    request.set_wait_for_ready(true);
    bounded(
        "wait-for-ready call after the restart",
        client.unary_call(request),
    )
    .await
    .expect("the server is back");
    // Connected again: fail-fast calls go through.
    bounded(
        "fail-fast call after the restart",
        client.unary_call(Input {}),
    )
    .await
    .expect("the connection is up");
    second.stop().await;
}

#[tokio::test]
async fn a_connected_channel_reaches_a_restarted_server() {
    let first = Running::start(Server::builder().add_service(TestServer::new(Svc)));
    let channel = bounded("connect", Channel::connect(uri(first.addr)))
        .await
        .expect("connect");
    lives_through_a_restart(TestClient::new(channel), first).await;
}

#[tokio::test]
async fn a_lazy_channel_reaches_a_restarted_server() {
    let first = Running::start(Server::builder().add_service(TestServer::new(Svc)));
    let channel = Channel::lazy(uri(first.addr)).expect("endpoint");
    lives_through_a_restart(TestClient::new(channel), first).await;
}
