//! grpc-java's transport contract, `AbstractTransportTest` (io.grpc.internal: the cases every
//! grpc-java transport must pass), ported to sockrpc's own transport over loopback TCP: the
//! client is a bare `ClientConnection`, the server the transport's `serve` with a `Dispatch`
//! that hands each call to the test, so that the test plays the handler frame by frame as the
//! Java suite plays `ServerStream`. Cases that have no meaning on sockrpc's wire protocol
//! (HTTP/2 authority, tracers, `shutdownNow` on a client, transport pings) are listed in the
//! session's report, not here. One group per file:
//!
//! - lifecycle: start, stop, shutdown with an open stream, new streams after shutdown,
//!   addresses, a server that closes during the handshake;
//! - streams: a basic stream, zero messages, early server closes, in-flight accounting, many
//!   streams in sequence on one connection;
//! - cancel: client and server cancellation, and what each side may still do afterwards;
//! - flow: push back both ways, a message larger than the window, the producer pulled only as
//!   credit allows;
//! - metadata: metadata over the receiver's limit, each way, and just under it;
//! - interop: grpc-java's `AbstractInteropTest` cases that `sockrpc-interop` does not run
//!   (half- and full-duplex calls, very large messages, deadlines, exact message limits),
//!   against the interop server.
//!
//! Every wait is bounded (`support::bounded`) and nothing asserts speed.

mod cancel;
mod flow;
mod interop;
mod lifecycle;
mod metadata;
mod races;
mod streams;
mod support;
