//! sockrpc's transport: sockets, framing, and both ends of a multiplexed connection.
//!
//! # Layout
//! - [`socket`]: [`SocketConfig`] and socket creation through socket2; options read back live.
//! - [`codec`]: [`FrameDecoder`], a tokio-util decoder that checks every size first.
//! - [`flow`]: per-call flow control for streams (window, credit).
//! - [`outbox`]: [`Outbox`], the shared write buffer that coalesces frames from many calls.
//! - [`reader`]: [`FrameReader`], the read buffer and decoder both ends share.
//! - [`client`]: [`ClientConnection`], many calls multiplexed over one stream.
//! - [`server`]: the accept loop and the server's connection task; calls go up through
//!   [`Dispatch`].
//! - [`dispatch`]: [`Dispatch`], the one shape in which TCP, Unix and UDP hand calls to the
//!   service layer.
//! - [`ending`]: the code a call ended with, for what watches its future and sees it dropped
//!   (a panic, a deadline, an answer over the limit: not the caller's cancel).
//! - [`pool`], [`endpoint`], [`backoff`]: N connections to one endpoint, kept up with gRPC's
//!   reconnect backoff.
//! - [`udp`]: small unary calls over UDP, client and server, with at-most-once execution.
//! - [`unix`]: Unix domain sockets, with safe handling of stale socket files.
//! - [`unix_abstract`]: Linux abstract Unix sockets (gRPC's `unix-abstract:NAME`), by name.
//! - `timer` (private): one timer per connection task, for the deadlines both ends keep.
//! - `log_limit` (private): a server's WARN budget for what a peer can make it log over and
//!   over (protocol errors, timeouts, refusals).
//! - [`tls`]: TLS 1.3/1.2 and mutual TLS on TCP and Unix connections (rustls, feature `tls`,
//!   on by default), with server certificates and client CAs that rotate while serving.
//!
//! Connections are generic over `AsyncRead + AsyncWrite`: TCP, Unix sockets and an in-memory
//! duplex share all of this code.

mod attempt;
pub mod backoff;
pub mod client;
pub mod codec;
pub mod dispatch;
pub mod ending;
pub mod endpoint;
mod endpoint_tonic;
mod endpoint_unix;
pub mod flow;
mod log_limit;
mod notice;
pub mod outbox;
mod panic;
mod pieces;
pub mod pool;
pub mod reader;
mod readiness;
mod region;
pub mod server;
pub mod socket;
#[cfg(test)]
mod test_runtime;
mod timer;
pub mod tls;
mod turns;
pub mod udp;
pub mod unix;
pub mod unix_abstract;
pub mod unix_io;
#[cfg(test)]
mod wake_count;

pub use client::{
    ClientConnection, ConnectionOptions, Keepalive, ResponseFuture, RoomFuture, RoomPass,
    StreamReceiver, StreamSender,
};
pub use codec::{DecodeError, FrameDecoder};
pub use dispatch::{
    Dispatch, DispatchFuture, IncomingCall, OutboundBody, Replay, RequestBody, TransportKind,
    CALL_ID_FIELD,
};
pub use endpoint::{Endpoint, IntoEndpoint, UdpPolicy};
pub use outbox::Outbox;
pub use reader::FrameReader;
pub use server::{PingPolicy, ServerConfig};
pub use socket::{
    bind_tcp, connect_tcp, raise_recv_buffer, SocketConfig, SocketOptions, UDP_RECV_BUFFER,
};
pub use timer::deadline_after;
pub use unix::{bind_unix, connect_unix, UnixSocketFile};
pub use unix_abstract::{abstract_name, bind_unix_abstract, connect_unix_abstract};
pub use unix_io::UnixIo;
