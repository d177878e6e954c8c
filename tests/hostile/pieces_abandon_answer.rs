//! A server that gives up a 16 MiB answer mid-message stops sending it.
//!
//! A server stream's first answer is 16 MiB, going out in pieces to a client that reads
//! slowly; its next answer never comes, and the call's deadline passes. The server ends the
//! call `DEADLINE_EXCEEDED` (`call.rs`, `finish_call`) and, through `Outbox::abandon`, drops what
//! of the answer is not cut yet: the client gets the pieces that left, the END, then an empty
//! last piece that ends its assembly (`docs/PROTOCOL.md`, *Pieces*), not 16 MiB. The client
//! here is raw, so that only the server's deadline, not a client's CANCEL, ends the call.

use crate::raw::{connect, frame, send, END, END_STREAM, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::support::{bounded, start_serving, Running};
use futures_util::StreamExt;
use prost::Message;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The answer the server gives up on.
const LARGE: usize = 16 << 20;
/// The call's deadline, in the OPEN's `timeout_us`.
const DEADLINE: Duration = Duration::from_millis(300);
/// How long the client reads nothing: past the deadline.
const STALL: Duration = Duration::from_millis(600);
/// MESSAGE flag of a piece before the last.
const MORE: u8 = 0x02;
/// The client reads split messages (`CAP_PIECES`).
const CAP_PIECES: u8 = 0x08;
const DEADLINE_EXCEEDED: u32 = 4;

/// `Produce` answers one 16 MiB chunk, then nothing, for ever; the rest is `Mirror`'s.
struct Flood;

impl Streamer for Flood {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let large = Chunk {
            seq: 0,
            payload: vec![9u8; LARGE].into(),
        };
        let answers =
            futures_util::stream::iter([Ok(large)]).chain(futures_util::stream::pending());
        Ok(Response::new(answers.boxed()))
    }
}

fn start() -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_encoding_message_size(2 * LARGE)
            .add_service(StreamerServer::new(Flood))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_gives_up_a_16_mib_answer_stops_sending_it() {
    let server = start();
    let mut stream = connect(server.addr).await;
    let path = b"/sockrpc.test.stream.Streamer/Produce";
    let mut open = (DEADLINE.as_micros() as u64).to_be_bytes().to_vec();
    open.extend_from_slice(&(path.len() as u16).to_be_bytes());
    open.extend_from_slice(path);
    open.extend_from_slice(&0u16.to_be_bytes());
    let request = ProduceRequest::default().encode_to_vec();
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(WINDOW, SETTINGS, 0, &[0, 0, 0, CAP_PIECES]),
            &frame(1, 0, 1, &open),
            &frame(MESSAGE, END_STREAM, 1, &request),
        ],
    )
    .await;
    // Nothing read while the deadline passes: what the server wrote waits in the sockets.
    tokio::time::sleep(STALL).await;
    // Then everything, up to the piece that ends call 1's message after its END.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut message_bytes, mut ended, mut last_piece) = (0usize, None, None);
    bounded("the END and the piece that ends the message", async {
        // Bounded: 100,000 reads, and in time.
        for _ in 0..100_000 {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
            // Frames after the preface, each taken once whole.
            let mut at = PREFACE.len().min(got.len());
            while got.len() >= at + 12 {
                let len = u32::from_be_bytes(got[at..at + 4].try_into().expect("len")) as usize;
                if got.len() < at + 12 + len {
                    break;
                }
                let (kind, flags) = (got[at + 4], got[at + 5]);
                let call = u32::from_be_bytes(got[at + 8..at + 12].try_into().expect("id"));
                let body = &got[at + 12..at + 12 + len];
                if call == 1 && kind == MESSAGE {
                    message_bytes += len;
                    if flags & MORE == 0 {
                        last_piece = Some((len, ended.is_some()));
                    }
                } else if call == 1 && kind == END {
                    ended = Some(u32::from_be_bytes(body[..4].try_into().expect("code")));
                }
                at += 12 + len;
            }
            got.drain(PREFACE.len().min(got.len())..at);
            if last_piece.is_some() && ended.is_some() {
                return;
            }
        }
        panic!("no end after 100,000 reads");
    })
    .await;
    assert_eq!(ended, Some(DEADLINE_EXCEEDED), "the call's END");
    assert_eq!(
        last_piece,
        Some((0, true)),
        "the message's last piece: (length, after the END)"
    );
    assert!(
        message_bytes < LARGE / 2,
        "{message_bytes} bytes of the given-up answer were sent"
    );
    drop(stream);
    server.stop().await;
}
