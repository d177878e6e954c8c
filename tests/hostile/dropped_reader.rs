//! A bidi handler that drops its request stream after one message and answers on, slowly,
//! for a long time: its client keeps sending on that stream, more than the connection window
//! (docs/FLOW-CONTROL.md), and another call on the same connection must still get through.
//! Before, the queued requests kept their place under the connection window until the handler
//! ended: one message of 17 MiB (under a 20 MiB limit) left no credit for any other stream, and
//! the client's later messages waited for stream credit no reader would give. Now what is queued
//! is freed when the reader is dropped and later messages are dropped as they arrive, both
//! credited as if read; the handler's answers and its status still reach the client. What the
//! server holds meanwhile is measured as `memory.rs` does: 128 MiB sent into a dropped reader
//! leave a server in a child process about where it was.

use crate::memory::{assert_growth, child_serving, parent_runtime, peak_of, CHILD_ENV, MIB};
use crate::support::{bounded, start_serving};
use bytes::Bytes;
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::transport::{ClientConnection, StreamReceiver, StreamSender};
use sockrpc::{MetadataMap, MethodPath, Request, Response, Status, Streaming};
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, Summary};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

static PING_PONG: MethodPath = MethodPath::from_static("/sockrpc.test.stream.Streamer/PingPong");
static GATHER: MethodPath = MethodPath::from_static("/sockrpc.test.stream.Streamer/Gather");
static COLLECT: MethodPath = MethodPath::from_static("/sockrpc.test.stream.Streamer/Collect");

/// A `Unary` call with this `seq` stops the answers of every handler answering by then.
const STOP: u64 = u64::MAX;
/// Between two answers of such a handler, and the most it sends: 5 minutes of answers at
/// least, past the child server's two-minute life and any test's end. The call ends with its
/// answers, and a message the client sends after that fails (`CANCELLED`, "the call has
/// ended"), so the answers must outlast every send on a real clock however loaded the machine
/// (1 000, 20 s, was ten times an unloaded flood). A test that fails before its stop call
/// drops its channel, and the server cancels the handler then.
const PACE: Duration = Duration::from_millis(20);
const MOST_ANSWERS: u64 = 15_000;
/// The message limit of the first test, both ends, and its one message past the window.
const LIMIT: usize = 20 << 20;
const BIG: usize = 17 << 20;
/// The generated server's own decoding limit, far under the transport's: a larger message
/// reaches the handler's `Streaming`, which refuses it.
const SERVICE_LIMIT: usize = 64 << 10;
/// `CONNECTION_WINDOW` (crates/sockrpc-protocol/src/frame/mod.rs).
const CONNECTION_WINDOW: usize = 16 << 20;

/// `PingPong` reads one message, drops its request stream and answers every [`PACE`] until a
/// `Unary` call with `seq` [`STOP`]; `Gather` reads past a refused message and answers so too;
/// `Collect` sums what it reads.
#[derive(Default)]
struct DropsReader {
    /// `Unary` calls with `seq` [`STOP`] so far.
    stops: Arc<AtomicU64>,
}

impl Streamer for DropsReader {
    sockrpc_tests::mirror_methods!(produce);

    /// Reads every chunk and sums them: the other call beside a stream that is not read.
    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let summary = sockrpc_tests::summary::summarize(request.into_inner(), |_| {}).await?;
        Ok(Response::new(summary))
    }

    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let chunk = request.into_inner();
        if chunk.seq == STOP {
            self.stops.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Response::new(chunk))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Chunks>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no first message"))?;
        drop(requests);
        Ok(Response::new(slow_answers(&self.stops, first.seq, ())))
    }

    type GatherStream = Chunks;

    /// Reads on past a refused message (over [`SERVICE_LIMIT`]) to the stream's `Ok(None)`,
    /// keeps the stream, and answers slowly.
    async fn gather(&self, request: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        let mut requests = request.into_inner();
        let mut refused = false;
        loop {
            match requests.message().await {
                Ok(Some(_)) => {}
                Err(_) => refused = true,
                Ok(None) => break,
            }
        }
        if !refused {
            return Err(Status::invalid_argument("no message was refused"));
        }
        Ok(Response::new(slow_answers(&self.stops, 1, requests)))
    }
}

