//! `ServiceConfigLayer`: a service config's method entries as the three layers that carry
//! them out — [`MethodDefaults`], [`Retry`] and [`Hedge`] — sharing its retry throttle.

use super::{MethodDefaults, MethodDefaultsLayer, ServiceConfig};
use crate::hedge::{Hedge, HedgeLayer, HedgingPolicy};
use crate::retry::{Retry, RetryLayer, RetryPolicy};
use std::time::Duration;
use tower_layer::Layer;

/// Wraps a channel (or any `Service<Call>`) in `MethodDefaults<Retry<Hedge<S>>>`, configured as
/// a service config says ([module docs](super)). One layer per channel: the calls of the
/// services it makes share one retry throttle.
#[derive(Debug, Clone)]
pub struct ServiceConfigLayer {
    defaults: MethodDefaultsLayer,
    retry: RetryLayer,
    hedge: HedgeLayer,
}

impl ServiceConfigLayer {
    /// The layers for `config`.
    pub fn new(config: &ServiceConfig) -> ServiceConfigLayer {
        // A method's own entry hides its service's and the default's, also when it has no
        // policy: one attempt (`new(1)`) is how the layers spell "none".
        let no_retry = || RetryPolicy::new(1);
        let no_hedge = || HedgingPolicy::new(1, Duration::ZERO);
        let throttle = config.retry_throttle();
        let mut retry = RetryLayer::new()
            .idempotent_policy(None)
            .fallback_policy(None)
            .throttle(throttle.clone());
        let mut hedge = HedgeLayer::methods_only().throttle(throttle);
        for (path, method) in &config.methods {
            retry = retry.method(path.clone(), method.retry.clone().unwrap_or_else(no_retry));
            hedge = hedge.method(
                path.clone(),
                method.hedging.clone().unwrap_or_else(no_hedge),
            );
        }
        for (service, method) in &config.services {
            retry = retry.service(
                service.clone(),
                method.retry.clone().unwrap_or_else(no_retry),
            );
            hedge = hedge.service(
                service.clone(),
                method.hedging.clone().unwrap_or_else(no_hedge),
            );
        }
        if let Some(method) = &config.default {
            retry = retry
                .idempotent_policy(method.retry.clone())
                .fallback_policy(method.retry.clone());
            hedge = hedge.fallback_policy(method.hedging.clone());
        }
        ServiceConfigLayer {
            defaults: MethodDefaultsLayer::new(config),
            retry,
            hedge,
        }
    }
}

impl<S> Layer<S> for ServiceConfigLayer {
    type Service = MethodDefaults<Retry<Hedge<S>>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.defaults
            .layer(self.retry.layer(self.hedge.layer(inner)))
    }
}
