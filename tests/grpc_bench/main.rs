//! gRPC's benchmark shapes (`grpc.testing.BenchmarkService`, `sockrpc_interop::benchmark`) over
//! loopback: defects found by driving sockrpc the way gRPC's benchmark scenarios do, each proven
//! on behaviour (counts and status codes), never on speed.
//!
//! - empty answers: `StreamingFromServer` with `response_size` 0 to a reader slower than the
//!   server is paced by flow control, as HTTP/2 paces it, instead of failing the call once the
//!   client holds 131,072 unread messages;
//! - empty requests: a stream of empty requests to a handler that does not read them stops at
//!   the stream's window instead of taking the whole connection window from the other streams;
//! - the service itself: each method answers as gRPC's reference server does, and the
//!   unbounded streams stop with their client.

mod empty_flood;
mod empty_requests;
mod service;
mod support;
