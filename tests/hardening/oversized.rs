//! Behaviour 3: a MESSAGE over the server's message limit on a client stream ends that call
//! with `RESOURCE_EXHAUSTED` (the message is gone, so the call cannot go on as if it had been
//! sent), and the connection lives on: later calls, streamed or not, succeed on it.
//!
//! Before the fix, the oversized message was skipped silently and the call ended OK with the
//! message missing from what the handler read.

use crate::service::HardStreamer;
use crate::support::{bounded, one_connection, Running};
use futures_util::stream;
use sockrpc::{Code, Limits, Server};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;

const LIMIT: usize = 1024;

fn chunk(seq: u64, size: usize) -> Chunk {
    Chunk {
        seq,
        payload: vec![3; size].into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_stream_message_ends_its_call_resource_exhausted() {
    let streamer = HardStreamer::default();
    let server = Running::start(
        Server::builder()
            .limits(Limits::default().with_max_message_size(LIMIT))
            .add_service(StreamerServer::new(streamer)),
    );
    // The client's own limit is the default 4 MiB: it sends what the server refuses.
    let (channel, conn) = one_connection(server.addr).await;
    let mut client = StreamerClient::new(channel);

    let chunks = vec![chunk(1, 100), chunk(2, 4 * LIMIT), chunk(3, 100)];
    let status = bounded(
        "Collect with an oversized message",
        client.collect(stream::iter(chunks)),
    )
    .await
    .expect_err("a call that lost a message must not end OK");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // The same connection carries a streamed call and a unary one afterwards.
    let summary = bounded(
        "Collect within the limit",
        client.collect(stream::iter((0..5).map(|seq| chunk(seq, 100)))),
    )
    .await
    .expect("a streamed call within the limit succeeds")
    .into_inner();
    assert_eq!((summary.count, summary.seq_sum), (5, 10));
    let reply = bounded("Unary", client.unary(chunk(42, 10)))
        .await
        .expect("a unary call succeeds")
        .into_inner();
    assert_eq!(reply.seq, 42);
    assert!(!conn.is_closed(), "the connection lives on");
    assert_eq!(conn.calls_started(), 3, "all on that one connection");
    server.stop().await;
}
