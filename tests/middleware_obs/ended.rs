//! A call the server's transport ends itself — its handler or its answer stream panicked
//! (`INTERNAL`), its deadline passed (`DEADLINE_EXCEEDED`) — is recorded in the server's span
//! and metrics with the code the client gets, as grpc-go's stats handlers see it: not as
//! `CANCELLED`, which is what the layers saw when the transport dropped the call's future or
//! body and which dashboards and error sampling count as the client's doing. The span ends when
//! the call ended, not at its last poll.

use super::services::{client_stack, spawn_router, Chunks, Leaf, Stack};
use super::{finished_trace, int, telemetry, text, trace_id_of};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use sockrpc::{Channel, Code, ProstCodec, Request, Response, Server, Status, Streaming};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::{net::SocketAddr, time::Duration};

/// The name the service is mounted under: its metrics are this test's alone.
const SERVICE: &str = "sockrpc.test.Ends";

/// The server's own deadline for every call (`Server::builder().timeout`): no client deadline
/// races it, so the server is the side that ends a slow call.
const SERVER_TIMEOUT: Duration = Duration::from_millis(300);

/// `Unary`: seq 1 panics, seq 2 outlasts the server's deadline. `Produce`: seq 1 sends one
/// chunk and then panics, seq 2 sends one chunk every 100 ms for longer than the deadline.
struct Ends;

type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for Ends {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let chunk = request.into_inner();
        match chunk.seq {
            1 => panic!("this handler panics"),
            2 => tokio::time::sleep(Duration::from_secs(10)).await,
            _ => {}
        }
        Ok(Response::new(chunk))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let first = futures_util::stream::once(async { Ok(Chunk::default()) });
        let rest = match request.into_inner().count {
            1 => futures_util::stream::once(async { panic!("this stream panics") }).boxed(),
            _ => futures_util::stream::iter(0..100)
                .then(|seq| async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(Chunk {
                        seq,
                        payload: Bytes::new(),
                    })
                })
                .boxed(),
        };
        Ok(Response::new(first.chain(rest).boxed()))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type GatherStream = ChunkStream;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves [`Ends`] under [`SERVICE`] with the server stack and a deadline for every call.
async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let router = sockrpc::Router::new().add_named(SERVICE, StreamerServer::new(Ends));
    tokio::spawn(
        Server::builder()
            .timeout(SERVER_TIMEOUT)
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
            .router(router)
            .serve_with_listener(listener),
    );
    addr
}

/// The server span of the trace begun by `root` (root, client and server spans: three).
async fn server_span(root: tracing::Span) -> SpanData {
    let trace = trace_id_of(&root);
    drop(root);
    let spans = finished_trace(&telemetry().spans, &trace, 3).await;
    spans
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("the server's span")
}

/// The server's count of finished `method` calls with status `code`, waited for until it is 1.
async fn server_finished(method: &str, code: &str) -> f64 {
    super::finished_count("server", SERVICE, method, code, 1.0).await
}

