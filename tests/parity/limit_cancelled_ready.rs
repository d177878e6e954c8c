//! tonic's `Endpoint::concurrency_limit` with a call given up while it waits for a place (a
//! caller's timeout around it): tonic's channel is a buffer in front of the limit, so a call
//! dropped while waiting for `ready()` leaves at most a buffer slot behind, never a place under
//! the limit. A sockrpc channel's clone waits on the limit's semaphore itself: the dropped
//! call's wait stayed queued in the clone, the place freed by the call in flight went to that
//! queue, which no one polled, and every other clone's call then waited for as long as the
//! clone that gave up lived.

use crate::support::{bounded, channel_with, serve, wait_until};
use sockrpc::transport::Server;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Holds each call until `release` has a permit for it; counts the calls that arrived.
#[derive(Clone)]
struct Held {
    arrived: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

impl Test for Held {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let permit = self.release.acquire().await;
        drop(permit);
        Ok(Response::new(Output::default()))
    }
}

#[tokio::test]
async fn a_call_given_up_while_waiting_for_a_place_leaves_none_held() {
    let held = Held {
        arrived: Arc::default(),
        release: Arc::new(Semaphore::new(0)),
    };
    let server = serve(Server::builder().add_service(TestServer::new(held.clone())));
    let channel = channel_with(server.addr, |endpoint| endpoint.concurrency_limit(1)).await;
    let mut first = TestClient::new(channel.clone());
    let running = tokio::spawn(async move { first.unary_call(Input {}).await });
    wait_until("the first call at the server", || {
        held.arrived.load(Ordering::SeqCst) == 1
    })
    .await;

    // A call on another clone waits for the place, and its caller gives up.
    let mut impatient = TestClient::new(channel.clone());
    let given_up =
        tokio::time::timeout(Duration::from_millis(100), impatient.unary_call(Input {})).await;
    assert!(given_up.is_err(), "no place while the first call runs");

    // The first call ends; a third clone's call takes the place it gave back.
    held.release.add_permits(2);
    bounded("the first call", running)
        .await
        .expect("task")
        .expect("answered");
    let mut other = TestClient::new(channel.clone());
    bounded(
        "a call on a third clone, the first call done",
        other.unary_call(Input {}),
    )
    .await
    .expect("answered");
    drop(impatient);
    server.stop().await;
}
