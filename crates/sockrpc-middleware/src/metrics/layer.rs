//! `MetricsLayer`: wraps a service in [`Metrics`].

use super::handles::{Registry, DEFAULT_MAX_METHODS};
use super::Metrics;
use crate::Side;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`Metrics`]. Every service it wraps shares one cache of handles.
///
/// ```ignore
/// Server::builder().layer(TraceLayer::server()).layer(MetricsLayer::server()).add_service(..);
/// GreeterClient::new(ServiceBuilder::new().layer(MetricsLayer::client()).service(channel));
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    registry: Arc<Registry>,
}

impl MetricsLayer {
    /// Records a server's metrics (`rpc.server.…`).
    pub fn server() -> MetricsLayer {
        MetricsLayer::new(Side::Server)
    }

    /// Records a client's metrics (`rpc.client.…`).
    pub fn client() -> MetricsLayer {
        MetricsLayer::new(Side::Client)
    }

    /// Records `side`'s metrics.
    pub fn new(side: Side) -> MetricsLayer {
        MetricsLayer {
            registry: Arc::new(Registry::new(side, DEFAULT_MAX_METHODS)),
        }
    }

    /// Sets how many distinct method paths get series of their own (default
    /// [`DEFAULT_MAX_METHODS`]); calls to further paths are counted under `_OTHER`. On a
    /// server the paths come from peers, so this bounds what a peer can make the recorder hold.
    /// Of these places, paths no call of which has yet ended `OK` take at most
    /// [`DEFAULT_MAX_UNCONFIRMED`](super::handles::DEFAULT_MAX_UNCONFIRMED), so made-up paths
    /// cannot take those of the methods served.
    pub fn max_methods(self, max: usize) -> MetricsLayer {
        MetricsLayer {
            registry: Arc::new(Registry::new(self.registry.side(), max)),
        }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Metrics<S> {
        Metrics {
            inner,
            registry: Arc::clone(&self.registry),
            last: None,
        }
    }
}
