//! tonic's `Endpoint::rate_limit(n, per)`, tower's `RateLimit`: at most `n` calls start in
//! each window of `per` on the channel, all its clones together; a call past it waits for the
//! next window. On tokio's paused clock, so the windows cost nothing.

use sockrpc::transport::{Endpoint, EndpointExt, Server};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;
use std::time::Duration;
use tokio::time::{timeout, Instant};

const PER_WINDOW: u64 = 2;
const WINDOW: Duration = Duration::from_secs(10);
const CALLS: u32 = 5;
/// Far past the three windows five calls need, on the paused clock.
const BOUND: Duration = Duration::from_secs(600);

struct Answers;

impl Test for Answers {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

#[tokio::test(start_paused = true)]
async fn calls_past_the_rate_wait_for_the_next_window() {
    let server = Running::start(
        Server::builder()
            .idle_timeout(None)
            .add_service(TestServer::new(Answers)),
    );
    let endpoint = Endpoint::from_shared(format!("tcp://{}", server.addr))
        .expect("uri")
        .rate_limit(PER_WINDOW, WINDOW);
    let channel = timeout(BOUND, endpoint.connect())
        .await
        .expect("in time")
        .expect("connect");
    let start = Instant::now();
    let mut ended = Vec::new();
    for _ in 0..CALLS {
        // A clone per call: the rate is the channel's, not each clone's.
        let mut client = TestClient::new(channel.clone());
        timeout(BOUND, client.unary_call(Input {}))
            .await
            .expect("in time")
            .expect("call");
        ended.push(start.elapsed());
    }
    // Two calls in the first window, two in the second, the fifth in the third.
    let windows: Vec<u32> = ended
        .iter()
        .map(|at| (at.as_secs_f64() / WINDOW.as_secs_f64()) as u32)
        .collect();
    assert_eq!(windows, [0, 0, 1, 1, 2], "{ended:?}");
    server.stop().await;
}
