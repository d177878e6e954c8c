//! Streaming calls are retried like unary ones when they were refused unstarted: opening a
//! stream on a connection that has closed is "not processed" (nothing left the client), so the
//! channel opens it again on another connection instead of failing the caller.

use crate::support::{bounded, only_connection, Running};
use sockrpc::MethodPath;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;

static PRODUCE: MethodPath = MethodPath::from_static("/sockrpc.test.Streamer/Produce");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_opened_on_a_closed_connection_is_not_processed() {
    let server = Running::start();
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    conn.close();
    let opened = conn.open_stream(
        &PRODUCE,
        &Default::default(),
        None,
        Some(Default::default()),
    );
    let Err(status) = opened else {
        panic!("a closed connection opens nothing");
    };
    assert!(
        status.is_not_processed(),
        "nothing was sent, so the call may go elsewhere: {status:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_after_its_connection_closed_opens_on_a_new_one() {
    let server = Running::start();
    let channel = server.channel().await;
    only_connection(&channel).close();
    let mut client = StreamerClient::new(channel.clone());
    for round in 0..3u64 {
        let mut chunks = bounded(
            "open Produce",
            client.produce(ProduceRequest {
                count: 3,
                ..Default::default()
            }),
        )
        .await
        .unwrap_or_else(|status| panic!("round {round}: {status:?}"))
        .into_inner();
        let mut seen = 0;
        while let Some(chunk) = bounded("next chunk", chunks.message())
            .await
            .expect("stream ok")
        {
            assert_eq!(chunk.seq, seen);
            seen += 1;
        }
        assert_eq!(seen, 3, "round {round}");
        only_connection(&channel).close();
    }
    server.stop().await;
}
