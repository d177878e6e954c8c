//! Message sizes and messages per call, as OpenTelemetry's RPC metrics name them
//! (`rpc.{server,client}.request.size`, `.response.size`: a histogram of each message's bytes;
//! `.requests_per_rpc`, `.responses_per_rpc`: a histogram of messages per call, by code), and
//! a one-message answer the transport could not send, recorded with the code the client got.
//!
//! Before, a server's layers recorded `OK` for an answer its transport then refused for its
//! size (over `max_encoding_message_size`): the handler's future had completed `OK`, and the
//! layers finished the call there, before the transport encoded the answer. The client got
//! `RESOURCE_EXHAUSTED`.

use super::services::{client_stack, Chunks};
use super::{finished_trace, int, telemetry, trace_id_of};
use bytes::Bytes;
use opentelemetry::trace::SpanKind;
use sockrpc::{Channel, Code, Endpoint, ProstCodec, Request, Server, Status};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::{future::Future, net::SocketAddr, time::Duration};

/// Serves [`Chunks`] under `service` with the server stack, sending at most `max_send` bytes
/// per message.
async fn serve(service: &'static str, max_send: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let router = sockrpc::Router::new().add_named(service, StreamerServer::new(Chunks));
    tokio::spawn(
        Server::builder()
            .max_encoding_message_size(max_send)
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
            .router(router)
            .serve_with_listener(listener),
    );
    addr
}

fn chunk(size: usize) -> Chunk {
    Chunk {
        seq: 1,
        payload: Bytes::from(vec![0x5A; size]),
    }
}