fn assert_ended(span: &SpanData, code: Code) {
    assert_eq!(
        int(span, "rpc.sockrpc.status_code"),
        code as i64,
        "{span:#?}"
    );
    assert_eq!(text(span, "error.type"), code.as_str(), "{span:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_or_stream_is_recorded_internal_on_the_server() {
    let _telemetry = telemetry();
    let channel = Channel::connect(serve().await).await.expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));

    let root = tracing::info_span!("test.ended.unary_panic");
    let answer = tracing::Instrument::instrument(
        client.unary::<Chunk, Chunk, _>(
            Request::new(Chunk {
                seq: 1,
                payload: Bytes::new(),
            }),
            "/sockrpc.test.Ends/Unary",
            ProstCodec,
        ),
        root.clone(),
    )
    .await;
    assert_eq!(answer.expect_err("panics").code(), Code::Internal);
    assert_ended(&server_span(root).await, Code::Internal);

    let root = tracing::info_span!("test.ended.stream_panic");
    let err = tracing::Instrument::instrument(
        async {
            let mut answers = client
                .server_streaming::<ProduceRequest, Chunk, _>(
                    Request::new(ProduceRequest {
                        count: 1,
                        ..ProduceRequest::default()
                    }),
                    "/sockrpc.test.Ends/Produce",
                    ProstCodec,
                )
                .await?
                .into_inner();
            answers
                .message()
                .await?
                .expect("the chunk before the panic");
            answers.message().await.map(|_| ())
        },
        root.clone(),
    )
    .await
    .expect_err("the stream panics");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_ended(&server_span(root).await, Code::Internal);

    assert_eq!(server_finished("Unary", "INTERNAL").await, 1.0);
    assert_eq!(server_finished("Produce", "INTERNAL").await, 1.0);
    // Recorded with the others, if at all: no wait for what should not come.
    let rendered = telemetry().prometheus.render();
    let cancelled = [
        ("rpc_service", SERVICE),
        ("rpc_sockrpc_status_code", "CANCELLED"),
    ];
    let finished = "rpc_server_call_finished_total";
    assert_eq!(super::sample(&rendered, finished, &cancelled), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_server_deadline_is_recorded_as_such_and_ends_then() {
    let _telemetry = telemetry();
    let channel = Channel::connect(serve().await).await.expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));

    let root = tracing::info_span!("test.ended.unary_deadline");
    let answer = tracing::Instrument::instrument(
        client.unary::<Chunk, Chunk, _>(
            Request::new(Chunk {
                seq: 2,
                payload: Bytes::new(),
            }),
            "/sockrpc.test.Ends/Unary",
            ProstCodec,
        ),
        root.clone(),
    )
    .await;
    assert_eq!(answer.expect_err("too slow").code(), Code::DeadlineExceeded);
    let span = server_span(root).await;
    assert_ended(&span, Code::DeadlineExceeded);
    // Its end is when the deadline ended it, not its last poll (the handler's first).
    let lasted = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    assert!(lasted >= SERVER_TIMEOUT / 2, "{lasted:?}: {span:#?}");

    let root = tracing::info_span!("test.ended.stream_deadline");
    let err = tracing::Instrument::instrument(
        async {
            let mut answers = client
                .server_streaming::<ProduceRequest, Chunk, _>(
                    Request::new(ProduceRequest {
                        count: 2,
                        ..ProduceRequest::default()
                    }),
                    "/sockrpc.test.Ends/Produce",
                    ProstCodec,
                )
                .await?
                .into_inner();
            // Bounded: 100 chunks at 100 ms would take 10 s; the deadline ends it at 300 ms.
            for _ in 0..=100 {
                answers.message().await?;
            }
            Ok::<_, Status>(())
        },
        root.clone(),
    )
    .await
    .expect_err("the deadline ends the stream");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_ended(&server_span(root).await, Code::DeadlineExceeded);

    assert_eq!(server_finished("Unary", "DEADLINE_EXCEEDED").await, 1.0);
    assert_eq!(server_finished("Produce", "DEADLINE_EXCEEDED").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_read_to_its_end_ends_the_client_span_though_the_stream_is_kept() {
    let _telemetry = telemetry();
    let addr = spawn_router(sockrpc::Router::new().add_service(StreamerServer::new(Chunks))).await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let root = tracing::info_span!("test.ended.kept_stream");
    let kept = tracing::Instrument::instrument(
        async {
            let mut answers = client
                .server_streaming::<ProduceRequest, Chunk, _>(
                    Request::new(ProduceRequest {
                        count: 3,
                        ..ProduceRequest::default()
                    }),
                    "/sockrpc.test.stream.Streamer/Produce",
                    ProstCodec,
                )
                .await?
                .into_inner();
            for _ in 0..4 {
                if answers.message().await?.is_none() {
                    break;
                }
            }
            Ok::<_, Status>(answers)
        },
        root.clone(),
    )
    .await
    .expect("three chunks");
    let trace = trace_id_of(&root);
    drop(root);
    // Root, client and server spans, the stream still held.
    let spans = finished_trace(&telemetry().spans, &trace, 3).await;
    assert!(
        spans.iter().any(|s| s.span_kind == SpanKind::Client),
        "the client span ends with its stream, not when the stream is dropped: {spans:#?}"
    );
    drop(kept);
}

/// The names the relay and its backend are mounted under: their metrics are this test's alone
/// (the metrics test counts `sockrpc.test.Echo`'s).
const RELAY: &str = "/sockrpc.test.Relay/Sleep";
const BACKEND: &str = "/sockrpc.test.RelayBackend/Sleep";

/// Answers `Sleep` by asking the next server to sleep 10 s: the call it makes is its own.
#[derive(Clone)]
struct SlowRelay {
    next: sockrpc::Client<Stack>,
}

impl Echo for SlowRelay {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let mut next = self.next.clone();
        let asked = SleepRequest {
            millis: 10_000,
            token: "relayed".into(),
        };
        next.unary(Request::new(asked), BACKEND, ProstCodec).await
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_own_client_call_dropped_with_it_is_cancelled_not_its_failure() {
    let _telemetry = telemetry();
    let backend = sockrpc::Router::new().add_named(
        "sockrpc.test.RelayBackend",
        EchoServer::new(Leaf::default()),
    );
    let leaf = spawn_router(backend).await;
    let to_leaf = Channel::connect(leaf).await.expect("connect to the leaf");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let relay = listener.local_addr().expect("local addr");
    let service = SlowRelay {
        next: sockrpc::Client::new(client_stack(&to_leaf)),
    };
    tokio::spawn(
        Server::builder()
            .timeout(SERVER_TIMEOUT)
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
            .router(
                sockrpc::Router::new().add_named("sockrpc.test.Relay", EchoServer::new(service)),
            )
            .serve_with_listener(listener),
    );
    let to_relay = Channel::connect(relay).await.expect("connect to the relay");
    let mut client = sockrpc::Client::new(client_stack(&to_relay));
    let root = tracing::info_span!("test.ended.relayed");
    let asked = SleepRequest {
        millis: 0,
        token: "relay".into(),
    };
    let answer = tracing::Instrument::instrument(
        client.unary::<SleepRequest, EchoReply, _>(Request::new(asked), RELAY, ProstCodec),
        root.clone(),
    )
    .await;
    assert_eq!(answer.expect_err("too slow").code(), Code::DeadlineExceeded);
    let trace = trace_id_of(&root);
    drop(root);
    // Root, the client's span, the relay's server and client spans, the leaf's server span.
    let spans = finished_trace(&telemetry().spans, &trace, 5).await;
    let child_of = |parent: &SpanData, kind: SpanKind| {
        spans
            .iter()
            .find(|s| s.span_kind == kind && s.parent_span_id == parent.span_context.span_id())
            .cloned()
            .unwrap_or_else(|| panic!("a {kind:?} child of {}: {spans:#?}", parent.name))
    };
    let root = spans
        .iter()
        .find(|s| s.name == "test.ended.relayed")
        .unwrap_or_else(|| panic!("the root: {spans:#?}"));
    let outer = child_of(root, SpanKind::Client);
    let relay_server = &child_of(&outer, SpanKind::Server);
    assert_ended(relay_server, Code::DeadlineExceeded);
    let relayed = child_of(relay_server, SpanKind::Client);
    // Given up with its handler, not failed: its backend is not to blame.
    assert_eq!(
        int(&relayed, "rpc.sockrpc.status_code"),
        Code::Cancelled as i64,
        "{relayed:#?}"
    );
}
