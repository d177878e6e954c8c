//! Target `server_connection`: a whole server connection, fed arbitrary bytes over an in-memory
//! duplex.
//!
//! Why: the decoder and parsers can be right while the connection's state machine (calls opened,
//! messages before or after OPEN, CANCEL, WINDOW, END, PING policy, deadlines, handlers that
//! answer at once or later, streams paced by credit) still panics, hangs, or writes garbage on
//! some order of frames. This drives all of it from one byte string.
//!
//! Input layout:
//!
//! ```text
//! byte 0   bits 0-3: nonzero → the valid preface is sent first (15 inputs in 16)
//!          bits 4-7: how the bytes are cut into writes (see CHUNKS)
//! rest     what the client sends; then it half-closes
//! ```
//!
//! The server runs `Server::builder().router(..).serve_connection(..)` with small limits and
//! a router of one hand-written service, `fuzz.Echo` (see [`Echo`]), on a current-thread runtime
//! whose clock is paused: time jumps ahead whenever every task waits, so deadlines and handler
//! sleeps cost no wall time. Properties checked:
//! - nothing panics (a panic in the connection's task is re-raised here);
//! - the connection finishes within a virtual day (the client writes, waits an hour for its
//!   answers, closes, and reads everything to the end): a hang is a bug;
//! - what the server wrote decodes cleanly with a client's `FrameDecoder`: garbage in never makes
//!   the server write garbage out.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use sockrpc::protocol::frame::{Frame, PREFACE};
use sockrpc::service::CallFuture;
use sockrpc::transport::FrameDecoder;
use sockrpc::{Body, Call, Code, Limits, Request, Response, Router, Server, Status};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tower_service::Service;

/// Write sizes the high nibble of byte 0 picks; `usize::MAX` is one write.
const CHUNKS: [usize; 16] = [
    usize::MAX,
    1,
    2,
    3,
    5,
    7,
    8,
    12,
    13,
    20,
    31,
    64,
    100,
    256,
    1000,
    4096,
];

/// Virtual time the client waits, after its last write, before it closes.
const LINGER: Duration = Duration::from_secs(3600);

/// Virtual time after which a connection that has not finished is a hang.
const LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The mounted service's name.
pub const SERVICE: &str = "fuzz.Echo";

/// Largest message the server accepts: small, so oversized messages are cheap to send.
pub const MAX_MESSAGE: usize = 256;
/// Largest metadata block the server accepts.
pub const MAX_METADATA: usize = 128;
/// Calls one connection may have open: small, so the limit is reached.
pub const MAX_CALLS: usize = 4;
/// Response messages the `Stream` method may send in all, per connection (its flood mode).
const FLOOD_BUDGET: usize = 1000;

/// The target.
pub fn run(data: &[u8]) {
    serve(data);
}

