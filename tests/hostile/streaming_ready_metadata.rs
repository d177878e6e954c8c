//! A streaming call whose handler returns its answer stream at once counts its path and
//! metadata against the connection's budget of running requests, as one that waits does
//! (`server/call.rs`; `streaming_metadata.rs` is the handler that waits).
//!
//! The handler's future is done at its first poll, but the call runs on: its answer stream
//! (here holding the request's metadata, as a stream built from the request may) is pumped for
//! as long as the stream lasts. Only a handler still pending after its first poll was counted,
//! so 200 such streams with 16 KiB of metadata each all ran past a budget of 1 MiB, none
//! refused. Now the streams past the budget are refused `RESOURCE_EXHAUSTED`, and once the
//! running ones are cancelled the next call is served.

use crate::raw::{frame, server_frames, END, PREFACE};
use crate::streaming_metadata::{
    streaming_open, BUDGET, CANCEL, ENTRIES, OPENS, RESOURCE_EXHAUSTED,
};
use crate::support::{bounded, start_serving};
use futures_util::StreamExt;
use sockrpc::{MetadataMap, Request, Response, Status, Streaming};
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PING_PONG: &[u8] = b"/sockrpc.test.stream.Streamer/PingPong";
const UNARY: &[u8] = b"/sockrpc.test.stream.Streamer/Unary";

/// `PingPong` answers at once with a stream that holds the request's metadata and never ends;
/// `Unary` echoes.
struct Holding;

impl Streamer for Holding {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not here"))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Chunks>, Status> {
        let held: MetadataMap = request.metadata().clone();
        let answers = futures_util::stream::pending().map(move |chunk| {
            let _ = &held;
            chunk
        });
        Ok(Response::new(answers.boxed()))
    }

    type GatherStream = Chunks;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// A unary `Unary` call: OPEN and its one MESSAGE (an empty `Chunk`).
fn unary_call(call_id: u32) -> Vec<u8> {
    let mut bytes = crate::raw::open(call_id, UNARY, &[]);
    bytes.extend_from_slice(&frame(
        crate::raw::MESSAGE,
        crate::raw::END_STREAM,
        call_id,
        &[],
    ));
    bytes
}

/// Reads into `got` until the END of `call_id` arrived; returns the END codes by call.
async fn read_until_end(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    call_id: u32,
) -> Vec<(u32, u32)> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let ends: Vec<(u32, u32)> = server_frames(got)
            .iter()
            .filter(|f| f.kind == END)
            .map(|f| {
                let code = u32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]]);
                (f.call_id, code)
            })
            .collect();
        if ends.iter().any(|(id, _)| *id == call_id) {
            return ends;
        }
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_answered_at_once_count_against_the_running_budget() {
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(StreamerServer::new(Holding))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=OPENS {
        bytes.extend_from_slice(&streaming_open(call_id, PING_PONG));
    }
    // A unary call after them: its answer shows the server has taken every OPEN.
    let last = OPENS + 1;
    bytes.extend_from_slice(&unary_call(last));
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let ends = bounded(
        "the unary call after the streams is answered",
        read_until_end(&mut stream, &mut got, last),
    )
    .await;
    let refused = ends
        .iter()
        .filter(|(id, code)| *id <= OPENS && *code == RESOURCE_EXHAUSTED)
        .count();
    let other: Vec<_> = ends
        .iter()
        .filter(|(id, code)| *id <= OPENS && *code != RESOURCE_EXHAUSTED)
        .collect();
    assert!(other.is_empty(), "streams ended otherwise: {other:?}");
    let runs = OPENS as usize - refused;
    // Each counts at least its 455 entries' bytes and 32 bytes apiece.
    assert!(
        runs * ENTRIES * 36 <= BUDGET + ENTRIES * 200,
        "{runs} streaming calls answered at once run holding their metadata, past the budget \
         of {BUDGET} bytes ({refused} refused)"
    );
    assert!(runs >= 1, "the first stream runs");

    // Cancelled, the streams give their share back: the next call is served.
    let mut bytes = Vec::new();
    for call_id in 1..=OPENS {
        bytes.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
    }
    let after = last + 1;
    bytes.extend_from_slice(&unary_call(after));
    stream.write_all(&bytes).await.expect("write");
    let ends = bounded(
        "the unary call after the cancels is answered",
        read_until_end(&mut stream, &mut got, after),
    )
    .await;
    assert!(
        ends.contains(&(after, 0)),
        "served once the streams ended: {ends:?}"
    );
    drop(stream);
    running.stop().await;
}