/// Answers from `first` on, one every [`PACE`] until the next stop, holding `keep` meanwhile.
fn slow_answers(stops: &Arc<AtomicU64>, first: u64, keep: impl Send + 'static) -> Chunks {
    let stops = Arc::clone(stops);
    let began = stops.load(Ordering::SeqCst);
    futures_util::stream::unfold((0u64, keep), move |(n, keep)| {
        let stops = Arc::clone(&stops);
        async move {
            if n > 0 {
                if stops.load(Ordering::SeqCst) != began || n >= MOST_ANSWERS {
                    return None;
                }
                tokio::time::sleep(PACE).await;
            }
            let answer = Chunk {
                seq: first + n,
                payload: Bytes::new(),
            };
            Some((Ok(answer), (n + 1, keep)))
        }
    })
    .boxed()
}

/// The server of these tests, whose message limit is `limit`.
async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: crate::support::Shutdown,
    limit: usize,
) -> std::io::Result<()> {
    sockrpc::Server::builder()
        .max_decoding_message_size(limit)
        .add_service(
            StreamerServer::new(DropsReader::default()).max_decoding_message_size(SERVICE_LIMIT),
        )
        .serve_with_listener_and_shutdown(listener, shutdown)
        .await
}

/// A channel of one connection to `addr` that may send messages of `limit` bytes.
async fn connect(addr: SocketAddr, limit: usize) -> (sockrpc::Channel, ClientConnection) {
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", addr.port())
        .pool_size(1)
        .max_encoding_message_size(limit);
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut connections = channel.connections();
    assert_eq!(connections.len(), 1, "one connection");
    let conn = connections.pop().expect("one connection");
    (channel, conn)
}

/// Sends `message` once there is room (credit), within the bound.
async fn send(sender: &mut StreamSender, what: &str, message: &Bytes) {
    bounded(what, poll_fn(|cx| sender.poll_ready(cx)))
        .await
        .unwrap_or_else(|status| panic!("{what}: {status:?}"));
    poll_fn(|cx| Poll::Ready(sender.send(cx, message)))
        .await
        .unwrap_or_else(|status| panic!("{what}: {status:?}"));
}

fn chunk(seq: u64) -> Bytes {
    Bytes::from(
        Chunk {
            seq,
            payload: Bytes::new(),
        }
        .encode_to_vec(),
    )
}

/// Opens the `PingPong` whose handler drops its reader, and waits for its first answer (the
/// reader is dropped by then).
async fn dropped_reader(conn: &ClientConnection) -> (StreamSender, StreamReceiver) {
    let (mut sender, receiver) = conn
        .open_stream(&PING_PONG, &MetadataMap::new(), None, None)
        .expect("open PingPong");
    send(&mut sender, "PingPong's first message", &chunk(1)).await;
    first_answer(sender, receiver).await
}

/// Waits for the first answer of a stream whose handler no longer reads.
async fn first_answer(
    sender: StreamSender,
    mut receiver: StreamReceiver,
) -> (StreamSender, StreamReceiver) {
    let first = bounded(
        "PingPong's first answer",
        poll_fn(|cx| receiver.poll_message(cx)),
    )
    .await;
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    (sender, receiver)
}

/// Another call on the connection, streaming (its message counts against the connection
/// window): `Collect` of one chunk, answered whole.
async fn other_call(conn: &ClientConnection, what: &str) {
    let (mut sender, mut receiver) = conn
        .open_stream(&COLLECT, &MetadataMap::new(), None, None)
        .expect("open Collect");
    send(&mut sender, what, &chunk(7)).await;
    sender.close();
    let summary = bounded(what, poll_fn(|cx| receiver.poll_message(cx)))
        .await
        .expect("an answer")
        .unwrap_or_else(|status| panic!("{what}: {status:?}"));
    let summary = Summary::decode(summary).expect("a Summary");
    assert_eq!((summary.count, summary.seq_sum), (1, 7), "{what}");
    let end = bounded(what, poll_fn(|cx| receiver.poll_message(cx))).await;
    assert!(end.is_none(), "{what}: {end:?}");
}

