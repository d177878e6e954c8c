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

/// A method path longer than the OPEN frame's 16-bit length is refused by the client,
/// `INVALID_ARGUMENT`, before anything is written (cut, it would be read as another call's
/// bytes); the connection lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_path_over_64_kib_is_refused_before_it_is_sent() {
    use sockrpc::protocol::MethodPath;
    use sockrpc::protocol::Request;
    let server =
        Running::start(Server::builder().add_service(StreamerServer::new(HardStreamer::default())));
    let (channel, conn) = one_connection(server.addr).await;
    let long = format!("/sockrpc.test.stream.Streamer/{}", "U".repeat(70_000));
    let path = MethodPath::try_from_bytes(long.into()).expect("a well-formed path");
    let status = bounded(
        "unary with a long path",
        conn.unary(path.clone(), Request::new(bytes::Bytes::from_static(b"x"))),
    )
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("65535"), "{status:?}");
    assert!(!conn.is_closed(), "open after the unary");
    let opened = conn.open_stream_with(
        &path,
        &sockrpc::protocol::MetadataMap::new(),
        None,
        None,
        None,
    );
    let Err(status) = opened else {
        panic!("a stream with a path over 64 KiB opened");
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(!conn.is_closed(), "open after the stream");
    let mut client = StreamerClient::new(channel);
    let reply = bounded("Unary", client.unary(chunk(7, 10)))
        .await
        .expect("a call after them succeeds")
        .into_inner();
    assert_eq!(reply.seq, 7);
    assert!(!conn.is_closed(), "the connection lives on");
}
