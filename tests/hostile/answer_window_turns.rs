//! No response stream is left waiting for ever in the lines for answer credit and for room
//! (`server/answer_window.rs`, `turns.rs`): whatever happens to the streams holding turns in
//! them, the others still get theirs.
//!
//! A raw client grants the answer window (`CAP_ANSWER_WINDOW`), opens hundreds of `Produce`
//! streams whose answers are ready at once (some answered by a handler that waits first, so
//! their streams run in tasks of their own), and reads slowly: the server's write buffer passes
//! its high-water mark (pumps wait in the line for room) and 16 MiB go out uncredited (the rest
//! wait in the line for credit). Meanwhile some streams' deadlines pass, some streams panic
//! midway, and the client cancels a quarter of those still going. Then it credits what it read
//! in pieces of 1 KiB, still reading slowly: every stream not cancelled must end, within a
//! bound on each step. A second test drops the connection while the streams wait: every one of
//! them must be dropped.

use crate::answer_probe::{
    credit, until_quiet, walk_frames, Pace, CAP_ANSWER_WINDOW, PRODUCE_PATH,
};
use crate::raw::{connect, frame, END, END_STREAM, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::support::{fresh_call, start_serving, Running};
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::bounded::{bounded, STEP};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;

/// A CANCEL frame's kind.
const CANCEL: u8 = 5;
/// What a streamed answer charges beyond its bytes.
const MESSAGE_CHARGE: u64 = 64;
/// Streams, each answering [`MESSAGES`] chunks of [`SIZE`] bytes: 56 KiB a stream, within its
/// 64 KiB stream window; 33 MiB in all, twice the 16 MiB answer window.
const STREAMS: u32 = 600;
const MESSAGES: u64 = 7;
const SIZE: u32 = 8 * 1024;
/// The credit of one WINDOW frame once the client credits: a small piece of an answer.
const PIECE: u64 = 1024;
/// Every `WAITS`th stream's handler waits before it answers: its stream runs in a task of its
/// own, not on the connection's.
const WAITS: u32 = 3;
/// Every `TIMED`th stream has a deadline of [`DEADLINE`], which passes while it waits.
const TIMED: u32 = 7;
const DEADLINE: Duration = Duration::from_millis(400);
/// Every `PANICS`th stream panics after two chunks.
const PANICS: u32 = 11;

/// `Produce`: `count` chunks of `size` bytes, ready at once, after a wait of the handler when
/// `delay_ms` is set; a panic in place of chunk `fail_after` when set. Counts the streams
/// made and those dropped, however they end.
struct Ready {
    streams: Arc<Streams>,
}

/// Response streams made (a handler that got as far as making one) and dropped. A handler
/// dropped before it made its stream (its deadline passed, or its connection closed, while it
/// waited to be polled again: a loaded machine) has no stream to wait for, and is in neither
/// count; counting it as a stream that was never dropped made the tests fail under load with
/// nothing stranded.
#[derive(Default)]
struct Streams {
    made: AtomicUsize,
    dropped: AtomicUsize,
}

/// Counts its drop: the stream that holds it was dropped.
struct Dropped(Arc<Streams>);

impl Dropped {
    fn new(streams: &Arc<Streams>) -> Dropped {
        streams.made.fetch_add(1, Ordering::SeqCst);
        Dropped(Arc::clone(streams))
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Streamer for Ready {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let request = request.into_inner();
        if request.delay_ms > 0 {
            tokio::task::yield_now().await;
        }
        let size = request.size.min(SIZE) as usize;
        let fail_after = request.fail_after;
        let guard = Dropped::new(&self.streams);
        let chunks = (0..request.count.min(MESSAGES)).map(move |seq| {
            let _held = &guard;
            if fail_after == Some(seq) {
                // No panic hook runs (the test's output stays readable); the pump catches it.
                std::panic::resume_unwind(Box::new("a stream that panics midway"));
            }
            Ok(Chunk {
                seq,
                payload: vec![7; size].into(),
            })
        });
        Ok(Response::new(futures_util::stream::iter(chunks).boxed()))
    }
}

fn start(streams: &Arc<Streams>) -> Running {
    let streams = Arc::clone(streams);
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(StreamerServer::new(Ready { streams }))
            .add_service(EchoServer::new(crate::support::EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// The client's SETTINGS and the OPEN and request of every stream (odd ids 1, 3, …).
fn calls() -> Vec<u8> {
    let mut calls = PREFACE.to_vec();
    calls.extend_from_slice(&frame(
        WINDOW,
        SETTINGS,
        0,
        &CAP_ANSWER_WINDOW.to_be_bytes(),
    ));
    for n in 1..=STREAMS {
        let call_id = 2 * n - 1;
        let timeout = if n % TIMED == 0 {
            DEADLINE
        } else {
            Duration::ZERO
        };
        let mut open = (timeout.as_micros() as u64).to_be_bytes().to_vec();
        open.extend_from_slice(&(PRODUCE_PATH.len() as u16).to_be_bytes());
        open.extend_from_slice(PRODUCE_PATH);
        open.extend_from_slice(&0u16.to_be_bytes());
        let request = ProduceRequest {
            count: MESSAGES,
            size: SIZE,
            delay_ms: u64::from(n % WAITS == 0),
            fail_after: (n % PANICS == 0).then_some(2),
            ..ProduceRequest::default()
        }
        .encode_to_vec();
        calls.extend_from_slice(&frame(1, 0, call_id, &open));
        calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &request));
    }
    calls
}

/// What the client has read: bytes, the charges of the answers, and the calls ended.
#[derive(Default)]
struct Seen {
    bytes: AtomicU64,
    charges: AtomicU64,
    ended: Mutex<HashSet<u32>>,
}

/// Reads everything the server sends, slowly, until it closes, counting the answers' charges
/// and the calls ended.
async fn read_slowly(reader: OwnedReadHalf, seen: Arc<Seen>) {
    walk_frames(
        reader,
        &seen.bytes,
        Pace::Slow,
        |kind, call_id, length| match kind {
            MESSAGE if call_id != 0 => {
                let charge = length as u64 + MESSAGE_CHARGE;
                seen.charges.fetch_add(charge, Ordering::Relaxed);
            }
            END => {
                seen.ended.lock().expect("ended").insert(call_id);
            }
            _ => {}
        },
    )
    .await;
}

/// Opens the streams, reads slowly without crediting until the server stops: the streams
/// left wait for credit. Returns the reader's task, the writer and what it saw.
async fn streams_waiting(
    server: &Running,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::net::tcp::OwnedWriteHalf,
    Arc<Seen>,
) {
    let (reader, mut writer) = connect(server.addr).await.into_split();
    let seen = Arc::new(Seen::default());
    let reading = tokio::spawn(read_slowly(reader, Arc::clone(&seen)));
    bounded("write the calls", writer.write_all(&calls()))
        .await
        .expect("write");
    until_quiet(&seen.bytes, Duration::from_millis(400)).await;
    let read = seen.bytes.load(Ordering::Relaxed);
    let ended = seen.ended.lock().expect("ended").len();
    assert!(
        read >= 15 << 20 && ended < STREAMS as usize,
        "the answer window holds the streams back: {read} bytes read, {ended} streams ended"
    );
    (reading, writer, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_leaving_the_lines_never_strand_the_others() {
    let streams = Arc::new(Streams::default());
    let server = start(&streams);
    let (reading, mut writer, seen) = streams_waiting(&server).await;

    // A quarter of the streams still going are cancelled, those that may hold turns among them.
    let ended = seen.ended.lock().expect("ended").clone();
    let cancelled: HashSet<u32> = (1..=STREAMS)
        .map(|n| 2 * n - 1)
        .filter(|id| !ended.contains(id) && id % 8 == 1)
        .collect();
    let cancels: Vec<u8> = cancelled
        .iter()
        .flat_map(|&id| frame(CANCEL, 0, id, &[]))
        .collect();
    bounded("cancel", writer.write_all(&cancels))
        .await
        .expect("write");

    // Credit for what was read, in pieces of 1 KiB, as it is read: every other stream ends.
    let mut credited = 0u64;
    let mut last = (0, 0);
    let mut still = Duration::ZERO;
    loop {
        let done = {
            let ended = seen.ended.lock().expect("ended");
            (1..=STREAMS)
                .map(|n| 2 * n - 1)
                .all(|id| ended.contains(&id) || cancelled.contains(&id))
        };
        if done {
            break;
        }
        let charges = seen.charges.load(Ordering::Relaxed);
        let mut credits = Vec::new();
        while credited < charges && credits.len() < 64 * 1024 {
            let piece = PIECE.min(charges - credited);
            credits.extend_from_slice(&credit(piece as u32));
            credited += piece;
        }
        if !credits.is_empty() {
            bounded("credit", writer.write_all(&credits))
                .await
                .expect("write");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = (
            seen.bytes.load(Ordering::Relaxed),
            seen.ended.lock().expect("ended").len(),
        );
        if now == last && credited == charges {
            still += Duration::from_millis(5);
            let ended = now.1;
            assert!(
                still < STEP,
                "nothing more for {still:?} with everything read credited: {ended} of \
                 {STREAMS} streams ended, {} cancelled; the others wait for ever",
                cancelled.len()
            );
        } else {
            still = Duration::ZERO;
            last = now;
        }
    }
    let ended = seen.ended.lock().expect("ended").len();
    eprintln!(
        "{ended} streams ended, {} cancelled while waiting, {} MiB read",
        cancelled.len(),
        seen.bytes.load(Ordering::Relaxed) >> 20
    );
    all_dropped(&streams).await;
    drop(writer);
    reading.abort();
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_closes_ends_every_stream_waiting_in_line() {
    let streams = Arc::new(Streams::default());
    let server = start(&streams);
    let (reading, writer, _seen) = streams_waiting(&server).await;
    drop(writer);
    reading.abort();
    let _ = reading.await;
    all_dropped(&streams).await;
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

/// Waits (bounded: STEP, polled every 20 ms) until every stream made was dropped (and most of
/// the handlers made one: a run where none did would prove nothing); a failure says how many
/// were, then and when the wait began, so that streams left parked for good are told from a
/// slow machine.
async fn all_dropped(streams: &Streams) {
    let waited = std::time::Instant::now();
    let first = streams.dropped.load(Ordering::SeqCst);
    loop {
        let made = streams.made.load(Ordering::SeqCst);
        let now = streams.dropped.load(Ordering::SeqCst);
        if now == made {
            assert!(
                made >= STREAMS as usize / 2,
                "only {made} of {STREAMS} handlers made their stream"
            );
            return;
        }
        assert!(
            waited.elapsed() < STEP,
            "every stream is dropped: {now} of the {made} made after {STEP:?} ({first} when the \
             wait began)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
