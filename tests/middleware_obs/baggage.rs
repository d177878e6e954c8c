//! W3C trace context and W3C baggage together, as OpenTelemetry SDKs propagate by default: a
//! `TextMapCompositePropagator` of the two in `OtelPropagation::new`, on both sides. Neither
//! that composite nor `BaggagePropagator` is `Clone`, which `OtelPropagation` once asked of its
//! propagator (this file did not compile then). The caller's baggage reaches the handler in its
//! span's context, the server's span joins the caller's trace, and what OpenTelemetry's own
//! propagators read from the metadata is what the client's span wrote.

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
/// own composite propagator reads from the call's metadata (trace id, span id, baggage).
#[derive(Debug, Default, Clone)]
struct Seen {
    baggage: Vec<(String, String)>,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_and_baggage_through_a_composite_propagator_reach_the_handler() {
    let _telemetry = telemetry();
    let leaf = BaggageLeaf::default();
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
    let channel = Channel::connect(addr).await.expect("connect");
    let mut client = EchoClient::new(
        TraceLayer::for_channel(&channel)
            .propagate(w3c_and_baggage())
            .layer(channel.clone()),
    );

    // The caller's own span, carrying baggage the way an OpenTelemetry application sets it.
    let root = tracing::info_span!("test.baggage");
    let with_baggage = Context::new().with_baggage(vec![
        KeyValue::new("tenant", "t-42"),
        KeyValue::new("user", "alice"),
    ]);
    root.set_parent(with_baggage)
        .expect("an OpenTelemetry layer");
    let trace_id = root.context().span().span_context().trace_id().to_string();
    tracing::Instrument::instrument(client.echo(EchoRequest::default()), root.clone())
        .await
        .expect("echo");

    let seen = leaf.seen.lock().expect("not poisoned").clone();
    let seen = seen.expect("the handler ran");
    let expected = vec![
        ("tenant".to_owned(), "t-42".to_owned()),
        ("user".to_owned(), "alice".to_owned()),
    ];
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
