//! `HedgeLayer`: which methods are hedged, how, and the throttle their copies share.

use super::{Hedge, HedgingPolicy};
use crate::attempts::PolicyTable;
use crate::retry::RetryThrottle;
use sockrpc_service::Call;
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps a service in [`Hedge`]. Every service it makes shares one [`RetryThrottle`].
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// By method, by service, the fallback; the cap and the throttle.
    pub(crate) table: PolicyTable<HedgingPolicy>,
    /// For `NO_SIDE_EFFECTS` methods without one of their own (`None`: no such rule, they get
    /// the fallback).
    no_side_effects: Option<Arc<HedgingPolicy>>,
}

impl Config {
    /// The policy for `call`, when more than one copy of it may be sent.
    pub(crate) fn policy_for(&self, call: &Call) -> Option<Arc<HedgingPolicy>> {
        let by_level = self
            .no_side_effects
            .as_ref()
            .filter(|_| call.idempotency().is_hedge_safe());
        self.table.policy_for(call, by_level.map(Some))
    }
}

impl HedgeLayer {
    /// Hedges every call to a method the `.proto` marks `NO_SIDE_EFFECTS` (the only level
    /// that makes running two copies at once harmless) with `policy`; other methods pass
    /// through. Copies are capped at 5 and throttled by a [`RetryThrottle::default()`] of the
    /// layer's own.
    pub fn new(policy: HedgingPolicy) -> HedgeLayer {
        HedgeLayer {
            config: Arc::new(Config {
                table: PolicyTable::new(None),
                no_side_effects: Some(Arc::new(policy)),
            }),
        }
    }

    /// A layer that hedges only the methods named with [`method`](HedgeLayer::method).
    pub fn methods_only() -> HedgeLayer {
        let mut layer = HedgeLayer::new(HedgingPolicy::new(1, std::time::Duration::ZERO));
        layer.config().no_side_effects = None;
        layer
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Hedges one method, by its full path, with `policy` — whatever its idempotency level:
    /// name only methods that are safe to run several times at once.
    pub fn method(mut self, path: impl Into<String>, policy: HedgingPolicy) -> HedgeLayer {
        self.config().table.set_method(path.into(), policy);
        self
    }

    /// Hedges every method of one service (`package.Service`) with `policy`, unless the method
    /// has a policy of its own; name only services whose methods are safe to run several times
    /// at once.
    pub fn service(mut self, name: impl Into<String>, policy: HedgingPolicy) -> HedgeLayer {
        self.config().table.set_service(name.into(), policy);
        self
    }

    /// Hedges every method that has no policy of its own, by name or service, and that the
    /// idempotency rule of [`new`](HedgeLayer::new) does not cover, with `policy` (`None`:
    /// they pass through); a service config's default entry.
    pub fn fallback_policy(mut self, policy: Option<HedgingPolicy>) -> HedgeLayer {
        self.config().table.set_fallback(policy);
        self
    }

    /// Sets the throttle (`None`: never throttled). Share it with the retry layer of the same
    /// server: A6 throttles retries and hedges together.
    pub fn throttle(mut self, throttle: Option<RetryThrottle>) -> HedgeLayer {
        self.config().table.throttle = throttle;
        self
    }

    /// Sets the most copies any policy may send (default 5).
    pub fn max_attempts_cap(mut self, cap: u32) -> HedgeLayer {
        self.config().table.set_cap(cap);
        self
    }
}

impl<S> Layer<S> for HedgeLayer {
    type Service = Hedge<S>;

    fn layer(&self, inner: S) -> Hedge<S> {
        Hedge {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
