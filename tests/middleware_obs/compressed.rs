//! Compression through the observability stacks: the layers watch streamed bodies (span
//! events, byte counts) and must pass compressed messages on as they are, both ways. In its own
//! file to keep `middleware_obs.rs` under its size.

use super::services::{client_stack, spawn_router, Chunks};
use super::telemetry;
use bytes::Bytes;
use sockrpc::Channel;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};

/// The client and server stacks watch streamed bodies (span events, byte counts): compressed
/// messages go through both stacks compressed, both ways, and are read as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_streams_pass_both_stacks_compressed() {
    let _telemetry = telemetry();
    let gzip = sockrpc::CompressionEncoding::Gzip;
    let addr = spawn_router(
        sockrpc::Router::new().add_service(
            StreamerServer::new(Chunks)
                .send_compressed(gzip)
                .accept_compressed(gzip),
        ),
    )
    .await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = StreamerClient::new(client_stack(&channel))
        .send_compressed(gzip)
        .accept_compressed(gzip);
    // Twice: the first call teaches the client what the server accepts, so requests of the
    // second go compressed.
    for round in 0..2 {
        let mut answers = client
            .produce(ProduceRequest {
                count: 3,
                size: 2000,
                ..ProduceRequest::default()
            })
            .await
            .expect("produce")
            .into_inner();
        let mut compressed = Vec::new();
        while let Some(_chunk) = answers.message().await.expect("a chunk, decompressed") {
            compressed.push(answers.last_message_compressed());
        }
        assert_eq!(compressed, [true; 3], "round {round}");

        let outgoing = (0..2).map(|seq| Chunk {
            seq,
            payload: Bytes::from(vec![0x5A; 2000]),
        });
        let mut echoes = client
            .ping_pong(futures_util::stream::iter(outgoing))
            .await
            .expect("ping_pong")
            .into_inner();
        let mut seqs = Vec::new();
        while let Some(echo) = echoes.message().await.expect("an echo, decompressed") {
            assert!(echoes.last_message_compressed(), "round {round}");
            seqs.push(echo.seq);
        }
        assert_eq!(seqs, [0, 1], "round {round}");
    }
}
