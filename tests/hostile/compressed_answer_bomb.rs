//! A hostile server's compressed answer that inflates far past the client's message limit (a
//! zip bomb: 64 MiB of zeros in about 64 KiB of gzip) fails that call `RESOURCE_EXHAUSTED` on
//! a generated client, one message of a server-streaming answer as a unary answer, and the
//! connection serves the next call. The decoder's output never grows past the limit
//! (`tests/tonic/bomb.rs` measures the allocation; here the client end to end).

use crate::raw::{block, frame, MESSAGE, OPEN, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, HEADERS};
use crate::support::bounded;
use prost::Message;
use sockrpc::{Channel, Code, CompressionEncoding, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use tokio::io::AsyncWriteExt;

/// HEADERS' flag: encoding fields follow the metadata; MESSAGE's: the body is compressed.
const FLAG_ENCODING: u8 = 0x08;
const FLAG_COMPRESSED: u8 = 0x08;
/// MESSAGE flags of a one-message answer: END_STREAM.
const LAST: u8 = 1;
/// Encoding fields: length 3, accept gzip, send gzip.
const GZIP_FIELDS: [u8; 4] = [3, 0, 1, 1];

/// A `Chunk` of 64 MiB of zeros, gzip-compressed.
fn bomb() -> Vec<u8> {
    let chunk = Chunk {
        seq: 1,
        payload: vec![0u8; 64 << 20].into(),
    }
    .encode_to_vec();
    let packed = sockrpc::compression::compress(CompressionEncoding::Gzip, &chunk)
        .expect("gzip compresses")
        .to_vec();
    assert!(
        packed.len() < 256 << 10,
        "{} bytes compressed",
        packed.len()
    );
    packed
}

/// A fake server answering every call: HEADERS naming gzip, the bomb (a streamed message to
/// the first call, `Produce`, the last message of the second, `Unary`), and an OK END; then a
/// plain small `Chunk` to any later call.
async fn bombing() -> std::net::SocketAddr {
    let packed = std::sync::Arc::new(bomb());
    let fake = fake_server(move |mut stream| {
        let packed = std::sync::Arc::clone(&packed);
        async move {
            let _ = stream.write_all(PREFACE).await;
            let mut buf = Vec::new();
            let mut calls = 0;
            while let Some((kind, _, id, _)) = next_frame(&mut stream, &mut buf).await {
                if kind != OPEN {
                    continue;
                }
                calls += 1;
                let mut head = block(&[]);
                head.extend_from_slice(&GZIP_FIELDS);
                let message = if calls <= 2 {
                    let flags = FLAG_COMPRESSED | if calls == 2 { LAST } else { 0 };
                    frame(MESSAGE, flags, id, &packed)
                } else {
                    let plain = Chunk {
                        seq: u64::from(id),
                        ..Default::default()
                    };
                    frame(MESSAGE, LAST, id, &plain.encode_to_vec())
                };
                let answer = [
                    frame(HEADERS, FLAG_ENCODING, id, &head),
                    message,
                    end(id, 0, b"", b"", &block(&[])),
                ]
                .concat();
                if stream.write_all(&answer).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    fake.addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_past_the_limit_fails_its_call_only() {
    let addr = bombing().await;
    let channel = bounded(
        "connect",
        Channel::connect(Endpoint::new("127.0.0.1", addr.port()).pool_size(1)),
    )
    .await
    .expect("connect to the fake server");
    let mut client = StreamerClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
    // A server-streaming answer whose first message is the bomb.
    let mut answers = bounded("produce", client.produce(ProduceRequest::default()))
        .await
        .expect("HEADERS")
        .into_inner();
    let status = bounded("the bomb", answers.message())
        .await
        .expect_err("past the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    drop(answers);
    // A unary answer that is the bomb.
    let status = bounded("unary", client.unary(Chunk::default()))
        .await
        .expect_err("past the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
    // The connection goes on.
    let answer = bounded("a small unary", client.unary(Chunk::default()))
        .await
        .expect("a small answer")
        .into_inner();
    assert!(answer.seq > 0, "{answer:?}");
}
