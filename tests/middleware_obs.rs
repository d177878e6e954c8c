//! The observability layers end to end, over loopback TCP (and UDP: `udp_refused.rs`,
//! `udp_truncated.rs`): tracing
//! spans that join across processes through W3C trace context, and metrics by method and status
//! code scraped over HTTP.
//!
//! One process-wide subscriber (an OpenTelemetry layer with an in-memory exporter) and one
//! process-wide Prometheus recorder serve every test here; each test uses methods of its own
//! and picks its spans out by trace id, so the tests can run side by side. The services they
//! call are in `middleware_obs/services.rs`.

use bytes::Bytes;
use opentelemetry::trace::{SpanId, SpanKind, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sockrpc::{Channel, Code};
use sockrpc_middleware::metrics::prometheus;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::{
    net::SocketAddr,
    sync::OnceLock,
    time::{Duration, Instant},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer as _;

#[path = "middleware_obs/services.rs"]
mod services;

#[path = "middleware_obs/a66.rs"]
mod a66;

#[path = "middleware_obs/baggage.rs"]
mod baggage;

#[path = "middleware_obs/compressed.rs"]
mod compressed;

#[path = "middleware_obs/ended.rs"]
mod ended;

#[path = "middleware_obs/refused.rs"]
mod refused;

#[path = "middleware_obs/refused_single.rs"]
mod refused_single;

#[path = "middleware_obs/sizes.rs"]
mod sizes;

#[path = "middleware_obs/udp_refused.rs"]
mod udp_refused;

#[path = "middleware_obs/udp_truncated.rs"]
mod udp_truncated;

use services::{client_stack, spawn_router, spawn_server, Chunks, Leaf, Relay};

/// Longest wait for spans or metrics that finish just after the answer left.
const SETTLE: Duration = Duration::from_secs(5);

struct Telemetry {
    spans: InMemorySpanExporter,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// Kept so the tracer keeps exporting.
    _provider: SdkTracerProvider,
}

/// Installs the process-wide subscriber and recorder, once.
fn telemetry() -> &'static Telemetry {
    static TELEMETRY: OnceLock<Telemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(spans.clone())
            .build();
        let otel = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("middleware_obs"))
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sockrpc_middleware", tracing::Level::DEBUG)
                    .with_target("middleware_obs", tracing::Level::INFO),
            );
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
            .expect("the only global subscriber");
        let prometheus = prometheus::install().expect("the only global recorder");
        Telemetry {
            spans,
            prometheus,
            _provider: provider,
        }
    })
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn int(span: &SpanData, key: &str) -> i64 {
    match attribute(span, key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key} of {}: {other:?}", span.name),
    }
}

fn text(span: &SpanData, key: &str) -> String {
    match attribute(span, key) {
        Some(value) => value.as_str().into_owned(),
        None => panic!("{} has no {key}: {:?}", span.name, span.attributes),
    }
}

