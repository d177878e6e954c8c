//! The middleware stack the `sockrpc-stack` bench rows measure and `serve --metrics` runs, as a
//! typical production service would wrap its client and server:
//!
//! ```text
//!  client: TraceLayer ─▶ RetryLayer ─▶ MetricsLayer ─▶ Channel
//!  server: TraceLayer ─▶ ConcurrencyLimitLayer ─▶ MetricsLayer ─▶ Router
//! ```
//!
//! The span is outermost on both sides, so everything inside runs in the call's span (each
//! retry attempt too); metrics are innermost, so they count what went over the wire (every
//! attempt, and only calls the limit let through).

use sockrpc::middleware::limit::ConcurrencyLimitLayer;
use sockrpc::middleware::metrics::{Metrics, MetricsLayer};
use sockrpc::middleware::retry::{Retry, RetryLayer};
use sockrpc::middleware::trace::{Trace, TraceLayer};
use sockrpc::server::ServerBuilder;
use sockrpc::{Channel, Server};
use tower::layer::util::{Identity, Stack};
use tower::ServiceBuilder;

/// Calls one server connection runs at once past which calls wait (and then are refused): high
/// enough never to bind in the benchmark, so the rows measure the limit's bookkeeping.
const MAX_CONCURRENT: usize = 1024;

/// A client's stack.
pub(crate) type ClientStack = Trace<Retry<Metrics<Channel>>>;

/// Wraps `channel` in the client stack. Retries follow each method's idempotency level from
/// the `.proto` (`Bench/Echo` declares none: a failure that never reached the server is
/// retried, nothing else), so a successful call pays only the policy lookup.
pub(crate) fn client(channel: &Channel) -> ClientStack {
    ServiceBuilder::new()
        .layer(TraceLayer::for_channel(channel))
        .layer(RetryLayer::new())
        .layer(MetricsLayer::client())
        .service(channel.clone())
}

/// The server's layers, outermost first.
pub(crate) type ServerLayers =
    Stack<MetricsLayer, Stack<ConcurrencyLimitLayer, Stack<TraceLayer, Identity>>>;

/// A server builder with the server stack.
pub(crate) fn server() -> ServerBuilder<ServerLayers> {
    Server::builder()
        .layer(TraceLayer::server())
        .layer(ConcurrencyLimitLayer::new().others(MAX_CONCURRENT))
        .layer(MetricsLayer::server())
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
