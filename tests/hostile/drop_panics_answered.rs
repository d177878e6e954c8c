//! A call whose future panics as it is dropped, after it answered, fails nothing: its answer
//! goes out whole and the connection serves on.
//!
//! `drop_panics.rs` covers streaming calls the client gave up. This covers the drop once the
//! answer is written: a layer's future (a guard that checks on drop, a metrics recorder) keeps
//! what it holds until the transport drops it. A unary call whose handler answered on its first
//! poll is dropped on the connection's task: a panic there failed every call on the connection.
//! One that answered later is dropped in its own task: a panic there, with an answer to stream,
//! left the call in flight for ever, its answer never sent (its client waited for its
//! deadline) and its place among the connection's calls never given back. Here each of those
//! calls, with an open stream on the same connection that must go on, and a call after them.

use crate::answer_probe::PRODUCE_PATH;
use crate::drop_panics::Bomb;
use crate::edges::{end_code, until_end};
use crate::raw::{connect, frame, open_body, send, server_frames, MESSAGE, PREFACE};
use crate::stream_reset::UNARY_PATH;
use crate::support::{bounded, start_serving};
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::service::Call;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const PING_PONG_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/PingPong";
/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
/// MESSAGE flag: the request's last message.
const END_STREAM: u8 = 1;
/// A call with this metadata has a [`Bomb`] held by its layer's future.
const BOMB: &[u8] = b"x-bomb";
/// A call with this metadata is not ready on its first poll (so it runs in its own task).
const LATER: &[u8] = b"x-later";

/// A call's metadata entries.
type Metadata<'a> = &'a [(&'a [u8], &'a [u8])];

/// Holds a [`Bomb`] beside the call's future when the call asks for one, until it is dropped.
#[derive(Clone)]
struct Bombing<S> {
    inner: S,
    exploded: Arc<AtomicUsize>,
}

impl<S: tower::Service<Call>> tower::Service<Call> for Bombing<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Bombed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let metadata = call.request().metadata();
        let bomb = metadata
            .contains_key("x-bomb")
            .then(|| Bomb(Arc::clone(&self.exploded)));
        let later = metadata.contains_key("x-later");
        Bombed {
            inner: Box::pin(self.inner.call(call)),
            _bomb: bomb,
            later,
        }
    }
}

struct Bombed<F> {
    inner: Pin<Box<F>>,
    _bomb: Option<Bomb>,
    later: bool,
}

impl<F: Future> Future for Bombed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if std::mem::take(&mut self.later) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.inner.as_mut().poll(cx)
    }
}

/// `Produce` answers one chunk; the rest is `Mirror`'s.
struct Producing;

impl Streamer for Producing {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = sockrpc_tests::mirror::Chunks;

    async fn produce(
        &self,
        _: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let one = Chunk {
            seq: 1,
            payload: bytes::Bytes::from_static(b"produced"),
        };
        Ok(Response::new(futures_util::stream::iter([Ok(one)]).boxed()))
    }
}

fn chunk(seq: u64, payload: &'static [u8]) -> Vec<u8> {
    Chunk {
        seq,
        payload: bytes::Bytes::from_static(payload),
    }
    .encode_to_vec()
}

/// A unary or server-streaming call `call_id` of `path`, with `metadata`, its one message sent.
fn call(call_id: u32, path: &[u8], metadata: &[(&[u8], &[u8])], message: &[u8]) -> Vec<u8> {
    [
        frame(1, 0, call_id, &open_body(path, metadata)),
        frame(MESSAGE, END_STREAM, call_id, message),
    ]
    .concat()
}

/// Reads until the `nth` MESSAGE for `call_id` (from 0) arrives; fails if the connection
/// closes first.
async fn until_message(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    call_id: u32,
    nth: usize,
) -> Chunk {
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the stream's echo", async {
        loop {
            let frames = server_frames(got);
            if let Some(f) = frames
                .iter()
                .filter(|f| f.kind == MESSAGE && f.call_id == call_id)
                .nth(nth)
            {
                return Chunk::decode(&f.body[..]).expect("a Chunk");
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection; got {frames:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_future_panics_as_it_is_dropped_after_answering_fails_nothing() {
    let exploded = Arc::new(AtomicUsize::new(0));
    let layer_exploded = Arc::clone(&exploded);
    let server = start_serving(move |listener, shutdown| {
        sockrpc::Server::builder()
            .layer(tower::layer::layer_fn(move |inner| Bombing {
                inner,
                exploded: Arc::clone(&layer_exploded),
            }))
            .add_service(StreamerServer::new(Producing))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    // Call 1: a stream that echoes, open throughout.
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(1, STREAM, 1, &open_body(PING_PONG_PATH, &[])),
        ],
    )
    .await;
    let produce = ProduceRequest::default().encode_to_vec();
    // Each call's future panics as it is dropped: 3 answered on its first poll, 5 later; 7
    // and 9 stream their answer, on the first poll and later.
    let cases: [(u32, &[u8], Metadata, Vec<u8>); 4] = [
        (3, UNARY_PATH, &[(BOMB, b"1")], chunk(3, b"first poll")),
        (
            5,
            UNARY_PATH,
            &[(BOMB, b"1"), (LATER, b"1")],
            chunk(5, b"later"),
        ),
        (7, PRODUCE_PATH, &[(BOMB, b"1")], produce.clone()),
        (9, PRODUCE_PATH, &[(BOMB, b"1"), (LATER, b"1")], produce),
    ];
    for (exploding, (call_id, path, metadata, message)) in cases.iter().enumerate() {
        send(&mut stream, &[&call(*call_id, path, metadata, message)]).await;
        let frames = until_end(&mut stream, &mut got, *call_id).await;
        assert_eq!(end_code(&frames, *call_id), 0, "call {call_id} answered");
        bounded("its future dropped", async {
            while exploded.load(Ordering::SeqCst) < exploding + 1 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
        .await;
        // The stream on the same connection goes on.
        let seq = u64::from(*call_id);
        send(
            &mut stream,
            &[&frame(MESSAGE, 0, 1, &chunk(seq, b"still here"))],
        )
        .await;
        let echoed = until_message(&mut stream, &mut got, 1, exploding).await;
        assert_eq!((echoed.seq, &echoed.payload[..]), (seq, &b"still here"[..]));
    }
    send(
        &mut stream,
        &[&call(11, UNARY_PATH, &[], &chunk(11, b"after"))],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 11).await;
    assert_eq!(end_code(&frames, 11), 0, "a call after them");
    drop(stream);
    server.stop().await;
}
