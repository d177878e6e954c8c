//! sockrpc's middleware: tower layers that wrap a client `Channel`, a generated client, or a
//! `Server`'s router, all over the same [`Call`](sockrpc_service::Call).
//!
//! Each layer is a folder in tower's shape: `Foo<S>` (the service), `FooLayer` (its layer) and
//! the future it returns.
//!
//! # Layout
//! (Each layer adds itself here as it lands.)
//! - [`interceptor`]: sync and async interceptors that read or change a call's metadata and
//!   extensions, or refuse it with a status; client and server.
//! - [`retry`]: retries per method following gRFC A6 — policies from the `.proto`'s
//!   idempotency levels, backoff with jitter, throttling, server pushback.
//! - [`hedge`]: hedging for `NO_SIDE_EFFECTS` methods — a second copy after a delay, the first
//!   answer wins, the others are cancelled.
//! - [`limit`]: per-method concurrency limits, a token-bucket rate limit and load shedding;
//!   over a limit a call waits in a bounded queue up to its deadline (and goes on with what
//!   remains of it), then is refused with `RESOURCE_EXHAUSTED` and a pushback hint, or fails
//!   `DEADLINE_EXCEEDED` if its deadline passed.
//! - [`trace`]: [`TraceLayer`](trace::TraceLayer), one `tracing` span per call on either side,
//!   after OpenTelemetry's RPC conventions; stream messages as DEBUG events.
//! - `trace_context` (feature `opentelemetry`): W3C `traceparent`/`tracestate` in the call's
//!   metadata, so a call through several services is one trace.
//! - [`metrics`]: [`MetricsLayer`](metrics::MetricsLayer), calls, durations, in-flight, message
//!   sizes and messages per call, per method and status on the `metrics` facade;
//!   `metrics::prometheus` (feature `prometheus`) renders them and serves `/metrics`.
//! - `service_config` (feature `service-config`, on by default): gRPC's service config JSON
//!   (per-method timeout, wait-for-ready, retry and hedging policies, retry throttling, the
//!   load-balancing policy) as these layers and a balanced channel's picker.
//! - [`Side`]: which end of a call a layer observes.

mod attempts;
pub mod hedge;
pub mod interceptor;
pub mod limit;
pub mod metrics;
pub mod retry;
#[cfg(feature = "service-config")]
pub mod service_config;
mod side;
pub mod trace;
#[cfg(feature = "opentelemetry")]
pub mod trace_context;
mod watch;

pub use side::Side;
