//! Control signals are protocol fields that only the framework sets, never user metadata:
//!
//! - "not processed" (END's `NOT_PROCESSED` flag) is set only by a server connection that
//!   refused a call unstarted: a handler returning `Status::not_processed` sends a plain
//!   `UNAVAILABLE` that the client never re-sends, while a draining server's refusal still
//!   reaches the client as `is_not_processed()` and is retried on another connection;
//! - the `sockrpc-` metadata prefix is reserved: refused on insert, dropped off the wire, so a
//!   raw OPEN carrying `sockrpc-not-processed` or `sockrpc-udp-reissue` is an ordinary call;
//! - a TCP re-issue of a UDP call (OPEN's `REISSUE` field) passes every middleware layer (auth
//!   included), must name the method the UDP call ran, and needs a server that serves UDP.
//!
//! Real sockets on 127.0.0.1, port 0; raw frames are written and read by hand here, byte by
//! byte as `docs/PROTOCOL.md` lays them out. Every wait is bounded.

mod not_processed;
mod reissue;
mod reserved;
mod support;
