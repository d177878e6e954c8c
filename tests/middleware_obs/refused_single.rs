//! A client-streaming call's one-message answer the client refuses — over its
//! `max_decoding_message_size`, not decodable, or followed by a second message — fails the call
//! for the caller with `RESOURCE_EXHAUSTED`, `INTERNAL` or `UNIMPLEMENTED`. The answer arrives
//! as a streamed body the layers watch, and `Client` decodes it before reading the stream's
//! end, so the client's span and `rpc_client_call_finished_total` learn that code through
//! `Incoming::refused` rather than record `OK` (or `CANCELLED`). The server answered: its span
//! and metrics say `OK`.
//!
//! A unary answer refused the same way is still recorded `OK` by the client's layers (their
//! futures completed before `Client` decodes it): see the `trace` module's docs.

use super::services::{client_stack, spawn_router, Chunks};
use super::{attribute, finished_trace, int, telemetry, trace_id_of};
use bytes::Bytes;
use opentelemetry::trace::SpanKind;
use sockrpc::{Channel, Code, Request, Response, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::future::Future;

/// How a `Summary` (field 2: a varint) is misread: field 2 bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct MisreadSummary {
    #[prost(bytes = "bytes", tag = "2")]
    bytes: Bytes,
}

fn chunk(size: usize) -> Chunk {
    Chunk {
        seq: 7,
        payload: Bytes::from(vec![0x5A; size]),
    }
}

fn chunks() -> futures_util::stream::Iter<std::vec::IntoIter<Chunk>> {
    futures_util::stream::iter(vec![chunk(100), chunk(200), chunk(300)])
}

/// A span's `rpc.sockrpc.status_code` and `error.type`.
type Spanned = (i64, Option<String>);

