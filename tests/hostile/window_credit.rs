//! Stream credit a client cannot inflate. A server streaming answers sends while what it sent
//! less what the client credited (WINDOW) is under `STREAM_WINDOW` (docs/FLOW-CONTROL.md). A
//! client that credits more than it was ever sent — `u32::MAX` a hundred times over, once the
//! window is full, and again — must get one window (and one message past it) per round of
//! grants, never a credit "balance": summed, or kept as credit ahead, such grants would let a
//! server push its whole stream (here 10 MiB) into a client and the connection's write buffer
//! (a balance kept in `Outbound::credit`, tried by hand, let all 10 MiB out). Zero credit
//! changes nothing. Other frame floods (WINDOW on call 0 and on calls that never existed) are
//! `probe.rs`'s; this is credit on a live stream.

use crate::raw::{
    connect, frame, open, send, ServerFrame, END, END_STREAM, MESSAGE, PREFACE, WINDOW,
};
use crate::support::{bounded, start_serving, Running};
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const PRODUCE_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Produce";
/// Bytes per answer, and answers the handler would stream given the chance (10 MiB).
const SIZE: u32 = 1024;
const COUNT: u64 = 10 * 1024;
/// `STREAM_WINDOW` (crates/sockrpc-protocol/src/frame/mod.rs).
const WINDOW_SIZE: usize = 64 * 1024;
/// The most one window lets out: the window, one answer past it, each answer's protobuf
/// framing (`seq`, the payload's tag and length: under 16 bytes).
const ONE_GRANT: usize = WINDOW_SIZE + (SIZE as usize + 16) * (1 + WINDOW_SIZE / SIZE as usize);

/// `Produce` streams `count` chunks of `size` bytes as fast as credit allows; the rest is
/// [`Mirror`]'s.
struct Producer;

impl Streamer for Producer {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let ProduceRequest { count, size, .. } = request.into_inner();
        let payload = bytes::Bytes::from(vec![0x5A; size as usize]);
        let chunks = futures_util::stream::iter(0..count).map(move |seq| {
            Ok(Chunk {
                seq,
                payload: payload.clone(),
            })
        });
        Ok(Response::new(chunks.boxed()))
    }
}

fn start() -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(StreamerServer::new(Producer))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// OPEN and request of a `Produce` call (unary request, streamed answer; no `CHARGED`, so
/// answers count their bytes alone against the window).
fn produce(call_id: u32, count: u64) -> Vec<u8> {
    let request = ProduceRequest {
        count,
        size: SIZE,
        ..Default::default()
    };
    [
        open(call_id, PRODUCE_PATH, &[]),
        frame(MESSAGE, END_STREAM, call_id, &request.encode_to_vec()),
    ]
    .concat()
}

/// `times` WINDOW frames granting `credit` to `call_id`.
fn windows(call_id: u32, credit: u32, times: usize) -> Vec<u8> {
    frame(WINDOW, 0, call_id, &credit.to_be_bytes()).repeat(times)
}

/// Reads what the server sends for `period` (the connection must stay open) and returns its
/// whole frames, keeping a partial one in `pending` for the next call.
async fn frames_for(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    period: Duration,
) -> Vec<ServerFrame> {
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + period;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => panic!("the server closed the connection"),
            Ok(Ok(n)) => pending.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => panic!("the connection failed: {err}"),
        }
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while pending.len() - at >= 12 {
        let length = u32::from_be_bytes(pending[at..at + 4].try_into().expect("4")) as usize;
        if pending.len() - at < 12 + length {
            break;
        }
        frames.push(ServerFrame {
            kind: pending[at + 4],
            flags: pending[at + 5],
            call_id: u32::from_be_bytes(pending[at + 8..at + 12].try_into().expect("4")),
            body: pending[at + 12..at + 12 + length].to_vec(),
        });
        at += 12 + length;
    }
    pending.drain(..at);
    frames
}

/// Bytes of MESSAGE bodies for `call_id` among `frames`.
fn message_bytes(frames: &[ServerFrame], call_id: u32) -> usize {
    frames
        .iter()
        .filter(|f| f.kind == MESSAGE && f.call_id == call_id)
        .map(|f| f.body.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_past_what_was_sent_never_opens_more_than_one_window() {
    let server = start();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE, &produce(1, COUNT)]).await;
    let mut pending = Vec::new();
    // The preface and SETTINGS first: whole frames only from here on.
    bounded("the server's preface", async {
        while pending.len() < PREFACE.len() {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.expect("read"), 1, "closed");
            pending.push(byte[0]);
        }
    })
    .await;
    assert_eq!(&pending[..], PREFACE);
    pending.clear();
    let first = frames_for(&mut stream, &mut pending, Duration::from_millis(500)).await;
    let sent = message_bytes(&first, 1);
    assert!(sent > 0, "the stream never started: {first:?}");
    assert!(
        sent <= ONE_GRANT,
        "no credit yet, and {sent} bytes went out (one window: {ONE_GRANT})"
    );
    let mut seen = first;
    // The window is full now: u32::MAX a hundred times (and zero credit between) is still
    // one window, each round.
    for round in 0..2 {
        send(
            &mut stream,
            &[&windows(1, u32::MAX, 100), &windows(1, 0, 100)],
        )
        .await;
        let next = frames_for(&mut stream, &mut pending, Duration::from_millis(500)).await;
        let more = message_bytes(&next, 1);
        assert!(
            more > 0,
            "round {round}: credit on a full window let nothing out"
        );
        assert!(
            more <= ONE_GRANT,
            "round {round}: credit on a full window let {more} bytes out (one window: {ONE_GRANT})"
        );
        seen.extend(next);
    }
    assert!(
        !seen.iter().any(|f| f.kind == END),
        "the stream ended early"
    );
    // The connection goes on: a short stream on it is answered whole.
    // CANCEL (kind 5) of the long stream, then a short one.
    send(&mut stream, &[&frame(5, 0, 1, &[]), &produce(3, 3)]).await;
    let third = bounded("a short stream after", async {
        let mut all = Vec::new();
        loop {
            all.extend(frames_for(&mut stream, &mut pending, Duration::from_millis(50)).await);
            if all.iter().any(|f| f.kind == END && f.call_id == 3) {
                return all;
            }
        }
    })
    .await;
    let answers = third
        .iter()
        .filter(|f| f.kind == MESSAGE && f.call_id == 3)
        .count();
    assert_eq!(answers, 3, "the short stream's answers");
    let end = third
        .iter()
        .find(|f| f.kind == END && f.call_id == 3)
        .expect("END");
    assert_eq!(end.body[..4], [0, 0, 0, 0], "the short stream ends OK");
    drop(stream);
    server.stop().await;
}