/// Runs the target and returns the frames the server wrote (for tests of the harness itself).
pub fn serve(data: &[u8]) -> Vec<Frame> {
    let Some((&config, rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut input = Vec::with_capacity(PREFACE.len() + rest.len());
    if config & 0x0f != 0 {
        input.extend_from_slice(&PREFACE);
    }
    input.extend_from_slice(rest);
    let chunk = CHUNKS[usize::from(config >> 4)];

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let output = runtime.block_on(async move {
        match tokio::time::timeout(LIMIT, exchange(input, chunk)).await {
            Ok(output) => output,
            Err(_) => panic!("the server connection did not finish within {LIMIT:?}"),
        }
    });
    check_output(output)
}

/// Builds an input: whether to send the preface, the write-size selector (0-15), the bytes.
pub fn input(preface: bool, chunking: u8, bytes: &[u8]) -> Vec<u8> {
    let mut input = vec![u8::from(preface) | (chunking << 4)];
    input.extend_from_slice(bytes);
    input
}

/// Runs one connection: writes `input` in `chunk`-sized writes, half-closes, reads everything.
async fn exchange(input: Vec<u8>, chunk: usize) -> BytesMut {
    let (client, server_io) = tokio::io::duplex(1 << 20);
    let serving = tokio::spawn(async move {
        Server::builder()
            .router(Router::new().add_named(SERVICE, Echo::default()))
            .limits(
                Limits::default()
                    .with_max_message_size(MAX_MESSAGE)
                    .with_max_metadata_size(MAX_METADATA),
            )
            .max_concurrent_calls(MAX_CALLS)
            .serve_connection(server_io, None)
            .await
    });
    let (mut reader, mut writer) = tokio::io::split(client);
    let writing = async move {
        for part in input.chunks(chunk) {
            if writer.write_all(part).await.is_err() {
                return; // The server closed the connection.
            }
            tokio::task::yield_now().await;
        }
        // A client waits for its answers before it leaves (the server stops every handler when
        // the client closes). On the paused clock this hour passes as soon as all is idle,
        // after every deadline and sleep that ends sooner.
        tokio::time::sleep(LINGER).await;
        let _ = writer.shutdown().await;
    };
    let reading = async move {
        let mut output = BytesMut::new();
        while let Ok(n) = reader.read_buf(&mut output).await {
            if n == 0 {
                break;
            }
        }
        output
    };
    let ((), output) = tokio::join!(writing, reading);
    if let Err(err) = serving.await {
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
    }
    output
}

/// Decodes everything the server wrote, as its client would.
fn check_output(mut output: BytesMut) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut frames = Vec::new();
    loop {
        match decoder.decode(&mut output) {
            Ok(Some(frame)) => frames.push(frame),
            // What is left may be a frame cut by the close (the server flushes best effort).
            Ok(None) => return frames,
            Err(err) => panic!("the server wrote what a client cannot decode: {err}"),
        }
    }
}

/// `fuzz.Echo`: methods whose behaviour the request's first byte picks, to reach the
/// connection's paths (inline answer, answer from a task, error, leading metadata, streams paced
/// by credit, a handler that waits for its deadline or its CANCEL).
///
/// - `Unary`: one message back, with the request's metadata as leading metadata and trailers;
///   first byte `e`: an error status with details and metadata; `s`: sleeps 5 ms first.
/// - `Stream`: echoes each request message as it arrives (one, for server streaming; a stream,
///   for OPEN with the STREAM flag); a message starting with `f` comes back 300 times (within a
///   budget per connection), more than the client's window holds.
/// - `Wait`: never answers; ends by deadline, CANCEL or the connection closing.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    flood: Arc<AtomicUsize>,
}

impl Service<Call> for Echo {
    type Response = Response<Body>;
    type Error = Status;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> CallFuture {
        let (path, request) = call.into_parts();
        match path.method() {
            "Unary" => Box::pin(unary(request)),
            "Stream" => Box::pin(std::future::ready(Ok(stream(
                request,
                Arc::clone(&self.flood),
            )))),
            "Wait" => Box::pin(std::future::pending()),
            other => Box::pin(std::future::ready(Err(Status::unimplemented(format!(
                "fuzz.Echo has no method {other}"
            ))))),
        }
    }
}

async fn unary(request: Request<Body>) -> Result<Response<Body>, Status> {
    let (metadata, body, _) = request.into_parts();
    let message = body.single().await?;
    match message.first() {
        Some(b'e') => {
            let mut status =
                Status::with_details(Code::InvalidArgument, "echoed error", message.clone());
            *status.metadata_mut() = metadata;
            return Err(status);
        }
        Some(b's') => tokio::time::sleep(Duration::from_millis(5)).await,
        _ => {}
    }
    let mut response = Response::new(Body::once(message));
    *response.trailers_mut() = metadata.clone();
    *response.metadata_mut() = metadata;
    Ok(response)
}

fn stream(request: Request<Body>, flood: Arc<AtomicUsize>) -> Response<Body> {
    let (_, body, _) = request.into_parts();
    let replies = body.flat_map(move |item| {
        let copies = match &item {
            Ok(message) if message.first() == Some(&b'f') => {
                let taken = flood.fetch_add(300, Ordering::Relaxed);
                FLOOD_BUDGET.saturating_sub(taken).clamp(1, 300)
            }
            _ => 1,
        };
        futures_util::stream::iter(std::iter::repeat_n(item, copies))
    });
    Response::new(Body::from_stream(replies))
}

/// An OPEN for `fuzz.Echo/<method>`: helper for seeds.
pub fn path(method: &str) -> Bytes {
    Bytes::from(format!("/{SERVICE}/{method}"))
}
