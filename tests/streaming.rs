//! Issue 5: streaming calls end to end over loopback TCP.
//!
//! - backpressure: a slow reader bounds how far the server's producer runs ahead, and a unary
//!   call on the same connection completes while the stream is stalled (must show 2);
//! - cancellation: dropping the client's stream cancels the server's side, and the connection
//!   carries later calls (must show 3);
//! - bidi ping-pong: 10,000 round trips on one stream, one message in flight, payloads matched
//!   (must show 4);
//! - half-close and trailers, a deadline ending both sides, a server error mid-stream.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use prost::Message;
use sockrpc::protocol::frame::STREAM_WINDOW;
use sockrpc::transport::ClientConnection;
use sockrpc::{
    Channel, Code, Endpoint, MetadataMap, MethodPath, Request, Response, Server, Status, Streaming,
};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bound on every single step of these tests.
const STEP: Duration = Duration::from_secs(10);

/// Bound on a whole test.
const WHOLE: Duration = Duration::from_secs(120);

/// What the server did for one call, found by the request's `x-token` metadata.
#[derive(Debug, Default)]
struct Probe {
    /// Response messages the server's stream yielded (counted in the stream's poll).
    produced: AtomicUsize,
    /// Request messages the handler read.
    received: AtomicUsize,
    /// The stream (or handler) ran to its end.
    finished: AtomicBool,
    /// The stream (or handler) was dropped, finished or not.
    dropped: AtomicBool,
}

impl Probe {
    fn produced(&self) -> usize {
        self.produced.load(Ordering::SeqCst)
    }

    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Dropped before reaching its end: the server side observed cancellation.
    fn cancelled(&self) -> bool {
        self.dropped.load(Ordering::SeqCst) && !self.finished()
    }
}

