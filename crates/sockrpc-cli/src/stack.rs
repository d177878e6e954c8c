//! The middleware stack the `sockrpc-stack` bench rows measure and `serve --metrics` runs: a
//! span per call (`TraceLayer`) and metrics per method and code (`MetricsLayer`) on both sides,
//! as a typical production service would wrap its client and server.
//!
//! Retry and a concurrency limit belong in a typical stack too; they come from the middleware
//! crate's `retry`/`limit` layers, which had not landed when these rows were added. They go where
//! the two `RESILIENCE HOOK` comments are, and the rows measure them from then on.

use sockrpc::middleware::metrics::{Metrics, MetricsLayer};
use sockrpc::middleware::trace::{Trace, TraceLayer};
use sockrpc::server::ServerBuilder;
use sockrpc::{Channel, Server};
use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;

/// A client's stack: span outermost, so whatever runs inside (metrics, and later retries) is in
/// the call's span.
pub(crate) type ClientStack = Trace<Metrics<Channel>>;

/// Wraps `channel` in the client stack.
pub(crate) fn client(channel: &Channel) -> ClientStack {
    ServiceBuilder::new()
        .layer(TraceLayer::for_channel(channel))
        // RESILIENCE HOOK: retry (and hedging) and the concurrency limit go here, inside the
        // span so each attempt is in it, outside the metrics so those count every attempt.
        .layer(MetricsLayer::client())
        .service(channel.clone())
}

/// The server's layers: the span outermost (last added), metrics inside it.
pub(crate) type ServerLayers = Stack<TraceLayer, Stack<MetricsLayer, Identity>>;

/// A server builder with the server stack.
pub(crate) fn server() -> ServerBuilder<ServerLayers> {
    // RESILIENCE HOOK: the server's concurrency limit goes between these two layers.
    Server::builder()
        .layer(MetricsLayer::server())
        .layer(TraceLayer::server())
}

/// Installs, for the whole process, a subscriber that drops: `tracing-subscriber`'s registry
/// with INFO enabled, so every call's span is really made, entered, recorded and closed (the
/// layers' whole cost), but nothing is kept or formatted. What a logging or exporting layer on
/// top adds is that layer's own cost, not the middleware's (the `allocs` test counts a `fmt`
/// subscriber's). Does nothing if a subscriber is installed already.
pub(crate) fn install_dropping_subscriber() {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber =
        tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
