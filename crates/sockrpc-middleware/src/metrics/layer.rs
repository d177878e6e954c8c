//! `MetricsLayer`: wraps a service in [`Metrics`].

use super::handles::{Registry, DEFAULT_MAX_METHODS};
use super::names::MetricNames;
use super::scheme::Scheme;
use super::Metrics;
use crate::Side;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps services in [`Metrics`]. Every service it wraps shares one cache of handles.
///
/// ```ignore
/// Server::builder().layer(TraceLayer::server()).layer(MetricsLayer::server()).add_service(..);
/// GreeterClient::new(ServiceBuilder::new().layer(MetricsLayer::client()).service(channel));
/// // gRPC's names (gRFC A66), for dashboards built on grpc-go's, grpc-java's or C++'s:
/// MetricsLayer::server().names(MetricNames::GrpcA66);
/// MetricsLayer::client().names(MetricNames::GrpcA66).target("dns:///greeter:50051");
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    side: Side,
    max_methods: usize,
    names: MetricNames,
    target: Option<String>,
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
            side,
            max_methods: DEFAULT_MAX_METHODS,
            names: MetricNames::default(),
            target: None,
            registry: Arc::new(Registry::new(
                side,
                DEFAULT_MAX_METHODS,
                Scheme::new(side, MetricNames::default(), None),
            )),
        }
    }

    /// A layer of the settings now, with a cache of its own (the handles it registered are
    /// of the old settings).
    fn rebuilt(mut self) -> MetricsLayer {
        let scheme = Scheme::new(self.side, self.names, self.target.clone());
        self.registry = Arc::new(Registry::new(self.side, self.max_methods, scheme));
        self
    }

    /// Sets how many distinct method paths get series of their own (default
    /// [`DEFAULT_MAX_METHODS`]); calls to further paths are counted under `_OTHER` (under
    /// [`MetricNames::GrpcA66`], `grpc.method="other"`). On a server the paths come from peers,
    /// so this bounds what a peer can make the recorder hold.
    /// Of these places, paths no call of which has yet ended `OK` take at most
    /// [`DEFAULT_MAX_UNCONFIRMED`](super::handles::DEFAULT_MAX_UNCONFIRMED), so made-up paths
    /// cannot take those of the methods served.
    pub fn max_methods(mut self, max: usize) -> MetricsLayer {
        self.max_methods = max;
        self.rebuilt()
    }

    /// Records under `names`: OpenTelemetry's RPC conventions (the default) or gRPC's own,
    /// gRFC A66's (see the [module docs](super) for what each records).
    pub fn names(mut self, names: MetricNames) -> MetricsLayer {
        self.names = names;
        self.rebuilt()
    }

    /// The channel's target, as `grpc.target` on a client's [`MetricNames::GrpcA66`] metrics:
    /// give it in gRPC's canonical form, with its scheme (`dns:///greeter:50051`). Without one
    /// the label is left out. A server, and OpenTelemetry's names, ignore it. Each distinct
    /// target is a series of every metric: name a few, not every address a client dials.
    pub fn target(mut self, target: impl Into<String>) -> MetricsLayer {
        self.target = Some(target.into());
        self.rebuilt()
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