/// Held by a server stream or handler; flags the probe when dropped.
struct DropFlag(Arc<Probe>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.dropped.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
struct TestStreamer {
    probes: Arc<Mutex<HashMap<String, Arc<Probe>>>>,
}

impl TestStreamer {
    fn probe(&self, token: &str) -> Arc<Probe> {
        let mut probes = self.probes.lock().expect("lock");
        Arc::clone(probes.entry(token.to_owned()).or_default())
    }

    fn probe_for<T>(&self, request: &Request<T>) -> Arc<Probe> {
        self.probe(request.metadata().get("x-token").unwrap_or(""))
    }
}

type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for TestStreamer {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(Chunk {
            seq: request.into_inner().seq,
            payload: Bytes::new(),
        }))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let probe = self.probe_for(&request);
        let ProduceRequest {
            count,
            size,
            delay_ms,
            fail_after,
            fail_code,
            fail_message,
        } = request.into_inner();
        let payload = Bytes::from(vec![0xA5; size as usize]);
        let failure = Status::new(Code::from_u32(fail_code as u32), fail_message);
        // `None` once failed: the stream ends after its error item.
        let state = (Some(0u64), DropFlag(probe));
        let responses = stream::unfold(state, move |(seq, guard)| {
            let payload = payload.clone();
            let failure = failure.clone();
            async move {
                let seq = seq?;
                if fail_after == Some(seq) {
                    return Some((Err(failure), (None, guard)));
                }
                if seq >= count {
                    guard.0.finished.store(true, Ordering::SeqCst);
                    return None;
                }
                if delay_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                }
                guard.0.produced.fetch_add(1, Ordering::SeqCst);
                Some((Ok(Chunk { seq, payload }), (Some(seq + 1), guard)))
            }
        });
        let mut response = Response::new(responses.boxed());
        response
            .metadata_mut()
            .insert("x-head", "produce")
            .map_err(|e| Status::internal(e.to_string()))?;
        response
            .trailers_mut()
            .insert("x-produced", &count.to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let probe = self.probe_for(&request);
        let _guard = DropFlag(Arc::clone(&probe));
        let mut chunks = request.into_inner();
        let mut summary = Summary::default();
        while let Some(chunk) = chunks.message().await? {
            probe.received.fetch_add(1, Ordering::SeqCst);
            summary.count += 1;
            summary.bytes += chunk.payload.len() as u64;
            summary.seq_sum += chunk.seq;
        }
        probe.finished.store(true, Ordering::SeqCst);
        let mut response = Response::new(summary);
        response
            .trailers_mut()
            .insert("x-collected", &summary.count.to_string())
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        let probe = self.probe_for(&request);
        let state = (request.into_inner(), DropFlag(probe));
        let responses = stream::unfold(state, |(mut requests, guard)| async move {
            match requests.message().await {
                Ok(Some(chunk)) => {
                    guard.0.received.fetch_add(1, Ordering::SeqCst);
                    guard.0.produced.fetch_add(1, Ordering::SeqCst);
                    let mut payload = chunk.payload.to_vec();
                    payload.reverse();
                    let reply = Chunk {
                        seq: chunk.seq,
                        payload: payload.into(),
                    };
                    Some((Ok(reply), (requests, guard)))
                }
                Ok(None) => {
                    guard.0.finished.store(true, Ordering::SeqCst);
                    None
                }
                Err(status) => Some((Err(status), (requests, guard))),
            }
        });
        Ok(Response::new(responses.boxed()))
    }

    type GatherStream = ChunkStream;

    async fn gather(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        let probe = self.probe_for(&request);
        let mut requests = request.into_inner();
        let guard = DropFlag(probe);
        // Nothing is answered before the client's half-close: read all, then stream back.
        let responses = stream::once(async move {
            let mut all = Vec::new();
            loop {
                match requests.message().await {
                    Ok(Some(chunk)) => {
                        guard.0.received.fetch_add(1, Ordering::SeqCst);
                        all.push(Ok(chunk));
                    }
                    Ok(None) => break,
                    Err(status) => return vec![Err(status)],
                }
            }
            guard.0.finished.store(true, Ordering::SeqCst);
            all.reverse();
            all
        })
        .flat_map(stream::iter);
        let mut response = Response::new(responses.boxed());
        response
            .metadata_mut()
            .insert("x-head", "gather")
            .map_err(|e| Status::internal(e.to_string()))?;
        response
            .trailers_mut()
            .insert("x-gather", "done")
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(response)
    }
}

/// A running server on `127.0.0.1:0`.
struct Running {
    addr: SocketAddr,
    streamer: TestStreamer,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn start() -> Running {
        let streamer = TestStreamer::default();
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .add_service(StreamerServer::new(streamer.clone()))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        Running {
            addr,
            streamer,
            stop: Some(stop),
            task,
        }
    }

    /// A channel of exactly one connection, so that every call shares it.
    async fn channel(&self) -> Channel {
        let endpoint = Endpoint::new("127.0.0.1", self.addr.port()).pool_size(1);
        let channel = bounded("connect", Channel::connect(endpoint))
            .await
            .expect("connect");
        assert_eq!(channel.connections().len(), 1);
        channel
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(STEP, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
    }
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// Waits (bounded) until `condition` holds.
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not observed within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The one connection of a single-connection channel.
fn only_connection(channel: &Channel) -> ClientConnection {
    let mut connections = channel.connections();
    assert_eq!(connections.len(), 1, "the channel has one connection");
    connections.pop().expect("one connection")
}

fn tagged<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-token", token)
        .expect("valid metadata");
    request
}

/// A request stream fed one message at a time from a channel; ends when the sender is dropped.
fn fed_by(rx: mpsc::Receiver<Chunk>) -> impl futures_util::Stream<Item = Chunk> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
}

/// The next message of a stream that must have one.
async fn next<T>(what: &str, responses: &mut Streaming<T>) -> T {
    bounded(what, responses.message())
        .await
        .unwrap_or_else(|status| panic!("{what}: failed with {status:?}"))
        .unwrap_or_else(|| panic!("{what}: the stream ended early"))
}