/// Stops the handlers' answers, then reads the dropped reader's stream to its end: every
/// answer in order, then OK.
async fn answers_to_the_end(channel: &sockrpc::Channel, mut receiver: StreamReceiver) -> u64 {
    let mut client = StreamerClient::new(channel.clone());
    let stop = Chunk {
        seq: STOP,
        payload: Bytes::new(),
    };
    bounded("the stop call", client.unary(stop))
        .await
        .expect("stopped");
    let mut answers = 1;
    loop {
        match bounded("the answers", poll_fn(|cx| receiver.poll_message(cx))).await {
            Some(Ok(answer)) => {
                let answer = Chunk::decode(answer).expect("a Chunk");
                answers += 1;
                assert_eq!(answer.seq, answers, "answers in order");
            }
            Some(Err(status)) => panic!("the handler's stream failed: {status:?}"),
            None => return answers,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_stream_gives_its_connection_window_back() {
    let server = start_serving(|listener, shutdown| serve(listener, shutdown, LIMIT));
    let (channel, conn) = connect(server.addr, LIMIT).await;
    let (sender, receiver) = dropped_reader(&conn).await;
    past_the_window(&channel, &conn, sender, receiver).await;
    server.stop().await;
}

/// A request message refused over the generated server's limit ends the handler's
/// `Streaming` (it reads on to `Ok(None)`, and keeps it): the stream's window comes back as if
/// its reader were dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_stream_gives_its_connection_window_back() {
    let server = start_serving(|listener, shutdown| serve(listener, shutdown, LIMIT));
    let (channel, conn) = connect(server.addr, LIMIT).await;
    let (mut sender, receiver) = conn
        .open_stream(&GATHER, &MetadataMap::new(), None, None)
        .expect("open Gather");
    send(&mut sender, "Gather's first message", &chunk(1)).await;
    let over = Bytes::from(vec![0x5A; 2 * SERVICE_LIMIT]);
    send(&mut sender, "the refused message", &over).await;
    let (sender, receiver) = first_answer(sender, receiver).await;
    past_the_window(&channel, &conn, sender, receiver).await;
    server.stop().await;
}

/// Into a stream whose handler no longer reads, one message past the whole connection
/// window and then twice the window in smaller ones, with another call on the connection
/// after each; then the handler's answers to their OK end.
async fn past_the_window(
    channel: &sockrpc::Channel,
    conn: &ClientConnection,
    mut sender: StreamSender,
    receiver: StreamReceiver,
) {
    // The client counts it outstanding until the server credits it.
    let big = Bytes::from(vec![0x5A; BIG]);
    send(&mut sender, "the message past the window", &big).await;
    other_call(conn, "a call beside the dropped reader").await;
    // More than the connection window again, in window-sized messages: each must find
    // stream credit too.
    let message = Bytes::from(vec![0xA5; 60 << 10]);
    let rounds = 2 * CONNECTION_WINDOW / message.len();
    for round in 0..rounds {
        send(&mut sender, &format!("message {round} after it"), &message).await;
    }
    other_call(conn, "a call after more than a window").await;
    sender.close();
    let answers = answers_to_the_end(channel, receiver).await;
    assert!(answers >= 2, "{answers} answers");
}

/// 128 MiB into a dropped reader.
const FLOOD: usize = 128 << 20;

#[test]
fn what_a_dropped_request_stream_is_sent_is_not_kept() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| serve(listener, shutdown, 4 << 20));
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "what_a_dropped_request_stream_is_sent_is_not_kept",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        let (channel, conn) = connect(child.addr, 4 << 20).await;
        // Warm up: the other call, and a dropped reader sent a little.
        let message = Bytes::from(vec![0xA5; 32 << 10]);
        let (mut sender, receiver) = dropped_reader(&conn).await;
        for _ in 0..64 {
            send(&mut sender, "a warm-up message", &message).await;
        }
        other_call(&conn, "the warm-up call").await;
        sender.close();
        answers_to_the_end(&channel, receiver).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());
        let (mut sender, receiver) = dropped_reader(&conn).await;
        for round in 0..FLOOD / message.len() {
            send(&mut sender, &format!("message {round}"), &message).await;
        }
        other_call(&conn, "a call after the flood").await;
        let after = peak_of(child.pid());
        // Kept (credited but not freed), the flood would be 128 MiB here.
        assert_growth(
            "128 MiB into a dropped reader",
            before,
            after,
            24 * MIB,
            96 * MIB,
        );
        sender.close();
        answers_to_the_end(&channel, receiver).await;
    });
    child.finish();
}
