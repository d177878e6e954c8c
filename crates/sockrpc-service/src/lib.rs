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
//! - [`unary_handler`]: decode → handler → encode, for generated servers.
//! - [`tls`] (the transport's) and [`tls_peer`]: TLS on the server builder and channels; the
//!   client's certificate inside a handler.
//!
//! One call, end to end: generated stub → [`Client::unary`] → [`Channel`] →
//! `ClientConnection` (writes OPEN + MESSAGE) → socket → the transport's server connection task
//! → [`Dispatcher`](server::Dispatcher) → middleware → [`Router`] → generated server → your
//! handler, and back as MESSAGE + END. `docs/ARCHITECTURE.md` names the files on the way.

mod body;
mod call;
pub mod client;
mod handler;
mod router;
pub mod server;
mod streaming;
pub use sockrpc_transport::tls;
pub use sockrpc_transport::udp;

pub use body::{Body, Incoming};
pub use call::{BoxFuture, Call, CallFuture, NamedService, RouteService, RpcService};
pub use client::{Channel, Client, Endpoint, IntoEndpoint};
pub use handler::{
    client_streaming_handler, server_streaming_handler, streaming_handler, tls_peer, unary_handler,
};
pub use router::Router;
pub use server::{Server, ServerBuilder, ServerConfig};
pub use streaming::Streaming;