/// Waits until the trace `trace_id` has `count` finished spans, and returns them.
async fn finished_trace(
    exporter: &InMemorySpanExporter,
    trace_id: &str,
    count: usize,
) -> Vec<SpanData> {
    let start = Instant::now();
    loop {
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .expect("exporter")
            .into_iter()
            .filter(|span| span.span_context.trace_id().to_string() == trace_id)
            .collect();
        if spans.len() >= count || start.elapsed() > SETTLE {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_two_hops_make_one_trace_of_four_parented_spans() {
    let telemetry = telemetry();
    let leaf = Leaf::default();
    let b = spawn_server(leaf.clone()).await;
    let to_b = Channel::connect(b).await.expect("connect to B");
    let a = spawn_server(Relay {
        next: EchoClient::new(client_stack(&to_b)),
    })
    .await;
    let to_a = Channel::connect(a).await.expect("connect to A");
    let mut client = EchoClient::new(client_stack(&to_a));

    let reply = client
        .echo(EchoRequest {
            payload: Bytes::from_static(b"two hops"),
            id: 7,
        })
        .await
        .expect("echo through A and B")
        .into_inner();
    assert_eq!(reply.id, 7);

    // B saw the context of A's client span: version, trace id, parent span id, sampled.
    let traceparent = leaf.traceparents.lock().expect("not poisoned")[0].clone();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {traceparent:?}");
    assert_eq!(
        (parts[0], parts[3]),
        ("00", "01"),
        "traceparent {traceparent:?}"
    );
    let trace_id = parts[1];

    let spans = finished_trace(&telemetry.spans, trace_id, 4).await;
    assert_eq!(spans.len(), 4, "one trace of four spans: {spans:#?}");
    for span in &spans {
        assert_eq!(span.name, "sockrpc.test.Echo/Echo");
        assert_eq!(text(span, "rpc.system"), "sockrpc");
        assert_eq!(text(span, "rpc.service"), "sockrpc.test.Echo");
        assert_eq!(text(span, "rpc.method"), "Echo");
        assert_eq!(int(span, "rpc.sockrpc.status_code"), 0);
        assert!(int(span, "rpc.sockrpc.call_id") > 0, "{span:#?}");
    }
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
    let of_kind = |kind: SpanKind| spans.iter().filter(move |s| s.span_kind == kind);
    // The outer client's span is the root: its parent is none of the four.
    let root = of_kind(SpanKind::Client)
        .find(|s| !ids.contains(&s.parent_span_id))
        .expect("a client span with no parent in the trace");
    let server_a = of_kind(SpanKind::Server)
        .find(|s| s.parent_span_id == root.span_context.span_id())
        .expect("A's server span, child of the client's");
    let client_a = of_kind(SpanKind::Client)
        .find(|s| s.parent_span_id == server_a.span_context.span_id())
        .expect("A's client span, child of A's server span");
    let server_b = of_kind(SpanKind::Server)
        .find(|s| s.parent_span_id == client_a.span_context.span_id())
        .expect("B's server span, child of A's client span");
    assert!(server_a.parent_span_is_remote && server_b.parent_span_is_remote);
    assert!(!client_a.parent_span_is_remote);
    assert_eq!(parts[2], client_a.span_context.span_id().to_string());

    // Each side names the other, and both sides of a hop name the same call id.
    assert_eq!(text(root, "server.address"), "127.0.0.1");
    assert_eq!(int(root, "server.port"), i64::from(a.port()));
    assert_eq!(int(client_a, "server.port"), i64::from(b.port()));
    assert_eq!(int(server_a, "server.port"), i64::from(a.port()));
    assert_eq!(int(server_b, "server.port"), i64::from(b.port()));
    for server in [server_a, server_b] {
        assert_eq!(text(server, "server.address"), "127.0.0.1");
        assert_eq!(text(server, "network.peer.address"), "127.0.0.1");
        assert_eq!(text(server, "network.transport"), "tcp");
        assert_eq!(text(server, "network.type"), "ipv4");
    }
    assert_eq!(
        int(root, "rpc.sockrpc.call_id"),
        int(server_a, "rpc.sockrpc.call_id")
    );
    assert_eq!(
        int(client_a, "rpc.sockrpc.call_id"),
        int(server_b, "rpc.sockrpc.call_id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_failed_call_marks_both_spans_as_errors() {
    let telemetry = telemetry();
    let leaf = Leaf::default();
    let addr = spawn_server(leaf).await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = EchoClient::new(client_stack(&channel));
    // Wrapped in a root span of the test's own, to find the trace.
    let root = tracing::info_span!("test.root");
    let trace_id = {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        root.context().span().span_context().trace_id().to_string()
    };
    let failed =
        tracing::Instrument::instrument(client.grow(GrowRequest { size: 1 }), root.clone()).await;
    assert_eq!(failed.expect_err("fails").code(), Code::Unimplemented);
    drop(root);
    let spans = finished_trace(&telemetry.spans, &trace_id, 3).await;
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let server_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    for span in [client_span, server_span] {
        assert_eq!(span.name, "sockrpc.test.Echo/Grow");
        assert_eq!(int(span, "rpc.sockrpc.status_code"), 12);
        assert_eq!(text(span, "error.type"), "UNIMPLEMENTED");
        // The status message, as OpenTelemetry's status description.
        assert_eq!(
            span.status,
            opentelemetry::trace::Status::error("not in this test"),
            "{span:#?}"
        );
    }
}

/// The `rpc.message` events of `span`, as (type, id) in order.
fn messages(span: &SpanData) -> Vec<(String, i64)> {
    span.events
        .iter()
        .filter(|event| event.name == "rpc.message")
        .map(|event| {
            let get = |key: &str| {
                event
                    .attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| kv.value.clone())
            };
            let kind = get("rpc.message.type").map(|v| v.as_str().into_owned());
            let id = match get("rpc.message.id") {
                Some(Value::I64(id)) => id,
                other => panic!("rpc.message.id: {other:?}"),
            };
            (kind.unwrap_or_default(), id)
        })
        .collect()
}

/// A trace id for spans started under `root`.
fn trace_id_of(root: &tracing::Span) -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    root.context().span().span_context().trace_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_streams_keep_their_spans_to_the_last_message_with_an_event_each() {
    let telemetry = telemetry();
    let addr = spawn_router(sockrpc::Router::new().add_service(StreamerServer::new(Chunks))).await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = StreamerClient::new(client_stack(&channel));

    // Server streaming: three answers.
    let root = tracing::info_span!("test.produce");
    let produce_trace = trace_id_of(&root);
    let received = tracing::Instrument::instrument(
        async {
            let mut answers = client
                .produce(ProduceRequest {
                    count: 3,
                    size: 8,
                    ..ProduceRequest::default()
                })
                .await
                .expect("produce")
                .into_inner();
            let mut seqs = Vec::new();
            while let Some(chunk) = answers.message().await.expect("chunk") {
                seqs.push(chunk.seq);
            }
            seqs
        },
        root.clone(),
    )
    .await;
    assert_eq!(received, vec![0, 1, 2]);
    drop(root);

    // Bidirectional: two messages each way, one in flight.
    let root = tracing::info_span!("test.ping_pong");
    let ping_pong_trace = trace_id_of(&root);
    tracing::Instrument::instrument(
        async {
            let (requests, receiver) = tokio::sync::mpsc::channel::<Chunk>(1);
            let outgoing = futures_util::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|chunk| (chunk, receiver))
            });
            let mut answers = client
                .ping_pong(outgoing)
                .await
                .expect("ping_pong")
                .into_inner();
            for seq in 0..2 {
                let chunk = Chunk {
                    seq,
                    payload: Bytes::from_static(b"ping"),
                };
                requests.send(chunk).await.expect("send");
                let echo = answers.message().await.expect("echo").expect("one");
                assert_eq!(echo.seq, seq);
            }
            drop(requests);
            assert!(answers.message().await.expect("clean end").is_none());
        },
        root.clone(),
    )
    .await;
    drop(root);

    let sent = |n: i64| (1..=n).map(|id| ("SENT".to_owned(), id));
    let received = |n: i64| (1..=n).map(|id| ("RECEIVED".to_owned(), id));
    let spans = finished_trace(&telemetry.spans, &produce_trace, 3).await;
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    assert_eq!(server.name, "sockrpc.test.stream.Streamer/Produce");
    assert_eq!(messages(server), sent(3).collect::<Vec<_>>());
    assert_eq!(messages(client_span), received(3).collect::<Vec<_>>());
    for span in [server, client_span] {
        assert_eq!(int(span, "rpc.sockrpc.status_code"), 0, "{span:#?}");
        // The span ended after the last message, not when the answer's head arrived.
        let last = span
            .events
            .iter()
            .map(|e| e.timestamp)
            .max()
            .expect("events");
        assert!(span.end_time >= last, "{span:#?}");
    }

    let spans = finished_trace(&telemetry.spans, &ping_pong_trace, 3).await;
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    let client_span = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let mut on_server = messages(server);
    on_server.sort();
    let mut on_client = messages(client_span);
    on_client.sort();
    let both: Vec<_> = received(2).chain(sent(2)).collect();
    assert_eq!(on_server, both);
    assert_eq!(on_client, both);
    assert_eq!(int(server, "rpc.sockrpc.status_code"), 0);
    assert_eq!(int(client_span, "rpc.sockrpc.status_code"), 0);
}

/// `GET /metrics` over a fresh connection; the response body.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_owned()
}

