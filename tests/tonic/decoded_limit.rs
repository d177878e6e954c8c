//! tonic's `compressing_request.rs::limit_decoded_message_size`, once per encoding: a server
//! that accepts the encoding and decodes messages of at most `limit` bytes, where `limit` is
//! the encoded size of the request tonic sends under it. That request, compressed, passes
//! (exactly at the limit) and is small on the wire; one a byte larger fails
//! `RESOURCE_EXHAUSTED`, however small it was compressed: the limit counts the decompressed
//! message. Three rounds, as tonic's, on one connection, which serves on after each refusal.
//!
//! One difference, by design (README, *Compression is negotiated before use*): the client's
//! first request goes plain, before an answer told it the server accepts the encoding; tonic
//! compresses that one too. A proxy reads the COMPRESSED flag off the wire.

use crate::support::{bounded, EchoStreamer, Running, Sniffer};
use bytes::Bytes;
use prost::Message;
use sockrpc::{Channel, Code, CompressionEncoding, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;

/// tonic's `UNCOMPRESSED_MIN_BODY_SIZE`: the payload of the request at the limit.
const UNCOMPRESSED_MIN_BODY_SIZE: usize = 1024;

fn zeros(len: usize) -> Chunk {
    Chunk {
        seq: 0,
        payload: Bytes::from(vec![0u8; len]),
    }
}

async fn limit_decoded_message_size(encoding: CompressionEncoding) {
    let under_limit_request = zeros(UNCOMPRESSED_MIN_BODY_SIZE);
    let limit = under_limit_request.encoded_len();
    let over_limit_request = zeros(1 + UNCOMPRESSED_MIN_BODY_SIZE);

    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .accept_compressed(encoding)
            .max_decoding_message_size(limit),
    );
    let sniffer = Sniffer::start(server.addr).await;
    let endpoint = Endpoint::new("127.0.0.1", sniffer.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel).send_compressed(encoding);

    for round in 0..3 {
        // Under or exactly at the limit, compressed: answered.
        bounded("under", client.unary(under_limit_request.clone()))
            .await
            .unwrap_or_else(|status| panic!("{encoding}, round {round}: {status:?}"));
        let wire = sniffer.take();
        let [sent] = wire.requests[..] else {
            panic!("{encoding}, round {round}: one request on the wire, {wire:?}");
        };
        if round > 0 {
            assert!(sent.compressed, "{encoding}, round {round}: {sent:?}");
            assert!(
                sent.len < UNCOMPRESSED_MIN_BODY_SIZE,
                "{encoding}, round {round}: {sent:?}"
            );
        }

        // A byte over the limit, compressed: refused, by its decoded size.
        let status = bounded("over", client.unary(over_limit_request.clone()))
            .await
            .expect_err("over the limit");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{encoding}, round {round}: {status:?}"
        );
        let wire = sniffer.take();
        let [sent] = wire.requests[..] else {
            panic!("{encoding}, round {round}: one request on the wire, {wire:?}");
        };
        assert!(sent.compressed, "{encoding}, round {round}: {sent:?}");
        assert!(
            sent.len < limit,
            "{encoding}, round {round}: small on the wire, {sent:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn limit_decoded_message_size_gzip() {
    limit_decoded_message_size(CompressionEncoding::Gzip).await;
}

#[tokio::test]
async fn limit_decoded_message_size_zstd() {
    limit_decoded_message_size(CompressionEncoding::Zstd).await;
}

#[tokio::test]
async fn limit_decoded_message_size_deflate() {
    limit_decoded_message_size(CompressionEncoding::Deflate).await;
}