/// A unary call on `channel` that must complete within `limit`, on its one connection.
async fn unary_promptly(channel: &Channel, seq: u64, limit: Duration) {
    let conn = only_connection(channel);
    let before = conn.calls_started();
    let mut client = StreamerClient::new(channel.clone());
    let reply = tokio::time::timeout(
        limit,
        client.unary(Chunk {
            seq,
            payload: Bytes::new(),
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("a unary call on the same connection took over {limit:?}"))
    .expect("the unary call succeeds");
    assert_eq!(reply.into_inner().seq, seq);
    let after = only_connection(channel);
    assert_eq!(
        after.peer_addr(),
        conn.peer_addr(),
        "still the same connection"
    );
    assert_eq!(
        after.calls_started(),
        before + 1,
        "the unary call went over the same connection"
    );
}

/// Messages of `size` payload bytes the window lets be outstanding (sent and not yet credited
/// back): the sender may send while less than `STREAM_WINDOW` bytes are outstanding.
fn window_messages(size: usize) -> usize {
    // seq 0 encodes smallest, so it gives the largest count.
    let smallest = Chunk {
        seq: 0,
        payload: Bytes::from(vec![0; size]),
    }
    .encoded_len();
    STREAM_WINDOW.div_ceil(smallest)
}

const BACKPRESSURE_COUNT: u64 = 100_000;
const BACKPRESSURE_SIZE: u32 = 1024;

/// How far the producer may run ahead of the consumer. Credit goes back only for messages the
/// client's application has taken, so whatever sits in socket buffers, in the client's queue or
/// in the server's outbox is still counted against the window: the bound is the window itself
/// (64 messages of 1 KiB) plus a little slack, whatever the socket buffer sizes.
fn backpressure_bound() -> usize {
    window_messages(BACKPRESSURE_SIZE as usize) + 2
}

/// Must show 2: 100,000 messages of 1 KiB to a slow reader. What the server's stream produced
/// beyond what the client consumed stays within the window at every point (measured in
/// messages, not time); while the stream is stalled, a unary call on the same connection
/// completes within 2 s; then the stream is drained to its clean end, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_bounds_the_producer_and_other_calls_proceed() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("backpressure");
    let bound = backpressure_bound();
    tokio::time::timeout(WHOLE, async {
        let request = ProduceRequest {
            count: BACKPRESSURE_COUNT,
            size: BACKPRESSURE_SIZE,
            ..Default::default()
        };
        let mut responses = bounded(
            "open Produce",
            client.produce(tagged(request, "backpressure")),
        )
        .await
        .expect("Produce opens")
        .into_inner();
        let mut consumed = 0usize;
        let mut most_ahead = 0usize;
        for round in 0..5 {
            for _ in 0..100 {
                let chunk = next("slow read", &mut responses).await;
                assert_eq!(chunk.seq, consumed as u64, "in order");
                assert_eq!(chunk.payload.len(), BACKPRESSURE_SIZE as usize);
                consumed += 1;
            }
            // The reader stalls: the producer must stop once the window is used up.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ahead = probe.produced() - consumed;
            most_ahead = most_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "round {round}: produced {} but consumed {consumed}: {ahead} ahead, bound {bound}",
                probe.produced()
            );
            if round == 0 || round == 4 {
                // One stalled stream does not hold up other calls on its connection.
                unary_promptly(&channel, 1000 + round, Duration::from_secs(2)).await;
                let ahead = probe.produced() - consumed;
                assert!(ahead <= bound, "after the unary call: {ahead} ahead");
            }
        }
        // Drain the rest at full speed; the bound holds at every message.
        let remaining = BACKPRESSURE_COUNT as usize - consumed;
        for _ in 0..remaining {
            let chunk = next("drain", &mut responses).await;
            assert_eq!(chunk.seq, consumed as u64, "in order");
            consumed += 1;
            let ahead = probe.produced() - consumed;
            most_ahead = most_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "draining at {consumed}: {ahead} ahead, bound {bound}"
            );
        }
        let end = bounded("end", responses.message())
            .await
            .expect("clean end");
        assert!(end.is_none(), "exactly {BACKPRESSURE_COUNT} messages");
        assert_eq!(probe.produced(), BACKPRESSURE_COUNT as usize);
        assert!(probe.finished());
        let trailers = responses.trailers().expect("trailers after a clean end");
        assert_eq!(
            trailers.get("x-produced"),
            Some(BACKPRESSURE_COUNT.to_string().as_str())
        );
        eprintln!("producer ran at most {most_ahead} messages ahead (bound {bound})");
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Must show 2, the client's side: on the transport's own stream (where the queue is visible),
/// what the client has received and not consumed stays within the window while it reads
/// slowly. Dropping the receiver then cancels the server's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_queue_stays_within_the_window() {
    let server = Running::start();
    let channel = server.channel().await;
    let probe = server.streamer.probe("queue");
    let conn = only_connection(&channel);
    tokio::time::timeout(WHOLE, async {
        let request = ProduceRequest {
            count: BACKPRESSURE_COUNT,
            size: BACKPRESSURE_SIZE,
            ..Default::default()
        };
        let mut metadata = MetadataMap::new();
        metadata.insert("x-token", "queue").expect("valid");
        let (_sender, mut receiver) = conn
            .open_stream(
                &MethodPath::from_static("/sockrpc.test.stream.Streamer/Produce"),
                &metadata,
                None,
                Some(Bytes::from(request.encode_to_vec())),
            )
            .expect("open the stream");
        let head = bounded(
            "response head",
            std::future::poll_fn(|cx| receiver.poll_headers(cx)),
        )
        .await
        .expect("head");
        assert_eq!(head.get("x-head"), Some("produce"));
        let largest = Chunk {
            seq: BACKPRESSURE_COUNT,
            payload: Bytes::from(vec![0; BACKPRESSURE_SIZE as usize]),
        }
        .encoded_len();
        let bound = backpressure_bound();
        let mut consumed = 0usize;
        let mut most_queued = 0usize;
        for round in 0..5 {
            for _ in 0..100 {
                let message = bounded(
                    "slow read",
                    std::future::poll_fn(|cx| receiver.poll_message(cx)),
                )
                .await
                .expect("a message")
                .expect("not a failure");
                let chunk = Chunk::decode(message).expect("decodes");
                assert_eq!(chunk.seq, consumed as u64);
                consumed += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (messages, bytes) = receiver.queued();
            assert!(
                bytes < STREAM_WINDOW + largest,
                "round {round}: {bytes} bytes ({messages} messages) queued on the client"
            );
            assert!(messages <= bound, "round {round}: {messages} queued");
            most_queued = most_queued.max(bytes);
            let ahead = probe.produced() - consumed;
            assert!(ahead <= bound, "round {round}: producer {ahead} ahead");
        }
        eprintln!("at most {most_queued} bytes queued on the client (window {STREAM_WINDOW})");
        drop(receiver);
        wait_until(
            "the server's stream is dropped after the receiver is",
            || probe.cancelled(),
        )
        .await;
        assert!(probe.produced() < BACKPRESSURE_COUNT as usize);
        unary_promptly(&channel, 7, STEP).await;
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Must show 3: dropping a client's stream midway — bidi, then server streaming — cancels the
/// server's side (its stream is dropped before its end), stops the client's request stream,
/// and the same connection carries later calls, streaming and unary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_client_stream_cancels_the_server_and_the_connection_lives_on() {
    let server = Running::start();
    let channel = server.channel().await;
    let conn = only_connection(&channel);
    let mut client = StreamerClient::new(channel.clone());
    tokio::time::timeout(WHOLE, async {
        // Bidi: ten round trips, then the client drops its response stream.
        let probe = server.streamer.probe("cancel-bidi");
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let mut responses = bounded(
            "open PingPong",
            client.ping_pong(tagged(fed_by(rx), "cancel-bidi")),
        )
        .await
        .expect("PingPong opens")
        .into_inner();
        for seq in 0..10 {
            let ping = Chunk {
                seq,
                payload: Bytes::from(vec![seq as u8, 1, 2]),
            };
            bounded("send", tx.send(ping))
                .await
                .expect("request stream open");
            assert_eq!(next("pong", &mut responses).await.seq, seq);
        }
        drop(responses);
        wait_until("the server's bidi stream is dropped", || probe.cancelled()).await;
        assert_eq!(probe.received(), 10);
        // The client stops pulling its request stream too: the receiver half is dropped.
        bounded("the request stream is dropped", tx.closed()).await;

        // Server streaming: a long stream, dropped after ten messages.
        let probe = server.streamer.probe("cancel-server");
        let request = ProduceRequest {
            count: 1_000_000,
            size: 16,
            ..Default::default()
        };
        let mut responses = bounded(
            "open Produce",
            client.produce(tagged(request, "cancel-server")),
        )
        .await
        .expect("Produce opens")
        .into_inner();
        for seq in 0..10 {
            assert_eq!(next("message", &mut responses).await.seq, seq);
        }
        drop(responses);
        wait_until("the server's response stream is dropped", || {
            probe.cancelled()
        })
        .await;
        let produced = probe.produced();
        assert!(produced < 1_000_000, "stopped early: {produced}");
        // Stopped for good: nothing more is produced after the drop was observed.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(probe.produced(), produced);

        // The same connection carries later calls.
        wait_until("the client forgets the cancelled calls", || {
            conn.in_flight() == 0
        })
        .await;
        unary_promptly(&channel, 99, STEP).await;
        let request = ProduceRequest {
            count: 100,
            size: 8,
            ..Default::default()
        };
        let mut responses = bounded("open Produce again", client.produce(request))
            .await
            .expect("Produce opens")
            .into_inner();
        for seq in 0..100 {
            assert_eq!(next("message", &mut responses).await.seq, seq);
        }
        assert!(bounded("end", responses.message())
            .await
            .expect("clean end")
            .is_none());
        assert_eq!(
            only_connection(&channel).peer_addr(),
            conn.peer_addr(),
            "no reconnect happened"
        );
        assert!(!conn.is_closed());
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Must show 4: 10,000 round trips on one bidi stream with one message in flight: each request
/// is sent only after the previous response arrived, carries a distinct payload, and its
/// response (same `seq`, payload reversed) is matched to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_ping_pong_ten_thousand_round_trips() {
    const ROUNDS: u64 = 10_000;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("ping-pong");
    tokio::time::timeout(WHOLE, async {
        let (tx, rx) = mpsc::channel::<Chunk>(1);
        let mut responses = bounded(
            "open PingPong",
            client.ping_pong(tagged(fed_by(rx), "ping-pong")),
        )
        .await
        .expect("PingPong opens")
        .into_inner();
        for seq in 0..ROUNDS {
            let payload = format!(
                "ping #{seq}: {:016x}",
                seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            );
            let ping = Chunk {
                seq,
                payload: Bytes::from(payload.clone()),
            };
            bounded("send", tx.send(ping))
                .await
                .expect("request stream open");
            let pong = next("pong", &mut responses).await;
            assert_eq!(pong.seq, seq, "response matched to its request");
            let mut expected = payload.into_bytes();
            expected.reverse();
            assert_eq!(pong.payload, expected, "payload of round {seq}");
        }
        // Half-close: the server's stream ends after the last answer, with trailers.
        drop(tx);
        let end = bounded("end", responses.message())
            .await
            .expect("clean end");
        assert!(end.is_none(), "exactly one response per request");
        assert!(responses.trailers().is_some(), "trailers end the call");
        wait_until("the server saw the end", || probe.finished()).await;
        assert_eq!(probe.received(), ROUNDS as usize);
        assert_eq!(probe.produced(), ROUNDS as usize);
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Half-close, client streaming: the client streams N messages and ends; the server reads all
/// of them and answers after the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_half_close_then_answer() {
    const N: u64 = 1000;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("collect");
    let chunks = stream::iter((0..N).map(|seq| Chunk {
        seq,
        payload: Bytes::from(vec![1; (seq % 300) as usize]),
    }));
    let response = bounded("Collect", client.collect(tagged(chunks, "collect")))
        .await
        .expect("Collect succeeds");
    let summary = response.get_ref();
    assert_eq!(summary.count, N);
    assert_eq!(summary.seq_sum, N * (N - 1) / 2);
    assert_eq!(summary.bytes, (0..N).map(|seq| seq % 300).sum::<u64>());
    assert_eq!(probe.received(), N as usize);
    assert!(probe.finished());
    server.stop().await;
}

/// Trailers end every call, client streaming included: the summary's response carries the
/// trailing metadata the server set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stream_response_carries_trailers() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let chunks = stream::iter((0..3).map(|seq| Chunk {
        seq,
        payload: Bytes::new(),
    }));
    let response = bounded("Collect", client.collect(chunks))
        .await
        .expect("Collect succeeds");
    assert_eq!(response.get_ref().count, 3);
    assert_eq!(
        response.trailers().get("x-collected"),
        Some("3"),
        "the client-streaming response lacks the server's trailers: {:?}",
        response.trailers()
    );
    server.stop().await;
}

/// Half-close, bidi: the client streams N messages, nothing comes back until it ends its side;
/// it keeps reading after the end and gets all N back (reversed), then trailers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bidi_half_close_keeps_reading() {
    const N: u64 = 500;
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("gather");
    let (tx, rx) = mpsc::channel::<Chunk>(16);
    let response = bounded("open Gather", client.gather(tagged(fed_by(rx), "gather")))
        .await
        .expect("Gather opens");
    assert_eq!(response.metadata().get("x-head"), Some("gather"));
    let mut responses = response.into_inner();
    for seq in 0..N {
        let chunk = Chunk {
            seq,
            payload: Bytes::from(seq.to_le_bytes().to_vec()),
        };
        bounded("send", tx.send(chunk))
            .await
            .expect("request stream open");
    }
    wait_until("the server read every request", || {
        probe.received() == N as usize
    })
    .await;
    // Not ended yet: the server answers nothing before the half-close.
    assert!(!probe.finished());
    let early = tokio::time::timeout(Duration::from_millis(50), responses.message()).await;
    assert!(early.is_err(), "an answer before the half-close: {early:?}");
    assert!(responses.trailers().is_none(), "no trailers before the end");
    drop(tx);
    for seq in (0..N).rev() {
        let chunk = next("gathered", &mut responses).await;
        assert_eq!(chunk.seq, seq);
        assert_eq!(chunk.payload, seq.to_le_bytes().to_vec());
    }
    assert!(bounded("end", responses.message())
        .await
        .expect("clean end")
        .is_none());
    let trailers = responses.trailers().expect("trailers after a clean end");
    assert_eq!(trailers.get("x-gather"), Some("done"));
    assert!(probe.finished());
    server.stop().await;
}

/// Trailers end a server stream: `Streaming::trailers()` is empty until the end, then carries
/// the server's trailing metadata; the head carries its leading metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_ends_with_trailers() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let request = ProduceRequest {
        count: 10,
        size: 3,
        ..Default::default()
    };
    let response = bounded("open Produce", client.produce(request))
        .await
        .expect("Produce opens");
    assert_eq!(response.metadata().get("x-head"), Some("produce"));
    let mut responses = response.into_inner();
    for seq in 0..10 {
        assert_eq!(next("message", &mut responses).await.seq, seq);
        assert!(responses.trailers().is_none(), "no trailers before the end");
    }
    assert!(bounded("end", responses.message())
        .await
        .expect("clean end")
        .is_none());
    let trailers = responses.trailers().expect("trailers after a clean end");
    assert_eq!(trailers.get("x-produced"), Some("10"));
    server.stop().await;
}

/// A deadline ends both sides of a server stream slower than it: the client gets
/// `DeadlineExceeded`, the server's stream is dropped before its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_ends_a_server_stream_on_both_sides() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("deadline-server");
    let request = ProduceRequest {
        count: 1000,
        size: 8,
        delay_ms: 100,
        ..Default::default()
    };
    let mut request = tagged(request, "deadline-server");
    request.set_timeout(Duration::from_millis(350));
    let mut responses = bounded("open Produce", client.produce(request))
        .await
        .expect("Produce opens")
        .into_inner();
    let mut received = 0u64;
    let status = loop {
        match bounded("message", responses.message()).await {
            Ok(Some(chunk)) => {
                assert_eq!(chunk.seq, received);
                received += 1;
                assert!(received < 1000, "the deadline never hit");
            }
            Ok(None) => panic!("the stream ended cleanly despite its deadline"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(bounded("after", responses.message())
        .await
        .expect("ended")
        .is_none());
    wait_until("the server's stream is dropped at the deadline", || {
        probe.cancelled()
    })
    .await;
    unary_promptly(&channel, 5, STEP).await;
    server.stop().await;
}

/// A deadline ends both sides of a client stream that never ends: the client gets
/// `DeadlineExceeded`, the server's handler is dropped, the client's request stream too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_ends_a_client_stream_on_both_sides() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("deadline-client");
    let (tx, rx) = mpsc::channel::<Chunk>(1);
    let mut request = tagged(fed_by(rx), "deadline-client");
    request.set_timeout(Duration::from_millis(300));
    let call = tokio::spawn(async move { client.collect(request).await });
    for seq in 0..3 {
        let chunk = Chunk {
            seq,
            payload: Bytes::new(),
        };
        bounded("send", tx.send(chunk))
            .await
            .expect("request stream open");
    }
    // ...and then nothing more, never ending.
    let status = bounded("Collect", call)
        .await
        .expect("no panic")
        .expect_err("the deadline ends the call");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    wait_until("the server's handler is dropped at the deadline", || {
        probe.cancelled()
    })
    .await;
    // All three, unless the deadline beat the server to some of them.
    assert!(probe.received() <= 3);
    bounded("the request stream is dropped", tx.closed()).await;
    unary_promptly(&channel, 6, STEP).await;
    server.stop().await;
}

/// A server error mid-stream ends the client's stream with that status, code and message,
/// after the messages sent before it; an error before the first message likewise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_mid_stream_ends_the_client_stream_with_its_status() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let message = "stopped at 5: disk \"full\"\t🦀";
    for fail_after in [5u64, 0] {
        let request = ProduceRequest {
            count: 100,
            size: 4,
            fail_after: Some(fail_after),
            fail_code: Code::FailedPrecondition.as_u32() as i32,
            fail_message: message.to_owned(),
            ..Default::default()
        };
        let mut responses = bounded("open Produce", client.produce(request))
            .await
            .expect("Produce opens")
            .into_inner();
        for seq in 0..fail_after {
            assert_eq!(
                next("message before the error", &mut responses).await.seq,
                seq
            );
        }
        let status = bounded("error", responses.message())
            .await
            .expect_err("the stream fails where the server failed it");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(status.message(), message);
        assert!(bounded("after", responses.message())
            .await
            .expect("ended")
            .is_none());
        assert!(
            responses.trailers().is_none(),
            "a failed call has no clean end"
        );
    }
    unary_promptly(&channel, 8, STEP).await;
    server.stop().await;
}
