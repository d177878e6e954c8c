//! A streamed answer the server gives up mid-message gives back to the answer window what of it
//! never went out (`ConnState::abandon_answer`).
//!
//! The server counts a streamed answer's whole charge against the client's answer window when
//! it queues it; a large one goes out in pieces. When the call ends early (here its deadline;
//! a CANCEL, a panicking handler or a request over the limit take the same path), the pieces
//! not cut yet are dropped and the client completes, and credits, only the shorter message.
//! Had the server kept the dropped bytes outstanding, each such call would shrink the window
//! for good, until every stream on the connection waited for ever.
//!
//! A raw client that grants the window (`CAP_ANSWER_WINDOW`) lets a 16 MiB answer's deadline
//! pass unread, credits exactly what of it arrived, then opens streams of 1 MiB answers and
//! credits nothing: a whole window of them (16) must arrive.

use crate::raw::{connect, frame, send, END, END_STREAM, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::server_probe::next_frame;
use crate::support::{bounded, start_serving, Running};
use futures_util::StreamExt;
use prost::Message;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::net::TcpStream;

/// The answer the server gives up on.
const LARGE: u32 = 16 << 20;
/// The given-up call's deadline, in the OPEN's `timeout_us`.
const DEADLINE: Duration = Duration::from_millis(300);
/// How long the client reads nothing: past the deadline.
const STALL: Duration = Duration::from_millis(600);
/// Streams opened afterwards, each answered with one 1 MiB chunk: more than a window's worth.
const LATER: u32 = 24;
/// Answers of 1 MiB (and a few bytes, and 64 of charge) that fit the 16 MiB answer window.
const FIT: usize = 16;
/// MESSAGE flag of a piece before the last.
const MORE: u8 = 0x02;
/// `CAP_PIECES | CAP_ANSWER_WINDOW` in the client's SETTINGS.
const CAPABILITIES: u8 = 0x08 | 0x20;
/// What a streamed answer charges beyond its bytes.
const MESSAGE_CHARGE: usize = 64;

/// `Produce` answers `count` chunks of `size` bytes, then nothing, for ever.
struct Sized;

impl Streamer for Sized {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let ProduceRequest { count, size, .. } = request.into_inner();
        let chunks = (0..count).map(move |seq| {
            Ok(Chunk {
                seq,
                payload: vec![9u8; size as usize].into(),
            })
        });
        let answers = futures_util::stream::iter(chunks).chain(futures_util::stream::pending());
        Ok(Response::new(answers.boxed()))
    }
}

fn start() -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_encoding_message_size(2 * LARGE as usize)
            .add_service(StreamerServer::new(Sized))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// OPEN and request of Produce call `id`: `count` chunks of `size` bytes, within `deadline`.
fn produce(id: u32, count: u64, size: u32, deadline: Option<Duration>) -> Vec<u8> {
    let path = b"/sockrpc.test.stream.Streamer/Produce";
    let timeout = deadline.map_or(0, |d| d.as_micros() as u64);
    let mut open = timeout.to_be_bytes().to_vec();
    open.extend_from_slice(&(path.len() as u16).to_be_bytes());
    open.extend_from_slice(path);
    open.extend_from_slice(&0u16.to_be_bytes());
    let request = ProduceRequest {
        count,
        size,
        ..Default::default()
    }
    .encode_to_vec();
    [
        frame(1, 0, id, &open),
        frame(MESSAGE, END_STREAM, id, &request),
    ]
    .concat()
}

/// Reads the server's frames until call 1 has both ended and completed its message (the
/// given-up one ends with an empty last piece): the bytes of that message that arrived.
async fn given_up_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let (mut bytes, mut ended, mut completed) = (0, false, false);
    bounded("call 1's END and last piece", async {
        // Bounded: 1,000 frames (16 MiB in 64 KiB pieces is 256).
        for _ in 0..1_000 {
            let (kind, flags, id, body) = next_frame(stream, buf).await.expect("a frame");
            if id == 1 && kind == MESSAGE {
                bytes += body.len();
                completed = flags & MORE == 0;
            }
            ended |= id == 1 && kind == END;
            if ended && completed {
                return;
            }
        }
        panic!("no end of call 1 after 1,000 frames");
    })
    .await;
    bytes
}

/// Reads the server's frames until none comes for a second (bounded): the messages completed
/// on calls other than 1.
async fn answers_until_quiet(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut answers = 0;
    // Bounded: 10,000 frames (24 MiB in 64 KiB pieces is 384).
    for _ in 0..10_000 {
        let quiet = Duration::from_secs(1);
        let Ok(Some((kind, flags, id, _))) =
            tokio::time::timeout(quiet, next_frame(stream, buf)).await
        else {
            return answers;
        };
        if id != 1 && kind == MESSAGE && flags & MORE == 0 {
            answers += 1;
        }
    }
    panic!("the server never went quiet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_answer_gives_its_unsent_charge_back() {
    let server = start();
    let mut stream = connect(server.addr).await;
    let settings = frame(WINDOW, SETTINGS, 0, &[0, 0, 0, CAPABILITIES]);
    let first = produce(1, 1, LARGE, Some(DEADLINE));
    send(&mut stream, &[PREFACE, &settings, &first]).await;
    // Nothing read while the deadline passes: what the server wrote waits in the sockets, the
    // rest of the answer is dropped unsent.
    tokio::time::sleep(STALL).await;
    let mut buf = Vec::new();
    let arrived = given_up_answer(&mut stream, &mut buf).await;
    assert!(
        arrived < LARGE as usize / 2,
        "{arrived} bytes of the given-up answer were sent: nothing was dropped unsent"
    );
    // The client credits what it completed, as a sockrpc client does (`client/answers.rs`).
    let credit = u32::try_from(arrived + MESSAGE_CHARGE).expect("under 4 GiB");
    let later: Vec<Vec<u8>> = (0..LATER)
        .map(|i| produce(3 + 2 * i, 1, 1 << 20, None))
        .collect();
    let mut parts: Vec<&[u8]> = Vec::new();
    let window = frame(WINDOW, 0, 0, &credit.to_be_bytes());
    parts.push(&window);
    parts.extend(later.iter().map(Vec::as_slice));
    send(&mut stream, &parts).await;
    let answers = answers_until_quiet(&mut stream, &mut buf).await;
    assert!(
        (FIT..=FIT + 1).contains(&answers),
        "{answers} answers of 1 MiB came in a fresh 16 MiB answer window: the given-up \
         answer's unsent bytes ({} MiB) stayed outstanding",
        (LARGE as usize - arrived) >> 20
    );
    drop(stream);
    server.stop().await;
}
