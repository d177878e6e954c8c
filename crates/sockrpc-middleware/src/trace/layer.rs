//! `TraceLayer`: wraps a service in [`Trace`].

use super::{NoPropagation, Peer, Propagate, Side, Trace};
use sockrpc_service::{Channel, Endpoint};
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`Trace`]: one span per call, on the side this layer was made for.
///
/// ```ignore
/// // Server: around the router.
/// Server::builder().layer(TraceLayer::server()).add_service(..);
/// // Client: around the channel; the endpoint names the server in the span.
/// let client = GreeterClient::new(
///     ServiceBuilder::new().layer(TraceLayer::for_channel(&channel)).service(channel),
/// );
/// ```
#[derive(Debug, Clone)]
pub struct TraceLayer<P = NoPropagation> {
    side: Side,
    peer: Option<Arc<Peer>>,
    propagate: P,
}

impl TraceLayer {
    /// For a server: spans of kind `server`, with the peer's address and the call id.
    pub fn server() -> TraceLayer {
        TraceLayer {
            side: Side::Server,
            peer: None,
            propagate: NoPropagation,
        }
    }

    /// For a client whose server is not named in its spans; see
    /// [`for_endpoint`](TraceLayer::for_endpoint) and
    /// [`server_address`](TraceLayer::server_address).
    pub fn client() -> TraceLayer {
        TraceLayer {
            side: Side::Client,
            peer: None,
            propagate: NoPropagation,
        }
    }

    /// For a client of `endpoint`: its spans carry `server.address`, `server.port` and
    /// `network.transport` from it.
    pub fn for_endpoint(endpoint: &Endpoint) -> TraceLayer {
        TraceLayer::client().with_peer(Peer::from_endpoint(endpoint))
    }

    /// For a client of `channel`'s endpoint (see [`for_endpoint`](TraceLayer::for_endpoint)).
    pub fn for_channel(channel: &Channel) -> TraceLayer {
        TraceLayer::for_endpoint(channel.endpoint())
    }
}

impl<P> TraceLayer<P> {
    /// Names the server in client spans (`server.address`, and `server.port` when given).
    pub fn server_address(self, address: impl Into<String>, port: Option<u16>) -> TraceLayer<P> {
        self.with_peer(Peer {
            address: address.into(),
            port,
            transport: None,
        })
    }

    fn with_peer(mut self, peer: Peer) -> TraceLayer<P> {
        self.peer = Some(Arc::new(peer));
        self
    }

    /// Carries the trace across processes with `propagate`: a client injects its span's context
    /// into each call's metadata, a server parents its span on what it finds there.
    pub fn propagate<Q: Propagate>(self, propagate: Q) -> TraceLayer<Q> {
        TraceLayer {
            side: self.side,
            peer: self.peer,
            propagate,
        }
    }
}

impl<S, P: Clone> Layer<S> for TraceLayer<P> {
    type Service = Trace<S, P>;

    fn layer(&self, inner: S) -> Trace<S, P> {
        Trace {
            inner,
            side: self.side,
            peer: self.peer.clone(),
            propagate: self.propagate.clone(),
        }
    }
}
