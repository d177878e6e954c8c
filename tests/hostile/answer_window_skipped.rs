//! Streamed answers a client skips unread for going over its message limit are credited to the
//! answer window (`CAP_ANSWER_WINDOW`), as the answers it drops in any other way are.
//!
//! A window-keeping server counts every streamed answer it sends (MESSAGE without END_STREAM).
//! The client skips one over its message limit without buffering it (its call fails
//! `RESOURCE_EXHAUSTED`): had it not credited it, 16 answers of 1 MiB over a client's limit
//! would leave the server no window, and every stream on the connection would wait for ever.
//! Here a fake server sends 16 such answers, whole or in pieces (`FLAG_MORE`), and sums the
//! connection credit (WINDOW on call 0) the client sends back. A one-message answer
//! (END_STREAM), which the server does not count, is not credited.

use crate::raw::{frame, END_STREAM, MESSAGE, PREFACE, WINDOW};
use crate::server_probe::{fake_server, next_frame, open_streams, produce_streams, settings};
use crate::support::{bounded, BOUND};
use prost::Message as _;
use sockrpc::{Channel, Code, Endpoint};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::Chunk;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// `CAP_CHARGED | CAP_ANSWER_WINDOW` in the server's SETTINGS.
const CAPABILITIES: u16 = 0x4 | 0x20;
/// Streams, each sent one 1 MiB answer over the client's limit: the whole answer window.
const STREAMS: usize = 16;
/// The client's message limit.
const LIMIT: usize = 64 * 1024;
/// MESSAGE flag of a piece before the last.
const MORE: u8 = 0x02;
/// The size of a piece.
const PIECE: usize = 64 * 1024;

/// How the fake server sends each answer.
#[derive(Clone, Copy)]
enum Shape {
    /// One MESSAGE frame, no END_STREAM.
    Whole,
    /// Pieces of 64 KiB, the last without END_STREAM.
    Pieces,
    /// One MESSAGE frame with END_STREAM: a one-message answer, never counted.
    OneMessage,
}

/// The encoded 1 MiB chunk every answer carries.
fn chunk() -> Vec<u8> {
    Chunk {
        seq: 0,
        payload: vec![0x5a; 1 << 20].into(),
    }
    .encode_to_vec()
}

/// A server that answers the first [`STREAMS`] streaming calls with HEADERS, then one chunk
/// each shaped as `shape`, and adds up the credit in every WINDOW on call 0 the client sends
/// into the returned counter until the client goes.
async fn skipping_server(shape: Shape) -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let credited = Arc::new(AtomicU64::new(0));
    let sum = Arc::clone(&credited);
    let fake = fake_server(move |mut stream| {
        let sum = Arc::clone(&sum);
        async move {
            let hello = [&PREFACE[..], &settings(0, CAPABILITIES)].concat();
            let _ = stream.write_all(&hello).await;
            let mut buf = Vec::new();
            let Some(ids) = open_streams(&mut stream, &mut buf, STREAMS).await else {
                return;
            };
            let chunk = chunk();
            let mut flood = Vec::new();
            for id in &ids {
                match shape {
                    Shape::Whole => flood.extend_from_slice(&frame(MESSAGE, 0, *id, &chunk)),
                    Shape::OneMessage => {
                        flood.extend_from_slice(&frame(MESSAGE, END_STREAM, *id, &chunk));
                    }
                    Shape::Pieces => {
                        let pieces: Vec<&[u8]> = chunk.chunks(PIECE).collect();
                        for (i, piece) in pieces.iter().enumerate() {
                            let flags = if i + 1 < pieces.len() { MORE } else { 0 };
                            flood.extend_from_slice(&frame(MESSAGE, flags, *id, piece));
                        }
                    }
                }
            }
            if stream.write_all(&flood).await.is_err() {
                return;
            }
            while let Some((kind, _, id, body)) = next_frame(&mut stream, &mut buf).await {
                if kind == WINDOW && id == 0 && body.len() == 4 {
                    let credit = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    sum.fetch_add(u64::from(credit), Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    (fake.addr, credited)
}

/// Opens [`STREAMS`] Produce streams on one connection to `addr` with a message limit of
/// [`LIMIT`]; each must fail `RESOURCE_EXHAUSTED` (its answer skipped).
async fn open_and_fail(addr: std::net::SocketAddr) -> Channel {
    let endpoint = Endpoint::new("127.0.0.1", addr.port())
        .pool_size(1)
        .max_decoding_message_size(LIMIT);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect to the fake server");
    let client = StreamerClient::new(channel.clone());
    let opened = produce_streams(&client, STREAMS).await;
    for (i, mut stream) in opened.into_iter().enumerate() {
        let status = bounded("the oversized answer", stream.message())
            .await
            .expect_err("an answer over the limit fails its call");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "stream {i}: {status:?}"
        );
    }
    channel
}

/// Waits (bounded) for the fake server to have been credited at least `least`; what it got.
async fn credit_reaching(credited: &AtomicU64, least: u64) -> u64 {
    for _ in 0..(BOUND.as_millis() / 20) {
        let now = credited.load(Ordering::SeqCst);
        if now >= least {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    credited.load(Ordering::SeqCst)
}

/// What [`STREAMS`] counted answers charge: each its bytes and 64.
fn all_charged() -> u64 {
    (STREAMS * (chunk().len() + 64)) as u64
}

async fn skipped_answers_are_credited(shape: Shape) {
    let (addr, credited) = skipping_server(shape).await;
    let channel = open_and_fail(addr).await;
    // The client credits once half the window (8 MiB) is unreported.
    let got = credit_reaching(&credited, 8 << 20).await;
    assert!(
        (8 << 20..=all_charged()).contains(&got),
        "the client credited {got} bytes for {STREAMS} skipped answers charging {}: the \
         server's window would stay spent",
        all_charged()
    );
    drop(channel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_answers_over_the_limit_are_credited() {
    skipped_answers_are_credited(Shape::Whole).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_answers_over_the_limit_are_credited() {
    skipped_answers_are_credited(Shape::Pieces).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_answers_over_the_limit_are_not_credited() {
    let (addr, credited) = skipping_server(Shape::OneMessage).await;
    let channel = open_and_fail(addr).await;
    // Each call failed, so its answer was read past; a credit would have been written then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        credited.load(Ordering::SeqCst),
        0,
        "uncounted answers credited"
    );
    drop(channel);
}
