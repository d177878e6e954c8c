//! Issue 12, what a tonic user expects to find: per-message compression, limits and codegen
//! options, over loopback TCP.
//!
//! - matrix: the four call shapes in every combination of client and server encodings, with
//!   the COMPRESSED flag read off the wire by a proxy;
//! - refusals: an encoding the server does not accept (`UNIMPLEMENTED`), a corrupt body
//!   (`INTERNAL`), a zip bomb (`RESOURCE_EXHAUSTED`), and a client of the previous version
//!   that never receives a compressed message;
//! - learned_encodings: a refusal's `grpc-accept-encoding` list is what the client learns the
//!   server reads; an `UNIMPLEMENTED` with no list (a missing method) leaves compression on;
//! - disable_compression: tonic's `Response::disable_compression` sends one answer plain;
//! - limits: send and receive limits, separate on both sides, and the status message cap;
//! - response_encoding: an answer's `grpc-encoding` metadata names the encoding it is
//!   compressed with, as tonic's compression suite reads it;
//! - stubs: a server generated with default stubs answers what it does not implement
//!   `UNIMPLEMENTED`, with the well-known types compiled into the output;
//! - status_details: `Status::details()` is tonic's `&[u8]`, decoded in place;
//! - dyn_service: a generated server trait served as a trait object;
//! - paths: a compression switch turned off mid-stream, and UDP calls, go plain;
//! - api: the rest of tonic's public API a ported test touches (typed metadata values, code
//!   and status constructors, addresses, `transport::{Server, Channel, Endpoint}` with tonic's
//!   builder names, `service::interceptor`, `serve_unix`);
//! - keep_alive: tonic's `http2_keep_alive_interval`, `keep_alive_timeout` and
//!   `keep_alive_while_idle` on an `Endpoint` fail calls, and idle connections, whose PONGs
//!   stop coming;
//! - local_address: `Endpoint::local_address` is the address the server sees the call from;
//! - concurrency_limit, rate_limit: tonic's channel limits, shared by a channel's clones;
//! - tls_config: tonic's `tls_config` on both ends sets up TLS, and refuses what rustls cannot
//!   use at once;
//! - status_display: `Status`'s `Display` is tonic's;
//! - sensitive: metadata values marked sensitive print as `Sensitive` and are sent as before;
//! - metadata_forms: tonic's metadata setters and getters as tonic's tests write them
//!   (`"v".parse().unwrap()`, `.get(k).unwrap().to_str().unwrap()`), across a call both ways;
//! - ported_names: `server::NamedService` (naming a service to the health reporter),
//!   `codec::CompressionEncoding` and `Channel::balance_list`, at tonic's paths;
//! - keepalive_forms: tonic's `http2_keep_alive.rs` in tonic's forms (server and channel);
//! - huge_durations: every duration setter, server and `Endpoint`, takes `Duration::MAX`;
//! - decoded_limit: tonic's `limit_decoded_message_size`, compressed requests held to a
//!   decoded-size limit, per encoding;
//! - health, reflection: tonic-health's and tonic-reflection's own tests, with their builder
//!   and reporter names;
//! - default_stubs: tonic's `default_stubs` crate's tests, over TCP and Unix sockets.
//!
//! `COVERAGE.md` maps every test of tonic's suites to the sockrpc test that covers it.
//!
//! Every loop is bounded in count and every wait in time; nothing asserts speed.

mod api;
mod concurrency_limit;
mod decoded_limit;
mod default_stubs;
mod disable_compression;
mod dyn_service;
mod forwarded;
mod health;
mod huge_durations;
mod keep_alive;
mod keepalive_forms;
mod learned_encodings;
mod limits;
mod local_address;
mod matrix;
mod metadata_forms;
mod paths;
mod ported_names;
mod rate_limit;
mod reflection;
mod refusals;
mod response_encoding;
mod sensitive;
mod status_details;
mod status_display;
mod stubs;
mod support;
mod tls_config;
