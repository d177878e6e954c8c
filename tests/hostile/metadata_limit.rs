//! Metadata past a side's limit fails only its own call, as a header list too large is a
//! stream error in HTTP/2 (grpc-java, grpc-go): that call fails `RESOURCE_EXHAUSTED`, while a
//! stream and unary calls on the same connection go on. Each way, with generated clients on a
//! channel of one connection: a client configured for more metadata than its server takes, and
//! a server whose handler answers with more leading or trailing metadata than its client takes.
//! Until session 35 either was a protocol error that closed the connection, failing every call
//! on it. Since session 36 each side knows the other's limit from its SETTINGS once the first
//! call has come back: the client refuses such a call unsent, and the server answers `INTERNAL`
//! (as grpc-go does) instead of sending metadata its client would refuse.

use crate::support::{bounded, start_serving, Running};
use bytes::Bytes;
use futures_util::StreamExt;
use sockrpc::{Code, Limits, MetadataMap, Request, Response, Status, Streaming};
use sockrpc_tests::mirror::{Chunks, Mirror};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The default metadata limit.
const LIMIT: usize = 16 * 1024;

/// `seq` of a unary call whose answer carries metadata past [`LIMIT`] in its headers.
const BIG_HEADERS: u64 = 1;
/// `seq` of a unary call whose answer carries metadata past [`LIMIT`] in its trailers.
const BIG_TRAILERS: u64 = 2;

/// One `big-bin` entry that counts `size` against a limit (its bytes and 32; the block's
/// count is not counted).
fn block_of(size: usize) -> MetadataMap {
    let value = size - 1 - "big-bin".len() - 2 - 32;
    let mut map = MetadataMap::new();
    map.insert_bin("big-bin", Bytes::from(vec![7u8; value]).into())
        .expect("valid");
    map
}

/// Echoes like `Mirror`, but answers [`BIG_HEADERS`] and [`BIG_TRAILERS`] with metadata past the
/// default limit, and `Produce` with leading metadata past it (then streams slowly until
/// cancelled, setting `dropped` when its stream is dropped); `Gather`'s stream fails `ABORTED`
/// with trailers past it.
#[derive(Default, Clone)]
struct Heavy {
    dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped: the server dropped the answer stream (the call was cancelled).
struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Streamer for Heavy {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let chunk = request.into_inner();
        let big = block_of(LIMIT + 1);
        Ok(match chunk.seq {
            BIG_HEADERS => Response::from_parts(big, chunk, MetadataMap::new()),
            BIG_TRAILERS => Response::from_parts(MetadataMap::new(), chunk, big),
            _ => Response::new(chunk),
        })
    }

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let guard = OnDrop(Arc::clone(&self.dropped));
        // Bounded: at most 1,000 chunks, 10 ms apart.
        let chunks = futures_util::stream::iter(0..1000u64).then(move |seq| {
            let _held = &guard;
            async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(Chunk {
                    seq,
                    payload: Bytes::new(),
                })
            }
        });
        let mut response = Response::new(chunks.boxed());
        *response.metadata_mut() = block_of(LIMIT + 1);
        Ok(response)
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not here"))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Chunks>, Status> {
        // Echoes, as the shared `Mirror` does.
        Mirror.ping_pong(request).await
    }

    type GatherStream = Chunks;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        // A stream that fails at once, its status' trailers past the default limit.
        let mut status = Status::aborted("gave up");
        *status.metadata_mut() = block_of(LIMIT + 1);
        Ok(Response::new(
            futures_util::stream::iter([Err(status)]).boxed(),
        ))
    }
}

