//! sockrpc's tower layer: the router, the server and the client channel.
//!
//! # Layout
//! - [`Call`]: what services on both sides take — a method path and an encoded request.
//! - [`Router`]: path → service; unknown paths are `Unimplemented`.
//! - [`server`]: [`Server::builder()`](Server::builder), the accept loop and per-connection tasks.
//! - [`client`]: [`Channel`] (a `tower::Service<Call>`), [`Endpoint`], and [`Client`].
//! - [`unary_handler`]: decode → handler → encode, for generated servers.
//!
//! One call, end to end: generated stub → [`Client::unary`] → [`Channel`] →
//! `ClientConnection` (writes OPEN + MESSAGE) → socket → server connection task → [`Router`] →
//! generated server → your handler, and back as MESSAGE + END.

mod body;
mod call;
pub mod client;
mod handler;
mod router;
pub mod server;
mod streaming;
pub use sockrpc_transport::udp;

pub use body::{Body, Incoming};
pub use call::{BoxFuture, Call, CallFuture, NamedService, RouteService, RpcService};
pub use client::{Channel, Client, Endpoint, IntoEndpoint};
pub use handler::{
    client_streaming_handler, server_streaming_handler, streaming_handler, unary_handler,
};
pub use router::Router;
pub use server::{Server, ServerBuilder, ServerConfig};
pub use streaming::Streaming;
