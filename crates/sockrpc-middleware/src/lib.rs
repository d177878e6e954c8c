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

pub mod hedge;
pub mod interceptor;
pub mod retry;
