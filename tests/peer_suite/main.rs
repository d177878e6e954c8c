//! The peer frameworks' suites — tonic's integration tests and grpc-go's `end2end_test.go`,
//! `stream_cleanup_test.go`, `status_test.go` and `metadata_test.go` — for the behaviours the
//! other folders (`parity`, `tonic`, `hardening`, `streaming`) do not already pin down, ported
//! to sockrpc's API over loopback TCP. One concept per file:
//!
//! - metadata: key and value rules, case folding, every byte in `-bin` values, order and
//!   duplicates kept, headers and trailers in every call shape;
//! - status: messages (percent signs, newlines, non-ASCII) and details bytes exact,
//!   out-of-range codes, a handler error that claims `OK`, statuses after stream messages (never
//!   ahead of the last one);
//! - deadlines: a deadline already past fails before reaching the server; deadlines years
//!   away; the time left the handler sees;
//! - cleanup: every way a call ends gives back its place under the server's call limit and
//!   stops its handler;
//! - interceptors: metadata added and removed on both sides; a refusal of every shape;
//! - lifecycle: unknown methods, a graceful shutdown under a bidirectional stream;
//! - cardinality: none or two requests to a one-request method, none or two answers to a
//!   one-answer caller, `UNIMPLEMENTED` as gRPC's status-code table says;
//! - sharing: concurrent server streams on one connection, streams read in part and dropped,
//!   an answer over the client's limit or undecodable on a held bidi stream, headers before
//!   any message;
//! - refused_requests: a request message over the server's limit (on the wire or inflated) or
//!   undecodable midway through a client or bidi stream still open: the client gets
//!   `RESOURCE_EXHAUSTED` or `INTERNAL`, the handler ends, its call slot comes back;
//! - closing: a channel closed while, or after, its server begins to shut down; a newcomer
//!   refused during the drain.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod cardinality;
mod cleanup;
mod closing;
mod deadlines;
mod interceptors;
mod lifecycle;
mod metadata;
mod refused_requests;
mod sharing;
mod status;
mod support;