/// Runs `call` under a root span of its own; the code it failed with, and the client and server
/// spans of its trace.
async fn traced<T>(
    name: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> (Code, Spanned, Spanned) {
    let root = tracing::info_span!("test.refused_single", case = name);
    let result = tracing::Instrument::instrument(call, root.clone()).await;
    let code = match result {
        Ok(_) => panic!("{name}: the client took the answer"),
        Err(status) => status.code(),
    };
    let trace = trace_id_of(&root);
    drop(root);
    let spans = finished_trace(&telemetry().spans, &trace, 3).await;
    let of = |kind: SpanKind| {
        let span = spans
            .iter()
            .find(|s| s.span_kind == kind)
            .unwrap_or_else(|| panic!("{name}: a {kind:?} span: {spans:#?}"));
        (
            int(span, "rpc.sockrpc.status_code"),
            attribute(span, "error.type").map(|v| v.as_str().into_owned()),
        )
    };
    (code, of(SpanKind::Client), of(SpanKind::Server))
}

/// `side`'s count of finished `Streamer/method` calls with status `code`, waited for until it
/// is `want`.
async fn finished(side: &str, method: &str, code: &str, want: f64) -> f64 {
    super::finished_count(side, "sockrpc.test.stream.Streamer", method, code, want).await
}

/// What a refused call must show: the caller's code on the client span, `OK` on the server's.
/// A mismatch is noted in `wrong`, so that one run shows every case that fails.
fn check(
    wrong: &mut Vec<String>,
    name: &str,
    (code, client, server): (Code, Spanned, Spanned),
    want: Code,
) {
    let expected = (want as i64, Some(want.as_str().to_owned()));
    if code != want || client != expected || server != (Code::Ok as i64, None) {
        wrong.push(format!(
            "{name}: caller {code:?}, client span {client:?}, server span {server:?}; \
             want {want:?}, {expected:?}, (0, None)"
        ));
    }
}

/// Notes in `wrong` a count that is not `want`.
fn check_count(wrong: &mut Vec<String>, what: &str, seen: f64, want: f64) {
    if seen != want {
        wrong.push(format!("{what}: {seen}, want {want}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_streaming_answer_is_recorded_with_its_code() {
    let _telemetry = telemetry();
    let addr = spawn_router(sockrpc::Router::new().add_service(StreamerServer::new(Chunks))).await;
    let channel = Channel::connect(addr).await.expect("connect");

    // The summary (three varints, 7 bytes) is over a 4-byte limit.
    let mut client = StreamerClient::new(client_stack(&channel)).max_decoding_message_size(4);
    let mut wrong = Vec::new();
    let over = traced("collect over the limit", client.collect(chunks())).await;
    check(
        &mut wrong,
        "collect over the limit",
        over,
        Code::ResourceExhausted,
    );

    // Not decodable as what the caller asked for.
    let mut raw = sockrpc::Client::new(client_stack(&channel));
    let undecodable = traced(
        "collect undecodable",
        raw.client_streaming::<_, Chunk, MisreadSummary, _>(
            Request::new(chunks()),
            "/sockrpc.test.stream.Streamer/Collect",
            sockrpc::ProstCodec,
        ),
    )
    .await;
    check(
        &mut wrong,
        "collect undecodable",
        undecodable,
        Code::Internal,
    );

    for (side, code, want) in [
        ("client", "RESOURCE_EXHAUSTED", 1.0),
        ("client", "INTERNAL", 1.0),
        ("client", "OK", 0.0),
        ("server", "OK", 2.0),
    ] {
        let seen = finished(side, "Collect", code, want).await;
        check_count(&mut wrong, &format!("{side} Collect {code}"), seen, want);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Answers `Gather` with two chunks whatever it is sent: a peer that breaks the one-message
/// answer a client-streaming caller expects. The other methods are not called here.
struct TwoAnswers;

impl sockrpc_tests::stream::streamer_server::Streamer for TwoAnswers {
    async fn unary(&self, _: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type ProduceStream = super::services::ChunkStream;

    async fn produce(
        &self,
        _: Request<sockrpc_tests::stream::ProduceRequest>,
    ) -> Result<Response<super::services::ChunkStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn collect(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<sockrpc_tests::stream::Summary>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type PingPongStream = super::services::ChunkStream;

    async fn ping_pong(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<super::services::ChunkStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    type GatherStream = super::services::ChunkStream;

    async fn gather(
        &self,
        _: Request<sockrpc::Streaming<Chunk>>,
    ) -> Result<Response<super::services::ChunkStream>, Status> {
        use futures_util::StreamExt;
        let two = futures_util::stream::iter([Ok(chunk(10)), Ok(chunk(20))]);
        Ok(Response::new(two.boxed()))
    }
}

/// A client-streaming caller sent two answers where it takes one fails `UNIMPLEMENTED` (gRPC's
/// code for a cardinality violation); the client's span and metrics must say so too, not
/// `CANCELLED` as when the caller gave the call up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_answer_to_a_one_message_call_is_recorded_with_the_callers_code() {
    let _telemetry = telemetry();
    let router = sockrpc::Router::new().add_service(StreamerServer::new(TwoAnswers));
    let addr = spawn_router(router).await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut raw = sockrpc::Client::new(client_stack(&channel));
    let (code, client, _server) = traced(
        "two answers",
        raw.client_streaming::<_, Chunk, Chunk, _>(
            Request::new(chunks()),
            "/sockrpc.test.stream.Streamer/Gather",
            sockrpc::ProstCodec,
        ),
    )
    .await;
    let mut wrong = Vec::new();
    let want = (Code::Unimplemented as i64, Some("UNIMPLEMENTED".to_owned()));
    if code != Code::Unimplemented || client != want {
        wrong.push(format!(
            "two answers: caller {code:?}, client span {client:?}; want Unimplemented, {want:?}"
        ));
    }
    for (code, want) in [("UNIMPLEMENTED", 1.0), ("CANCELLED", 0.0)] {
        let seen = finished("client", "Gather", code, want).await;
        check_count(&mut wrong, &format!("client Gather {code}"), seen, want);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
