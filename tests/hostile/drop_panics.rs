//! A streaming handler whose future panics as it is dropped fails its own call only, however
//! the server drops it.
//!
//! Streaming calls run on their connection's task (`server/local.rs`). A call the server ends
//! itself (its deadline, a panic) is dropped inside `ending::drop_as`, which catches a panic in
//! the drop; but a call the client cancelled, or whose request message was over the limit, was
//! dropped plainly, and a panic in that drop (something the handler held: a guard that checks
//! on drop, a blocking runtime or client dropped inside async code) unwound through the
//! connection's task: every other call on the connection failed, and the connection closed.
//! Here a client cancels one such stream, and overflows another's message limit, while a third
//! stream on the same connection goes on: it must be answered on that connection, as must a
//! unary call after (before the fix the second drop, during the unwinding of the first,
//! aborted the test's process). Then a client goes away with two such streams open: the server
//! drops both and serves the next connection. The drops panic with `resume_unwind`, which runs
//! no panic hook.

use crate::edges::{end_code, until_end};
use crate::raw::{connect, frame, open_body, send, server_frames, END, END_STREAM, PREFACE};
use crate::stream_reset::UNARY_PATH;
use crate::support::{bounded, start_serving};
use prost::Message as _;
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::Chunk;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const GATHER_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Gather";
const PING_PONG_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/PingPong";
/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
const MESSAGE: u8 = 3;
const CANCEL: u8 = 5;
/// The server's message limit: the overflowing message is one byte more.
const LIMIT: usize = 64 * 1024;

/// Panics when dropped, without running the panic hook.
pub(crate) struct Bomb(pub(crate) Arc<AtomicUsize>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::panic::resume_unwind(Box::new("a handler's value panicked as it was dropped"));
    }
}

/// `Gather` holds a [`Bomb`] and waits for ever (until dropped); the rest is `Mirror`'s.
#[derive(Default)]
struct Bombs {
    started: Arc<AtomicUsize>,
    exploded: Arc<AtomicUsize>,
}

impl Streamer for Bombs {
    sockrpc_tests::mirror_methods!(unary, produce, collect, ping_pong);

    type GatherStream = sockrpc_tests::mirror::Chunks;

    async fn gather(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        let _bomb = Bomb(Arc::clone(&self.exploded));
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    }
}

fn chunk(seq: u64, payload: &'static [u8]) -> Vec<u8> {
    Chunk {
        seq,
        payload: bytes::Bytes::from_static(payload),
    }
    .encode_to_vec()
}

/// Reads until a MESSAGE for `call_id` arrives; fails if the connection closes first.
async fn until_message(stream: &mut TcpStream, got: &mut Vec<u8>, call_id: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the stream's echo", async {
        loop {
            let frames = server_frames(got);
            if let Some(f) = frames
                .iter()
                .find(|f| f.kind == MESSAGE && f.call_id == call_id)
            {
                return f.body.clone();
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection; got {frames:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_as_it_is_dropped_fails_only_its_own_call() {
    let service = Bombs::default();
    let (started, exploded) = (Arc::clone(&service.started), Arc::clone(&service.exploded));
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_decoding_message_size(LIMIT)
            .add_service(StreamerServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = connect(server.addr).await;
    let gather = open_body(GATHER_PATH, &[]);
    // Calls 1 and 3: bombs; call 5: a stream that echoes, open throughout.
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(1, STREAM, 1, &gather),
            &frame(1, STREAM, 3, &gather),
            &frame(1, STREAM, 5, &open_body(PING_PONG_PATH, &[])),
        ],
    )
    .await;
    bounded("both bombs armed", async {
        while started.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;

    let mut got = Vec::new();
    // The client gives up call 1; call 3's next message is over the limit.
    let over = vec![0u8; LIMIT + 1];
    send(
        &mut stream,
        &[
            &frame(CANCEL, 0, 1, &[]),
            &frame(MESSAGE, 0, 3, &over),
            &frame(MESSAGE, 0, 5, &chunk(1, b"still here")),
        ],
    )
    .await;
    let echoed = until_message(&mut stream, &mut got, 5).await;
    let echoed = Chunk::decode(&echoed[..]).expect("a Chunk");
    assert_eq!((echoed.seq, &echoed.payload[..]), (1, &b"still here"[..]));
    let frames = until_end(&mut stream, &mut got, 3).await;
    assert_eq!(end_code(&frames, 3), 8, "call 3 ends RESOURCE_EXHAUSTED");
    assert_eq!(
        exploded.load(Ordering::SeqCst),
        2,
        "both handlers were dropped"
    );

    // The echo stream ends cleanly, and a unary call after it is served, on this connection.
    send(
        &mut stream,
        &[
            &frame(END, 0, 5, &[0; 14]),
            &frame(1, 0, 7, &open_body(UNARY_PATH, &[])),
            &frame(MESSAGE, END_STREAM, 7, &chunk(2, b"after")),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 7).await;
    assert_eq!(end_code(&frames, 5), 0, "the echo stream ends OK");
    assert_eq!(end_code(&frames, 7), 0, "the unary call after it");
    drop(stream);

    // A client that goes away with two such streams open: the connection drops both.
    let mut stream = connect(server.addr).await;
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(1, STREAM, 1, &gather),
            &frame(1, STREAM, 3, &gather),
        ],
    )
    .await;
    bounded("two more bombs armed", async {
        while started.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    drop(stream);
    bounded("both dropped", async {
        while exploded.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(1, 0, 1, &open_body(UNARY_PATH, &[])),
            &frame(MESSAGE, END_STREAM, 1, &chunk(3, b"later")),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "a call on a new connection");
    drop(stream);
    server.stop().await;
}