/// The value of the sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// `side`'s count of finished `service/method` calls with status `code`, waited for until it
/// is `want` (a server records its call as its answer leaves, perhaps after the client read it).
async fn finished_count(side: &str, service: &str, method: &str, code: &str, want: f64) -> f64 {
    let metric = format!("rpc_{side}_call_finished_total");
    let labels = [
        ("rpc_service", service),
        ("rpc_method", method),
        ("rpc_sockrpc_status_code", code),
    ];
    let mut seen = 0.0;
    for _ in 0..500 {
        let rendered = telemetry().prometheus.render();
        seen = sample(&rendered, &metric, &labels).unwrap_or(0.0);
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_scraped_over_http_count_calls_by_method_and_code() {
    let telemetry = telemetry();
    let addr = spawn_server(Leaf::default()).await;
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = EchoClient::new(client_stack(&channel));
    for _ in 0..3 {
        client
            .sleep(SleepRequest {
                millis: 0,
                token: "metrics".into(),
            })
            .await
            .expect("sleep");
    }
    for _ in 0..2 {
        let failed = client
            .fail(FailRequest {
                code: Code::NotFound as i32,
                message: "nothing here".into(),
                details: Bytes::new(),
            })
            .await;
        assert_eq!(failed.expect_err("fails").code(), Code::NotFound);
    }

    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint_addr = endpoint.local_addr().expect("local addr");
    tokio::spawn(prometheus::serve(
        endpoint,
        telemetry.prometheus.clone(),
        std::future::pending(),
    ));
    let text = scrape(endpoint_addr).await;

    let service = ("rpc_service", "sockrpc.test.Echo");
    for side in ["server", "client"] {
        let finished = format!("rpc_{side}_call_finished_total");
        let ok = [
            service,
            ("rpc_method", "Sleep"),
            ("rpc_sockrpc_status_code", "OK"),
        ];
        let not_found = [
            service,
            ("rpc_method", "Fail"),
            ("rpc_sockrpc_status_code", "NOT_FOUND"),
        ];
        assert_eq!(sample(&text, &finished, &ok), Some(3.0), "{side}:\n{text}");
        assert_eq!(
            sample(&text, &finished, &not_found),
            Some(2.0),
            "{side}:\n{text}"
        );
        let started = format!("rpc_{side}_call_started_total");
        assert_eq!(
            sample(&text, &started, &[service, ("rpc_method", "Fail")]),
            Some(2.0),
            "{side}:\n{text}"
        );
        let duration = format!("rpc_{side}_call_duration_seconds_count");
        assert_eq!(sample(&text, &duration, &ok), Some(3.0), "{side}:\n{text}");
        let buckets = format!("rpc_{side}_call_duration_seconds_bucket");
        assert_eq!(
            sample(
                &text,
                &buckets,
                &[service, ("rpc_method", "Sleep"), ("le", "+Inf")]
            ),
            Some(3.0),
            "{side}:\n{text}"
        );
        let active = format!("rpc_{side}_call_active");
        assert_eq!(
            sample(&text, &active, &[service, ("rpc_method", "Sleep")]),
            Some(0.0),
            "{side}:\n{text}"
        );
        let sleep = [service, ("rpc_method", "Sleep")];
        let sent = format!("rpc_{side}_request_size_bytes_sum");
        let bytes = sample(&text, &sent, &sleep).unwrap_or(0.0);
        // Three requests of a 7-byte token field (2 bytes of tag and length, 7 of text).
        assert_eq!(bytes, 27.0, "{side}:\n{text}");
        let requests = format!("rpc_{side}_request_size_bytes_count");
        assert_eq!(sample(&text, &requests, &sleep), Some(3.0), "{side}");
        // A failed call answered no message.
        let answered = format!("rpc_{side}_responses_per_rpc_sum");
        assert_eq!(sample(&text, &answered, &ok), Some(3.0), "{side}");
        assert_eq!(sample(&text, &answered, &not_found), Some(0.0), "{side}");
    }
}
