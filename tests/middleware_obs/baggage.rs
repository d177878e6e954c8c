//! W3C trace context and W3C baggage together, as OpenTelemetry SDKs propagate by default: a
//! `TextMapCompositePropagator` of the two in `OtelPropagation::new`, on both sides. Neither
//! that composite nor `BaggagePropagator` is `Clone`, which `OtelPropagation` once asked of its
//! propagator (this file did not compile then). The caller's baggage reaches the handler in its
//! span's context, the server's span joins the caller's trace, and what OpenTelemetry's own
//! propagators read from the metadata is what the client's span wrote. Baggage sent with no
//! `traceparent` reaches the handler too (it was dropped), as grpc-go's and the OpenTelemetry
//! SDKs' propagators keep it.

use super::telemetry;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use sockrpc::{Channel, Request, Response, Server, Status};
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tower::Layer;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// W3C trace context and baggage in one propagator.
fn w3c_and_baggage() -> OtelPropagation<TextMapCompositePropagator> {
    OtelPropagation::new(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]))
}

/// What the handler saw: its span's baggage, its span's trace id, and what OpenTelemetry's
/// own composite propagator reads from the call's metadata (trace id, span id, baggage), and
/// whether the metadata had a `traceparent`.
#[derive(Debug, Default, Clone)]
struct Seen {
    baggage: Vec<(String, String)>,
    traceparent: bool,
    trace_id: String,
    read: (String, String, Vec<(String, String)>),
}

fn baggage_of(context: &Context) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = context
        .baggage()
        .iter()
        .map(|(key, (value, _))| (key.to_string(), value.to_string()))
        .collect();
    entries.sort();
    entries
}

#[derive(Clone, Default)]
struct BaggageLeaf {
    seen: Arc<Mutex<Option<Seen>>>,
}

impl Echo for BaggageLeaf {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let mine = tracing::Span::current().context();
        let carrier: HashMap<String, String> = request
            .metadata()
            .iter()
            .map(|(key, value)| (key.to_owned(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        let read = w3c_and_baggage().get_ref().extract(&carrier);
        let remote = read.span().span_context().clone();
        *self.seen.lock().expect("not poisoned") = Some(Seen {
            baggage: baggage_of(&mine),
            traceparent: carrier.contains_key("traceparent"),
            trace_id: mine.span().span_context().trace_id().to_string(),
            read: (
                remote.trace_id().to_string(),
                remote.span_id().to_string(),
                baggage_of(&read),
            ),
        });
        Ok(Response::new(EchoReply::default()))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// A server whose span propagates trace context and baggage, serving `leaf`.
async fn serve(leaf: &BaggageLeaf) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        Server::builder()
            .layer(TraceLayer::server().propagate(w3c_and_baggage()))
            .add_service(EchoServer::new(leaf.clone()))
            .serve_with_listener(listener),
    );
    Channel::connect(addr).await.expect("connect")
}

/// The caller's own span, carrying baggage the way an OpenTelemetry application sets it.
fn span_with_baggage() -> tracing::Span {
    let root = tracing::info_span!("test.baggage");
    let with_baggage = Context::new().with_baggage(vec![
        KeyValue::new("tenant", "t-42"),
        KeyValue::new("user", "alice"),
    ]);
    root.set_parent(with_baggage)
        .expect("an OpenTelemetry layer");
    root
}

fn expected_baggage() -> Vec<(String, String)> {
    vec![
        ("tenant".to_owned(), "t-42".to_owned()),
        ("user".to_owned(), "alice".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_and_baggage_through_a_composite_propagator_reach_the_handler() {
    let _telemetry = telemetry();
    let leaf = BaggageLeaf::default();
    let channel = serve(&leaf).await;
    let mut client = EchoClient::new(
        TraceLayer::for_channel(&channel)
            .propagate(w3c_and_baggage())
            .layer(channel.clone()),
    );

    let root = span_with_baggage();
    let trace_id = root.context().span().span_context().trace_id().to_string();
    tracing::Instrument::instrument(client.echo(EchoRequest::default()), root.clone())
        .await
        .expect("echo");

    let seen = leaf.seen.lock().expect("not poisoned").clone();
    let seen = seen.expect("the handler ran");
    let expected = expected_baggage();
    assert_eq!(
        seen.baggage, expected,
        "baggage in the handler's span context"
    );
    assert_eq!(
        seen.trace_id, trace_id,
        "the server span joins the caller's trace"
    );
    let (read_trace, read_span, read_baggage) = seen.read;
    assert_eq!(read_trace, trace_id, "OpenTelemetry reads the traceparent");
    assert_ne!(read_span, "0000000000000000");
    assert_eq!(read_baggage, expected, "OpenTelemetry reads the baggage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_without_a_traceparent_reaches_the_handler() {
    let _telemetry = telemetry();
    let leaf = BaggageLeaf::default();
    let channel = serve(&leaf).await;
    // The caller propagates baggage alone: no `traceparent` goes out.
    let mut client = EchoClient::new(
        TraceLayer::for_channel(&channel)
            .propagate(OtelPropagation::new(BaggagePropagator::new()))
            .layer(channel.clone()),
    );
    let root = span_with_baggage();
    tracing::Instrument::instrument(client.echo(EchoRequest::default()), root)
        .await
        .expect("echo");

    let seen = leaf.seen.lock().expect("not poisoned").clone();
    let seen = seen.expect("the handler ran");
    let (_, _, read_baggage) = seen.read;
    assert!(!seen.traceparent, "no trace context was sent");
    assert_eq!(read_baggage, expected_baggage(), "the baggage was sent");
    assert_eq!(
        seen.baggage,
        expected_baggage(),
        "baggage in the handler's span context"
    );
    assert_ne!(
        seen.trace_id,
        "0".repeat(32),
        "the server span is still traced"
    );
}
