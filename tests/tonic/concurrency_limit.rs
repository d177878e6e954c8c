//! tonic's `Endpoint::concurrency_limit`: at most that many calls in flight on the channel,
//! all its clones together (tonic's channel is one buffered service; a sockrpc channel's
//! clones share the limit). The server holds every call until the test lets them go, and
//! counts how many it holds at once.

use crate::support::bounded;
use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const LIMIT: usize = 2;
const CALLS: usize = 6;

/// Holds each call until `release` has a permit for it; counts the calls it holds.
#[derive(Clone)]
struct Held {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

impl Test for Held {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let permit = self.release.acquire().await;
        drop(permit);
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(Response::new(Output::default()))
    }
}

#[tokio::test]
async fn calls_past_the_limit_wait_for_one_to_end() {
    let held = Held {
        now: Arc::default(),
        most: Arc::default(),
        release: Arc::new(Semaphore::new(0)),
    };
    let server = Running::start(Server::builder().add_service(TestServer::new(held.clone())));
    let endpoint = Endpoint::from_shared(format!("tcp://{}", server.addr))
        .expect("uri")
        .concurrency_limit(LIMIT);
    let channel = bounded("connect", endpoint.connect())
        .await
        .expect("connect");
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        // A clone per call: the limit is the channel's, not each clone's.
        let mut client = TestClient::new(channel.clone());
        calls.spawn(async move { client.unary_call(Input {}).await });
    }
    bounded("the first calls reach the server", async {
        while held.now.load(Ordering::SeqCst) < LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // Time for the others to arrive, were they not held back (bounded; a pass proves
    // nothing about speed, and a loaded machine only makes a wrong pass less likely).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(held.now.load(Ordering::SeqCst), LIMIT, "past the limit");

    // Let every call go: each one that ends lets one more in, never more than the limit.
    held.release.add_permits(CALLS);
    let mut done = 0;
    while let Some(result) = bounded("a call ends", calls.join_next()).await {
        result.expect("task").expect("call");
        done += 1;
    }
    assert_eq!(done, CALLS);
    assert_eq!(held.most.load(Ordering::SeqCst), LIMIT);
    server.stop().await;
}
