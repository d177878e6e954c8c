//! tonic's compression suite reads an answer's encoding off its metadata:
//! `res.metadata().get("grpc-encoding")` is the encoding the server compresses the answer's
//! messages with (`compressing_response.rs`: `client_enabled_server_enabled`, the
//! `disabling_compression_*` cases; `client_stream.rs`, `server_stream.rs`,
//! `bidirectional_stream.rs`), and absent when the answer goes plain (`client_disabled`,
//! `client_enabled_server_disabled`). sockrpc carries the encoding in the HEADERS' encoding
//! fields (`docs/COMPRESSION.md`), not in metadata; a generated client configured for
//! compression shows it as that metadata entry, on every call shape, as tonic's does.
//!
//! The entry is the client's reading of the encoding fields, never the peer's metadata: a
//! `grpc-encoding` entry a handler wrote is dropped by such a client (a client not configured
//! for compression, which reads no encoding fields, leaves a handler's metadata alone).

use crate::support::{bounded, payload, EchoStreamer, Running};
use futures_util::stream;
use sockrpc::{Channel, CompressionEncoding, Request, Response, Server, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::net::SocketAddr;

const KEY: &str = "grpc-encoding";
const SIZE: usize = 4096;

fn chunk(seq: u64) -> Chunk {
    Chunk {
        seq,
        payload: payload(SIZE),
    }
}

async fn client_of(addr: SocketAddr) -> StreamerClient<Channel> {
    let channel = bounded("connect", Channel::connect(format!("tcp://{addr}")))
        .await
        .expect("connect");
    StreamerClient::new(channel)
}

/// What the answer of each call shape says its encoding is: unary (three calls), server
/// stream, client stream, bidi.
async fn encodings_seen(client: &mut StreamerClient<Channel>) -> Vec<Option<String>> {
    let mut seen = Vec::new();
    for seq in 0..3 {
        let answer = bounded("unary", client.unary(chunk(seq)))
            .await
            .expect("unary");
        seen.push(answer.metadata().get_str(KEY).map(str::to_owned));
    }
    let produce = ProduceRequest {
        count: 2,
        size: SIZE as u32,
        ..ProduceRequest::default()
    };
    let answer = bounded("produce", client.produce(produce))
        .await
        .expect("produce");
    seen.push(answer.metadata().get_str(KEY).map(str::to_owned));
    let mut messages = answer.into_inner();
    while bounded("produce message", messages.message())
        .await
        .expect("produce message")
        .is_some()
    {}
    let answer = bounded(
        "collect",
        client.collect(stream::iter([chunk(0), chunk(1)])),
    )
    .await
    .expect("collect");
    seen.push(answer.metadata().get_str(KEY).map(str::to_owned));
    let answer = bounded(
        "ping_pong",
        client.ping_pong(stream::iter([chunk(0), chunk(1)])),
    )
    .await
    .expect("ping_pong");
    seen.push(answer.metadata().get_str(KEY).map(str::to_owned));
    let mut messages = answer.into_inner();
    while bounded("ping_pong message", messages.message())
        .await
        .expect("ping_pong message")
        .is_some()
    {}
    seen
}

#[tokio::test]
async fn a_compressed_answer_names_its_encoding_in_metadata() {
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let server = Running::start(StreamerServer::new(EchoStreamer).send_compressed(encoding));
        let mut client = client_of(server.addr).await.accept_compressed(encoding);
        let seen = encodings_seen(&mut client).await;
        assert_eq!(
            seen,
            vec![Some(encoding.as_str().to_owned()); 6],
            "{encoding}: unary ×3, server stream, client stream, bidi"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_plain_answer_names_no_encoding() {
    // The server compresses nothing (tonic's `client_enabled_server_disabled`).
    let server = Running::start(StreamerServer::new(EchoStreamer));
    let mut client = client_of(server.addr)
        .await
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
    assert_eq!(encodings_seen(&mut client).await, vec![None; 6]);
    server.stop().await;

    // The client accepts nothing (tonic's `client_disabled`).
    let server = Running::start(
        StreamerServer::new(EchoStreamer).send_compressed(CompressionEncoding::Gzip),
    );
    let mut client = client_of(server.addr).await;
    assert_eq!(encodings_seen(&mut client).await, vec![None; 6]);

    // The client accepts another encoding than the server sends with.
    let mut client = client_of(server.addr)
        .await
        .accept_compressed(CompressionEncoding::Zstd);
    assert_eq!(encodings_seen(&mut client).await, vec![None; 6]);
    server.stop().await;
}

/// Answers with a `grpc-encoding` entry of its own in the answer's metadata.
#[derive(Clone)]
struct Forging;

impl Streamer for Forging {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let mut response = Response::new(request.into_inner());
        response
            .metadata_mut()
            .insert_str(KEY, "br")
            .expect("ascii entry");
        Ok(response)
    }

    type ProduceStream = sockrpc::BoxStream<Chunk>;

    async fn produce(
        &self,
        _: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    async fn collect(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type PingPongStream = sockrpc::BoxStream<Chunk>;

    async fn ping_pong(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type GatherStream = sockrpc::BoxStream<Chunk>;

    async fn gather(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

#[tokio::test]
async fn a_handlers_own_encoding_entry_is_not_taken_for_the_encoding() {
    let server = sockrpc_tests::serve::Running::start(
        Server::builder()
            .add_service(StreamerServer::new(Forging).send_compressed(CompressionEncoding::Gzip)),
    );
    // Toward a client that accepts gzip, the answer is gzip whatever the handler wrote.
    let mut client = client_of(server.addr)
        .await
        .accept_compressed(CompressionEncoding::Gzip);
    let answer = bounded("unary", client.unary(chunk(0)))
        .await
        .expect("unary");
    assert_eq!(answer.metadata().get_str(KEY), Some("gzip"));
    // Toward a client that accepts zstd only, the answer is plain: no entry at all.
    let mut client = client_of(server.addr)
        .await
        .accept_compressed(CompressionEncoding::Zstd);
    let answer = bounded("unary", client.unary(chunk(0)))
        .await
        .expect("unary");
    assert_eq!(answer.metadata().get_str(KEY), None);
    // A client with settings but no compression reads no encoding fields: the handler's
    // metadata stays as it came, as toward a default client.
    let mut client = client_of(server.addr)
        .await
        .max_decoding_message_size(1 << 20);
    let answer = bounded("unary", client.unary(chunk(0)))
        .await
        .expect("unary");
    assert_eq!(answer.metadata().get_str(KEY), Some("br"));
    server.stop().await;
}