/// Waits until `metric`'s sample with `labels` is `want` (a server records a call as its
/// answer leaves, perhaps after the client read it); what it was last.
pub(super) async fn sample_of(metric: &str, labels: &[(&str, &str)], want: f64) -> Option<f64> {
    let mut seen = None;
    for _ in 0..500 {
        seen = super::sample(&telemetry().prometheus.render(), metric, labels);
        if seen == Some(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

/// Runs `call` under a root span; the code it failed with, and the status codes of its client
/// and server spans.
pub(super) async fn traced<T>(
    name: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> (Code, i64, i64) {
    let root = tracing::info_span!("test.sizes", case = name);
    let result = tracing::Instrument::instrument(call, root.clone()).await;
    let Err(status) = result else {
        panic!("{name}: the call succeeded")
    };
    let trace = trace_id_of(&root);
    drop(root);
    let spans = finished_trace(&telemetry().spans, &trace, 3).await;
    let code_of = |kind: SpanKind| {
        let span = spans
            .iter()
            .find(|s| s.span_kind == kind)
            .unwrap_or_else(|| panic!("{name}: a {kind:?} span in {spans:#?}"));
        int(span, "rpc.sockrpc.status_code")
    };
    (
        status.code(),
        code_of(SpanKind::Client),
        code_of(SpanKind::Server),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_answer_over_the_servers_send_limit_is_recorded_as_the_client_got_it() {
    const SERVICE: &str = "sockrpc.test.OverSend";
    let _telemetry = telemetry();
    let channel = Channel::connect(serve(SERVICE, 1024).await)
        .await
        .expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let exhausted = Code::ResourceExhausted as i64;
    // 4 KiB: answered on the connection's task. 300 KiB: a request that large runs in a task of
    // its own, and is answered from there.
    for (name, size) in [("inline", 4096), ("task", 300 * 1024)] {
        let call = client.unary::<Chunk, Chunk, _>(
            Request::new(chunk(size)),
            "/sockrpc.test.OverSend/Unary",
            ProstCodec,
        );
        let (code, client_span, server_span) = traced(name, call).await;
        assert_eq!(code, Code::ResourceExhausted, "{name}");
        assert_eq!(client_span, exhausted, "{name}");
        assert_eq!(
            server_span, exhausted,
            "{name}: the server span says what the client got"
        );
    }
    let service = ("rpc_service", SERVICE);
    let exhausted = ("rpc_sockrpc_status_code", "RESOURCE_EXHAUSTED");
    for side in ["server", "client"] {
        let finished = format!("rpc_{side}_call_finished_total");
        assert_eq!(
            sample_of(&finished, &[service, exhausted], 2.0).await,
            Some(2.0),
            "{side}"
        );
        // Never sent, so no response message.
        let responses = format!("rpc_{side}_responses_per_rpc_sum");
        assert_eq!(
            sample_of(&responses, &[service, exhausted], 0.0).await,
            Some(0.0),
            "{side}"
        );
    }
    let rendered = telemetry().prometheus.render();
    let ok = ("rpc_sockrpc_status_code", "OK");
    let finished = "rpc_server_call_finished_total";
    assert_eq!(super::sample(&rendered, finished, &[service, ok]), None);
    let sizes = "rpc_server_response_size_bytes_count";
    assert_eq!(
        super::sample(&rendered, sizes, &[service]).unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_answer_over_the_clients_limit_is_recorded_resource_exhausted_by_the_client() {
    const SERVICE: &str = "sockrpc.test.OverReceive";
    let _telemetry = telemetry();
    let addr = serve(SERVICE, 4 * 1024 * 1024).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .max_decoding_message_size(1024)
        .max_encoding_message_size(64 * 1024);
    let channel = Channel::connect(endpoint).await.expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));
    let call = client.unary::<Chunk, Chunk, _>(
        Request::new(chunk(4096)),
        "/sockrpc.test.OverReceive/Unary",
        ProstCodec,
    );
    let (code, client_span, server_span) = traced("over the client's limit", call).await;
    assert_eq!(code, Code::ResourceExhausted);
    assert_eq!(client_span, Code::ResourceExhausted as i64);
    // The server sent it.
    assert_eq!(server_span, Code::Ok as i64);
    let service = ("rpc_service", SERVICE);
    let finished = "rpc_client_call_finished_total";
    let exhausted = ("rpc_sockrpc_status_code", "RESOURCE_EXHAUSTED");
    assert_eq!(
        sample_of(finished, &[service, exhausted], 1.0).await,
        Some(1.0)
    );
    let ok = ("rpc_sockrpc_status_code", "OK");
    let finished = "rpc_server_call_finished_total";
    assert_eq!(sample_of(finished, &[service, ok], 1.0).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_per_message_and_counts_per_call_on_both_sides() {
    const SERVICE: &str = "sockrpc.test.Sizes";
    let _telemetry = telemetry();
    let channel = Channel::connect(serve(SERVICE, 4 * 1024 * 1024).await)
        .await
        .expect("connect");
    let mut client = sockrpc::Client::new(client_stack(&channel));
    // Server streaming: one request, two answers of 10 and 12 bytes (seq 0 is not encoded).
    let produce = ProduceRequest {
        count: 2,
        size: 8,
        ..ProduceRequest::default()
    };
    let mut answers = client
        .server_streaming::<ProduceRequest, Chunk, _>(
            Request::new(produce),
            "/sockrpc.test.Sizes/Produce",
            ProstCodec,
        )
        .await
        .expect("produce")
        .into_inner();
    let mut read = 0;
    while answers.message().await.expect("a chunk").is_some() {
        read += 1;
    }
    assert_eq!(read, 2);
    // Client streaming: three requests, one answer.
    let chunks = futures_util::stream::iter(vec![chunk(100), chunk(200), chunk(300)]);
    client
        .client_streaming::<_, Chunk, Summary, _>(
            Request::new(chunks),
            "/sockrpc.test.Sizes/Collect",
            ProstCodec,
        )
        .await
        .expect("collect");

    let service = ("rpc_service", SERVICE);
    let ok = ("rpc_sockrpc_status_code", "OK");
    for side in ["server", "client"] {
        let produce = [service, ("rpc_method", "Produce")];
        let collect = [service, ("rpc_method", "Collect")];
        let with_ok = |labels: [(&'static str, &'static str); 2]| [labels[0], labels[1], ok];
        // Messages per call, once per call with its code.
        for (metric, labels, want) in [
            ("requests_per_rpc_sum", with_ok(produce), 1.0),
            ("responses_per_rpc_sum", with_ok(produce), 2.0),
            ("responses_per_rpc_count", with_ok(produce), 1.0),
            ("requests_per_rpc_sum", with_ok(collect), 3.0),
            ("requests_per_rpc_count", with_ok(collect), 1.0),
            ("responses_per_rpc_sum", with_ok(collect), 1.0),
        ] {
            let metric = format!("rpc_{side}_{metric}");
            assert_eq!(
                sample_of(&metric, &labels, want).await,
                Some(want),
                "{metric} {labels:?}"
            );
        }
        // Sizes, once per message.
        for (metric, labels, want) in [
            ("response_size_bytes_count", produce, 2.0),
            ("response_size_bytes_sum", produce, 22.0),
            ("request_size_bytes_count", collect, 3.0),
            ("request_size_bytes_sum", collect, 614.0),
        ] {
            let metric = format!("rpc_{side}_{metric}");
            assert_eq!(
                sample_of(&metric, &labels, want).await,
                Some(want),
                "{metric} {labels:?}"
            );
        }
    }
}