/// Serves `service` with `limits` on 127.0.0.1.
fn start(service: Heavy, limits: Limits) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .limits(limits)
            .add_service(StreamerServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// A generated client on a channel of one connection, with `limits`.
async fn client(server: &Running, limits: Limits) -> StreamerClient<sockrpc::Channel> {
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", server.addr.port())
        .pool_size(1)
        .limits(limits);
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    StreamerClient::new(channel)
}

/// An open bidirectional stream: what to send on it, and its answers.
struct Pinging {
    tx: mpsc::Sender<Chunk>,
    answers: Streaming<Chunk>,
}

impl Pinging {
    async fn open(client: &mut StreamerClient<sockrpc::Channel>) -> Pinging {
        let (tx, rx) = mpsc::channel(4);
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            );
        let answers = bounded("PingPong", client.ping_pong(requests))
            .await
            .expect("the stream opens")
            .into_inner();
        Pinging { tx, answers }
    }

    /// Sends `seq` and checks it comes back.
    async fn ping(&mut self, seq: u64) {
        let chunk = Chunk {
            seq,
            payload: Bytes::from_static(b"ping"),
        };
        self.tx.send(chunk).await.expect("the stream reads");
        let answer = bounded("the answer", self.answers.message()).await;
        let answer = answer
            .unwrap_or_else(|status| panic!("the stream failed: {status:?}"))
            .expect("a message");
        assert_eq!(answer.seq, seq);
    }

    /// Half-closes and checks the stream ends OK.
    async fn finish(mut self) {
        drop(self.tx);
        let end = bounded("the stream's end", self.answers.message()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
}

/// Checks `result` failed `RESOURCE_EXHAUSTED` with `why` in its message, not as a call the
/// channel may send again; returns the status.
fn exhausted<T: std::fmt::Debug>(what: &str, result: Result<T, Status>, why: &str) -> Status {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
    assert!(
        status.message().contains(why),
        "{what}: want {why:?}: {status:?}"
    );
    assert!(!status.is_not_processed(), "{what}: {status:?}");
    status
}

/// Checks `result` failed `INTERNAL` with `why` in its message: the server would not send
/// response metadata past the limit its client announced.
fn refused_by_server<T: std::fmt::Debug>(what: &str, result: Result<T, Status>, why: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::Internal, "{what}: {status:?}");
    assert!(
        status.message().contains(why),
        "{what}: want {why:?}: {status:?}"
    );
}

/// A unary call with `seq`, on `client`.
async fn unary(
    client: &mut StreamerClient<sockrpc::Channel>,
    seq: u64,
    metadata: MetadataMap,
) -> Result<Chunk, Status> {
    let mut request = Request::new(Chunk {
        seq,
        payload: Bytes::from_static(b"unary"),
    });
    *request.metadata_mut() = metadata;
    bounded("the unary call", client.unary(request))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metadata_past_the_servers_limit_fails_only_its_call() {
    let server = start(Heavy::default(), Limits::default());
    let mut client = client(&server, Limits::default().with_max_metadata_size(4 * LIMIT)).await;
    let mut stream = Pinging::open(&mut client).await;
    stream.ping(10).await;
    let why = format!(
        "request metadata of {} bytes exceeds the limit of {LIMIT}",
        LIMIT + 1
    );
    // Refused unsent: the server announced its limit in SETTINGS, read before the stream's
    // first answer.
    let status = exhausted(
        "a unary call",
        unary(&mut client, 20, block_of(LIMIT + 1)).await,
        &why,
    );
    assert!(status.is_refused_before_sending(), "{status:?}");
    let mut request = Request::new(futures_util::stream::iter(vec![Chunk::default(); 3]));
    *request.metadata_mut() = block_of(LIMIT + 1);
    let opened = bounded("the refused stream", client.ping_pong(request)).await;
    let status = exhausted("a stream", opened.map(|r| r.into_inner()), &why);
    assert!(status.is_refused_before_sending(), "{status:?}");
    // The same connection goes on: the stream opened before, and a call after.
    stream.ping(11).await;
    assert_eq!(
        unary(&mut client, 21, MetadataMap::new())
            .await
            .expect("answered")
            .seq,
        21
    );
    stream.finish().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_metadata_past_the_clients_limit_fails_only_its_call() {
    let service = Heavy::default();
    let dropped = Arc::clone(&service.dropped);
    let server = start(service, Limits::default().with_max_metadata_size(4 * LIMIT));
    let mut client = client(&server, Limits::default()).await;
    let mut stream = Pinging::open(&mut client).await;
    stream.ping(10).await;
    let size = LIMIT + 1;
    let announced = |what: &str| {
        format!("response {what} of {size} bytes exceed the limit of {LIMIT} the client announced")
    };
    refused_by_server(
        "headers past the limit",
        unary(&mut client, BIG_HEADERS, MetadataMap::new()).await,
        &announced("headers"),
    );
    refused_by_server(
        "trailers past the limit",
        unary(&mut client, BIG_TRAILERS, MetadataMap::new()).await,
        &announced("trailers"),
    );
    // A server stream whose headers are past the limit fails, its answer stream dropped on
    // the server rather than left streaming to a call that failed.
    let produced = bounded("Produce", client.produce(ProduceRequest::default())).await;
    refused_by_server(
        "a stream's headers past the limit",
        produced.map(|r| r.into_inner()),
        &announced("headers"),
    );
    bounded("the server stream's cancel", async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The same connection goes on.
    stream.ping(11).await;
    assert_eq!(
        unary(&mut client, 21, MetadataMap::new())
            .await
            .expect("answered")
            .seq,
        21
    );
    stream.finish().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streams_error_keeps_its_code_when_its_trailers_are_past_the_clients_limit() {
    // As a unary call's error (`fit_status`): the trailers the client announced it would refuse
    // are dropped, the code and the handler's message stand, and the message says what was
    // dropped. Before, a stream's error went out whole and the client failed it
    // RESOURCE_EXHAUSTED ("response trailers of ... exceed the limit").
    let server = start(
        Heavy::default(),
        Limits::default().with_max_metadata_size(4 * LIMIT),
    );
    let mut client = client(&server, Limits::default()).await;
    // A first call: each side's SETTINGS has crossed.
    let first = unary(&mut client, 20, MetadataMap::new()).await;
    assert_eq!(first.expect("answered").seq, 20);
    let requests = futures_util::stream::iter(Vec::<Chunk>::new());
    let mut answers = bounded("Gather", client.gather(requests))
        .await
        .expect("opened")
        .into_inner();
    let status = bounded("the stream's end", answers.message())
        .await
        .expect_err("the stream fails");
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("gave up [trailing metadata dropped: "),
        "{status:?}"
    );
    assert!(status.metadata().is_empty(), "{status:?}");
    server.stop().await;
}
