//! `HedgeLayer`: which methods are hedged, how, and the throttle their copies share.

use super::{Hedge, HedgingPolicy};
use crate::retry::RetryThrottle;
use sockrpc_service::Call;
use std::{collections::HashMap, sync::Arc};
use tower_layer::Layer;

/// Wraps a service in [`Hedge`]. Every service it makes shares one [`RetryThrottle`].
#[derive(Debug, Clone)]
pub struct HedgeLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    methods: HashMap<String, Arc<HedgingPolicy>>,
    no_side_effects: Option<Arc<HedgingPolicy>>,
    pub(crate) throttle: Option<RetryThrottle>,
    pub(crate) cap: u32,
}

impl Config {
    /// The policy for `call`, when more than one copy of it may be sent.
    pub(crate) fn policy_for(&self, call: &Call) -> Option<Arc<HedgingPolicy>> {
        let explicit = (!self.methods.is_empty())
            .then(|| self.methods.get(call.path()))
            .flatten();
        let policy = match explicit {
            Some(policy) => policy,
            None if call.idempotency().is_hedge_safe() => self.no_side_effects.as_ref()?,
            None => return None,
        };
        (policy.max_attempts.min(self.cap) > 1).then(|| Arc::clone(policy))
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
                methods: HashMap::new(),
                no_side_effects: Some(Arc::new(policy)),
                throttle: Some(RetryThrottle::default()),
                cap: 5,
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
        self.config().methods.insert(path.into(), Arc::new(policy));
        self
    }

    /// Sets the throttle (`None`: never throttled). Share it with the retry layer of the same
    /// server: A6 throttles retries and hedges together.
    pub fn throttle(mut self, throttle: Option<RetryThrottle>) -> HedgeLayer {
        self.config().throttle = throttle;
        self
    }

    /// Sets the most copies any policy may send (default 5).
    pub fn max_attempts_cap(mut self, cap: u32) -> HedgeLayer {
        self.config().cap = cap.max(1);
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
