//! A hostile server on a client's open stream: between the stream's own answers it sends
//! streamed messages, HEADERS and ENDs for ids the client never opened (32 MiB of them), and
//! grants absurd credit (WINDOW of `u32::MAX`, for the stream and for the connection, again
//! and again). The stream still gets exactly its own answers, in order, and its clean end; the
//! client's memory holds; a call after it on the same connection is answered. (Unary calls
//! under the same flood: `server_probe.rs`.)

use crate::raw::{block, frame, MESSAGE, OPEN, PREFACE, WINDOW};
use crate::server_probe::{
    assert_grew_less, end, fake_server, measured_alone, next_frame, peak_rss, settings, ANSWER,
    HEADERS, MIB,
};
use crate::support::bounded;
use prost::Message as _;
use sockrpc::{Channel, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::Chunk;
use tokio::io::AsyncWriteExt;

/// The client's streamed requests (each answered once, in order).
const ASKED: u64 = 3;
/// Capabilities: connection window, charged credit, answer window.
const CAPABILITIES: u16 = 0x2 | 0x4 | 0x20;

/// Frames for ids never opened, and absurd credit: about 1.6 MiB a round.
fn noise(round: u32) -> Vec<u8> {
    let mut flood = Vec::new();
    let body = vec![0x5a; 16 * 1024];
    for i in 0..100u32 {
        let id = 1_000_001 + 2 * (round * 100 + i);
        flood.extend_from_slice(&frame(HEADERS, 0, id, &block(&[(b"k", b"v")])));
        flood.extend_from_slice(&frame(MESSAGE, 0, id, &body));
        flood.extend_from_slice(&frame(WINDOW, 0, 0, &u32::MAX.to_be_bytes()));
        flood.extend_from_slice(&end(id, 5, b"not yours", b"", &block(&[])));
    }
    flood
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_gets_its_own_answers_through_frames_for_calls_never_opened() {
    if !measured_alone(
        module_path!(),
        "a_stream_gets_its_own_answers_through_frames_for_calls_never_opened",
    ) {
        return;
    }
    let fake = fake_server(|mut stream| async move {
        let _ = stream
            .write_all(&[PREFACE.as_slice(), &settings(0, CAPABILITIES)].concat())
            .await;
        let mut buf = Vec::new();
        let mut stream_id = None;
        let mut answered = 0u32;
        while let Some((kind, flags, id, body)) = next_frame(&mut stream, &mut buf).await {
            let mut out = Vec::new();
            match (kind, stream_id) {
                (OPEN, None) => {
                    stream_id = Some(id);
                    out.extend_from_slice(&frame(HEADERS, 0, id, &block(&[])));
                }
                (MESSAGE, Some(own)) if id == own => {
                    // Noise first, then the answer, with absurd credit for the stream.
                    for round in 0..7 {
                        let mut flood = noise(answered * 7 + round);
                        flood.extend_from_slice(&frame(WINDOW, 0, own, &u32::MAX.to_be_bytes()));
                        if stream.write_all(&flood).await.is_err() {
                            return;
                        }
                    }
                    out.extend_from_slice(&frame(MESSAGE, 0, own, &body));
                    answered += 1;
                    if u64::from(answered) == ASKED {
                        out.extend_from_slice(&end(own, 0, b"", b"", &block(&[])));
                    }
                }
                // A later unary call: answered (folded OK end).
                (MESSAGE, Some(_)) if flags & 1 != 0 => {
                    out.extend_from_slice(&frame(MESSAGE, ANSWER, id, &body));
                }
                _ => {}
            }
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                return;
            }
        }
    })
    .await;
    let channel = bounded(
        "connect",
        Channel::connect(Endpoint::new("127.0.0.1", fake.addr.port()).pool_size(1)),
    )
    .await
    .expect("connect to the fake server");
    let mut client = StreamerClient::new(channel);
    let before = peak_rss();
    let requests = futures_util::stream::iter((1..=ASKED).map(|seq| Chunk {
        seq,
        payload: vec![1u8; 8].into(),
    }));
    let mut answers = bounded("ping_pong", client.ping_pong(requests))
        .await
        .expect("HEADERS")
        .into_inner();
    for seq in 1..=ASKED {
        let chunk = bounded("an answer", answers.message())
            .await
            .expect("the stream's own answer")
            .expect("not its end yet");
        assert_eq!(chunk.seq, seq, "{chunk:?}");
    }
    let last = bounded("the end", answers.message()).await;
    assert!(matches!(last, Ok(None)), "a clean end: {last:?}");
    let after = bounded(
        "a unary call",
        client.unary(Chunk {
            seq: 42,
            ..Default::default()
        }),
    )
    .await
    .expect("answered on the same connection")
    .into_inner();
    assert_eq!(
        after.encode_to_vec(),
        Chunk {
            seq: 42,
            ..Default::default()
        }
        .encode_to_vec()
    );
    assert_grew_less(
        "frames for calls never opened, absurd credit",
        before,
        24 * MIB,
    );
}
