//! sockrpc's transport: sockets, framing and multiplexed connections.
//!
//! # Layout
//! - [`socket`]: [`SocketConfig`] and socket creation through socket2; options read back live.
//! - [`codec`]: [`FrameDecoder`], a tokio-util decoder that checks every size first.
//! - [`flow`]: per-call flow control for streams (window, credit).
//! - [`outbox`]: [`Outbox`], the shared write buffer that coalesces frames from many calls.
//! - [`client`]: [`ClientConnection`], many calls multiplexed over one stream.
//! - [`unix`]: Unix domain sockets, with safe handling of stale socket files.
//!
//! Connections are generic over `AsyncRead + AsyncWrite`: TCP, Unix sockets and an in-memory
//! duplex share all of this code.

pub mod client;
pub mod codec;
pub mod flow;
pub mod outbox;
pub mod socket;
pub mod unix;

pub use client::{
    ClientConnection, ConnectionOptions, Keepalive, ResponseFuture, StreamReceiver, StreamSender,
};
pub use codec::{DecodeError, FrameDecoder};
pub use outbox::Outbox;
pub use socket::{bind_tcp, connect_tcp, SocketConfig, SocketOptions};
pub use unix::{bind_unix, connect_unix};
