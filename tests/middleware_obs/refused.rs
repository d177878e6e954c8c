//! A streamed answer the client refuses — over its `max_decoding_message_size`, or not
//! decodable — fails the call for the caller with `RESOURCE_EXHAUSTED` or `INTERNAL`, and ends
//! it on the wire at once (`Streaming`). The client's span and metrics must record that code,
//! as grpc-go's stats handlers get `RecvMsg`'s error: not `CANCELLED`, which is what the
//! layers watching the answer's body saw when it was dropped after a message they had passed
//! on whole.

use super::services::{client_stack, spawn_router, Chunks};
use super::{finished_trace, int, telemetry, text, trace_id_of};
use opentelemetry::trace::SpanKind;
use sockrpc::{Channel, Code, Request, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::ProduceRequest;

/// What the client reads `Produce`'s answers as: field 2 a varint, where a `Chunk` has bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct Misread {
    #[prost(int64, tag = "2")]
    payload: i64,
}

fn three_of(size: u32) -> ProduceRequest {
    ProduceRequest {
        count: 3,
        size,
        ..ProduceRequest::default()
    }
}

/// The code the client span of trace `trace` ended with, and its `error.type`.
async fn client_code(trace: &str) -> (i64, String) {
    let spans = finished_trace(&telemetry().spans, trace, 3).await;
    let span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap_or_else(|| panic!("a client span: {spans:#?}"));
    (
        int(span, "rpc.sockrpc.status_code"),
        text(span, "error.type"),
    )
}

/// The client's count of finished `Produce` calls with status `code`, waited for until it is 1.
async fn client_finished(code: &str) -> f64 {
    super::finished_count(
        "client",
        "sockrpc.test.stream.Streamer",
        "Produce",
        code,
        1.0,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_is_recorded_with_its_code_not_cancelled() {
    let _telemetry = telemetry();
    let addr = spawn_router(sockrpc::Router::new().add_service(StreamerServer::new(Chunks))).await;
    let channel = Channel::connect(addr).await.expect("connect");

    // Over the client's limit; the caller holds the stream after the error.
    let mut client = StreamerClient::new(client_stack(&channel)).max_decoding_message_size(1024);
    let root = tracing::info_span!("test.refused.over");
    let (err, held) = tracing::Instrument::instrument(
        async {
            let mut answers = client.produce(three_of(4096)).await?.into_inner();
            let err = answers.message().await.expect_err("over the limit");
            Ok::<_, Status>((err, answers))
        },
        root.clone(),
    )
    .await
    .expect("opens");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let trace = trace_id_of(&root);
    drop(root);
    let (code, error_type) = client_code(&trace).await;
    assert_eq!(error_type, "RESOURCE_EXHAUSTED");
    assert_eq!(code, Code::ResourceExhausted as i64);
    drop(held);

    // Not decodable.
    let mut raw = sockrpc::Client::new(client_stack(&channel));
    let root = tracing::info_span!("test.refused.undecodable");
    let (err, held) = tracing::Instrument::instrument(
        async {
            let mut answers = raw
                .server_streaming::<ProduceRequest, Misread, _>(
                    Request::new(three_of(16)),
                    "/sockrpc.test.stream.Streamer/Produce",
                    sockrpc::ProstCodec,
                )
                .await?
                .into_inner();
            let err = answers.message().await.expect_err("undecodable");
            Ok::<_, Status>((err, answers))
        },
        root.clone(),
    )
    .await
    .expect("opens");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let trace = trace_id_of(&root);
    drop(root);
    let (code, error_type) = client_code(&trace).await;
    assert_eq!(error_type, "INTERNAL");
    assert_eq!(code, Code::Internal as i64);
    drop(held);

    assert_eq!(client_finished("RESOURCE_EXHAUSTED").await, 1.0);
    assert_eq!(client_finished("INTERNAL").await, 1.0);
}
