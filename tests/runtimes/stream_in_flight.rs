//! A streaming call in flight on a connection whose runtime ends while the call's lives on
//! (two tests sharing a static client, the first returning mid-stream): its next message must
//! be a retryable `UNAVAILABLE`, not a wait for messages no reader will ever hand it, and the
//! next stream must work.

use super::slow::{Options, SlowServer};
use super::support::{on_runtime, serving, Flavor};
use super::together::{by_deadline, Beside};
use super::unary_in_flight::echo;
use sockrpc::{Channel, Code, Endpoint, Request, Status, Streaming};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::time::Instant;

/// The stream's deadline.
const DEADLINE: Duration = Duration::from_secs(5);

async fn produce(channel: &Channel, count: u64, delay_ms: u64) -> Result<Streaming<Chunk>, Status> {
    let mut request = Request::new(ProduceRequest {
        count,
        size: 0,
        delay_ms,
        ..Default::default()
    });
    request.set_timeout(DEADLINE);
    let response = StreamerClient::new(channel.clone())
        .produce(request)
        .await?;
    Ok(response.into_inner())
}

fn stream_in_flight(first: Flavor, second: Flavor) {
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options::default()));
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp)).expect("endpoint");
    let (beside, channel) = Beside::start(first, move || async move {
        let channel = Channel::connect(endpoint).await.expect("connect");
        echo(&channel, 1).await.expect("the first runtime's call");
        channel
    });
    on_runtime(second, "second runtime", || async {
        let deadline = Instant::now() + DEADLINE;
        // A chunk at once, then one each 10 s: the stream is open, and quiet.
        let mut chunks = produce(&channel, 3, 10_000).await.expect("open");
        let first_chunk = chunks.message().await.expect("first chunk");
        assert_eq!(first_chunk.map(|c| c.seq), Some(0));
        beside.end().await;
        let next = by_deadline("the stream's next message", deadline, chunks.message()).await;
        let status = next.expect_err("the server never sent it");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            Instant::now() < deadline,
            "the stream ended at its deadline"
        );
        // A new stream works, to its end.
        let mut again = produce(&channel, 2, 0).await.expect("a new stream");
        let mut got = Vec::new();
        while let Some(chunk) = again.message().await.expect("a chunk") {
            got.push(chunk.seq);
        }
        assert_eq!(got, [0, 1]);
    });
    drop(server);
    drop(serving);
}

#[test]
fn a_stream_in_flight_fails_unavailable_and_the_next_works() {
    stream_in_flight(Flavor::Current, Flavor::Current);
    stream_in_flight(Flavor::Multi, Flavor::Current);
}
