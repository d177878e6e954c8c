//! sockrpc's middleware: tower layers that wrap a client `Channel`, a generated client, or a
//! `Server`'s router, all over the same [`Call`](sockrpc_service::Call).
//!
//! Each layer is a folder in tower's shape: `Foo<S>` (the service), `FooLayer` (its layer) and
//! the future it returns.
//!
//! # Layout
//! (Each layer adds itself here as it lands.)
//! - [`trace`]: [`TraceLayer`](trace::TraceLayer), one `tracing` span per call on either side,
//!   after OpenTelemetry's RPC conventions; stream messages as DEBUG events.
//! - [`trace_context`] (feature `opentelemetry`): W3C `traceparent`/`tracestate` in the call's
//!   metadata, so a call through several services is one trace.
//! - [`metrics`]: [`MetricsLayer`](metrics::MetricsLayer), calls, durations, in-flight and bytes
//!   per method and status on the `metrics` facade; [`metrics::prometheus`] (feature
//!   `prometheus`) renders them and serves `/metrics`.
//! - [`Side`]: which end of a call a layer observes.

pub mod metrics;
mod side;
pub mod trace;
#[cfg(feature = "opentelemetry")]
pub mod trace_context;
mod watch;

pub use side::Side;
