//! Response streams waiting for the client's answer credit (`CAP_ANSWER_WINDOW`,
//! `server/answer_window.rs`) are woken a few at a time as credit comes, not all at once.
//!
//! A client grants the answer window, opens hundreds of server streams whose answers are ready
//! at once (each within its own stream's window, so only the answer window holds them), and
//! reads everything: 16 MiB go out, and the rest of the streams wait for credit. It then credits
//! one answer at a time, a 16-byte WINDOW frame each. The server used to wake every waiting
//! stream per credit: one sent, the window closed again, and the rest waited again, so each
//! frame cost a poll of every blocked stream (about 300 here: 24,000 polls for 80 frames).
//! Counted here as the enters of the streams' `rpc` spans (`parked_wakes.rs`'s counter). Then
//! the client credits everything, and every stream must still end: none is left waiting.

use crate::answer_probe::{
    credit, until_quiet, walk_frames, Pace, CAP_ANSWER_WINDOW, PRODUCE_PATH,
};
use crate::parked_wakes::{counted_runtime, PollCount};
use crate::raw::{connect, frame, open, END, END_STREAM, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::support::{bounded, fresh_call, start_serving};
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Streams, each answering [`MESSAGES`] chunks of [`SIZE`] bytes: 56 KiB a stream, within its
/// 64 KiB stream window; 33 MiB in all, twice the 16 MiB answer window.
const STREAMS: u32 = 600;
const MESSAGES: u64 = 7;
const SIZE: u32 = 8 * 1024;
/// Credits of one answer each, one WINDOW frame a write.
const CREDITS: u64 = 80;
/// Polls of streams a credit of one answer may cost: the few woken with turns, the one that
/// goes and the one it passes its turn to (about 5 measured with turns, 300 without).
const POLLS_PER_CREDIT: u64 = 20;

/// `Produce`, its chunks ready at once; the rest is `Mirror`'s.
struct Ready;

impl Streamer for Ready {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let request = request.into_inner();
        let size = request.size.min(SIZE) as usize;
        let chunks = (0..request.count.min(MESSAGES)).map(move |seq| {
            Ok(Chunk {
                seq,
                payload: vec![7; size].into(),
            })
        });
        Ok(Response::new(futures_util::stream::iter(chunks).boxed()))
    }
}

/// What the client has read: bytes, and END frames.
#[derive(Default)]
struct Seen {
    bytes: AtomicU64,
    ends: AtomicU64,
}

/// Reads everything the server sends, counting the ENDs, until it closes.
async fn read_all(reader: tokio::net::tcp::OwnedReadHalf, seen: Arc<Seen>) {
    walk_frames(reader, &seen.bytes, Pace::Fast, |kind, _, _| {
        if kind == END {
            seen.ends.fetch_add(1, Ordering::Relaxed);
        }
    })
    .await;
}

#[test]
fn streams_waiting_for_answer_credit_are_woken_a_few_at_a_time() {
    let counter = Arc::new(PollCount::default());
    let runtime = counted_runtime(&counter);
    runtime.block_on(async {
        let server = start_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(StreamerServer::new(Ready))
                .add_service(EchoServer::new(crate::support::EchoImpl::default()))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
        let produce = ProduceRequest {
            count: MESSAGES,
            size: SIZE,
            ..ProduceRequest::default()
        }
        .encode_to_vec();
        let mut calls = PREFACE.to_vec();
        calls.extend_from_slice(&frame(
            WINDOW,
            SETTINGS,
            0,
            &CAP_ANSWER_WINDOW.to_be_bytes(),
        ));
        for call_id in (1..=STREAMS).map(|n| 2 * n - 1) {
            calls.extend_from_slice(&open(call_id, PRODUCE_PATH, &[]));
            calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &produce));
        }
        let (reader, mut writer) = connect(server.addr).await.into_split();
        let seen = Arc::new(Seen::default());
        let reading = tokio::spawn(read_all(reader, Arc::clone(&seen)));
        bounded("write the calls", writer.write_all(&calls))
            .await
            .expect("write");
        // 16 MiB go out; the rest of the streams wait for credit.
        until_quiet(&seen.bytes, Duration::from_millis(300)).await;
        let first = seen.bytes.load(Ordering::Relaxed);
        assert!(
            first >= 15 << 20 && seen.ends.load(Ordering::Relaxed) < u64::from(STREAMS),
            "the answer window holds the streams back: {first} bytes read"
        );

        // One answer's credit at a time (its charge: the chunk's bytes, its protobuf framing,
        // and 64).
        let before = counter.enters.load(Ordering::Relaxed);
        let one = credit(SIZE + 16 + 64);
        for _ in 0..CREDITS {
            bounded("credit", writer.write_all(&one))
                .await
                .expect("write");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        until_quiet(&seen.bytes, Duration::from_millis(300)).await;
        let polls = counter.enters.load(Ordering::Relaxed) - before;
        let more = seen.bytes.load(Ordering::Relaxed) - first;
        eprintln!("{CREDITS} credits of one answer: {polls} polls of the streams, {more} bytes");
        assert!(
            more >= CREDITS * u64::from(SIZE) / 2,
            "credit let answers out: {more} bytes for {CREDITS} credits"
        );
        assert!(
            polls <= CREDITS * POLLS_PER_CREDIT,
            "{polls} polls of the streams for {CREDITS} credits of one answer: the streams \
             waiting for credit were woken all at once"
        );

        // All the credit there is (it saturates): every stream ends, none left waiting.
        bounded("every stream ends", async {
            while seen.ends.load(Ordering::Relaxed) < u64::from(STREAMS) {
                writer.write_all(&credit(u32::MAX)).await.expect("write");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        drop(writer);
        reading.abort();
        fresh_call(server.addr, 1).await;
        server.stop().await;
    });
}
