//! The middleware stack both example binaries use, in one place so that adding a layer is one
//! edit: a span per call that carries its W3C trace context to the next process, retries (client)
//! or a concurrency limit (server), and metrics.
//!
//! ```text
//!  client: TraceLayer ─▶ RetryLayer ─▶ MetricsLayer ─▶ Channel
//!  server: TraceLayer ─▶ MetricsLayer ─▶ ConcurrencyLimitLayer ─▶ Router
//! ```
//!
//! Order matters: the span is outermost, so everything inside it runs in the call's span (each
//! retry attempt too). On the client, metrics are innermost, so they count what went over the
//! wire (every attempt). On the server they are outside the limit, so the calls it refuses are
//! counted too (`RESOURCE_EXHAUSTED`), as grpc-go's server metrics count every call.
//! `examples/resilience/` shows the other resilience layers (hedging, rate limits, shedding).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use sockrpc::middleware::limit::ConcurrencyLimitLayer;
use sockrpc::middleware::metrics::{Metrics, MetricsLayer};
use sockrpc::middleware::retry::{Retry, RetryLayer};
use sockrpc::middleware::trace::{Trace, TraceLayer};
use sockrpc::middleware::trace_context::OtelPropagation;
use sockrpc::server::ServerBuilder;
use sockrpc::{Channel, Server};
use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

/// The client's services, outermost first.
pub type ClientStack = Trace<Retry<Metrics<Channel>>, OtelPropagation>;

/// Wraps `channel`: span (injecting `traceparent`), retries by each method's idempotency level,
/// metrics.
pub fn client(channel: &Channel) -> ClientStack {
    ServiceBuilder::new()
        .layer(TraceLayer::for_channel(channel).propagate(OtelPropagation::w3c()))
        .layer(RetryLayer::new())
        .layer(MetricsLayer::client())
        .service(channel.clone())
}

/// The server's layers (the first added is the outermost).
pub type ServerLayers =
    Stack<ConcurrencyLimitLayer, Stack<MetricsLayer, Stack<TraceLayer<OtelPropagation>, Identity>>>;

/// A server builder: the span (parented on the caller's `traceparent`) outermost, then
/// metrics, then at most 64 calls at once (more wait up to their deadline).
pub fn server() -> ServerBuilder<ServerLayers> {
    Server::builder()
        .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
        .layer(MetricsLayer::server())
        .layer(ConcurrencyLimitLayer::new().others(64))
}

/// Logs to stderr (`RUST_LOG`, default `info`) and gives every span an OpenTelemetry context,
/// so trace ids exist and travel. A real service would add an exporter (OTLP, Jaeger...) to the
/// provider; this one keeps the spans in-process. Returns the provider, to keep alive.
///
/// The transport's DEBUG span per call (`RUST_LOG=debug`) is logged but not given to
/// OpenTelemetry: it opens before the call's own span, so it would be a trace of its own.
pub fn init_tracing(service: &'static str) -> SdkTracerProvider {
    let provider = SdkTracerProvider::builder().build();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let not_the_transport = tracing_subscriber::filter::filter_fn(|metadata| {
        !metadata.target().starts_with("sockrpc_transport")
    });
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        .with_filter(not_the_transport);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(otel)
        .init();
    provider
}

/// The trace id of the current span, as the `traceparent` carries it.
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}
