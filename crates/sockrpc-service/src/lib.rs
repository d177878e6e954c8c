//! sockrpc's tower layer: the router, the server and the client channel.
//!
//! # Layout
//! - [`Call`] and [`Body`]: what services on both sides take — a method path and an encoded
//!   request.
//! - [`Router`]: path → service; unknown paths are `Unimplemented`. It also answers TCP
//!   re-issues of truncated UDP calls from the reply cache.
//! - [`server`]: [`Server::builder()`](Server::builder) and
//!   [`Dispatcher`](server::Dispatcher), the transport's `Dispatch` over the layered router. The
//!   accept loop and the connection tasks live in `sockrpc_transport::server`.
//! - [`client`]: [`Channel`] (a `tower::Service<Call>` over the transport's connection pool),
//!   [`Client`], and [`Endpoint`] (re-exported from the transport).
//! - [`balance`] and [`discovery`]: one channel over many servers (p2c on peak-EWMA load,
//!   round robin, a consistent hash ring; static, DNS and etcd discovery; health checking).
//! - [`unary_handler`]: decode → handler → encode, for generated servers.
//! - [`tls`] (the transport's): TLS on the server builder and channels; the client's
//!   certificate in `request.conn_info()`.
//! - [`compression`]: per-message gzip, deflate and zstd, negotiated per call, and the
//!   send/receive message limits ([`MessageSettings`](compression::MessageSettings)).
//! - [`ReadyQueue`]: what a server does with a call when a layer is not ready (wait, bounded,
//!   then shed with a [`Pushback`] hint).
//! - [`Idempotency`] and [`RpcMethod`]: what generated clients tell middleware about a method.
//! - [`status_from_error`]: tower's errors (`Elapsed`, `Overloaded`, ...) as a [`Status`](sockrpc_protocol::Status).
//!
//! One call, end to end: generated stub → [`Client::unary`] → [`Channel`] →
//! `ClientConnection` (writes OPEN + MESSAGE) → socket → the transport's server connection task
//! → [`Dispatcher`](server::Dispatcher) → middleware → [`Router`] → generated server → your
//! handler, and back as MESSAGE + END. `docs/ARCHITECTURE.md` names the files on the way.

pub mod balance;
mod body;
mod body_transport;
mod call;
pub mod client;
pub mod compression;
mod config_defaults;
pub mod discovery;
mod error;
mod handler;
mod method;
mod pushback;
mod ready;
mod router;
mod routes;
pub mod server;
mod streaming;
pub use sockrpc_transport::pool::{CloseSignal, CloseTrigger, Closing};
pub use sockrpc_transport::tls;
pub use sockrpc_transport::udp;

pub use body::{Body, Incoming};
pub use call::{
    deadline_passed, BoxFuture, Call, CallFuture, ClientService, NamedService, RouteService,
    RpcService,
};
pub use client::{Channel, Client, Endpoint, EndpointExt, IntoEndpoint};
pub use config_defaults::ConfigDefaults;
pub use error::{status_from_error, BoxError};
pub use handler::{
    client_streaming_handler, server_streaming_handler, streaming_handler, unary_handler,
};
pub use method::{Idempotency, RpcMethod};
pub use pushback::{Pushback, PREVIOUS_ATTEMPTS_KEY, RETRY_PUSHBACK_KEY};
pub use ready::{call_future, IntoCallResponse, ReadyQueue};
pub use router::Router;
pub use routes::{Routes, RoutesBuilder};
pub use server::{Server, ServerBuilder, ServerConfig};
pub use streaming::{BoxStream, Streaming};
