//! `PolicyTable`: the policy a call gets under the retry or the hedging layer, by its method,
//! its service, its idempotency level or the fallback, and the cap and throttle over them.

use crate::retry::RetryThrottle;
use sockrpc_service::Call;
use std::{collections::HashMap, sync::Arc};

/// A policy that allows a number of attempts of one call (the first included).
pub(crate) trait AttemptPolicy {
    /// The most attempts the policy asks for, before the layer's cap.
    fn max_attempts(&self) -> u32;
}

/// The policies of one layer and the limits over all of them.
#[derive(Debug)]
pub(crate) struct PolicyTable<P> {
    /// By full method path (`/package.Service/Method`): wins over everything else.
    methods: HashMap<String, Arc<P>>,
    /// By service (`package.Service`), for its methods without one of their own.
    services: HashMap<String, Arc<P>>,
    /// For a call that has none by name and that the layer's idempotency rule does not cover.
    fallback: Option<Arc<P>>,
    /// Asked before every attempt after the first; told of successes and of failures.
    pub(crate) throttle: Option<RetryThrottle>,
    /// The most attempts any policy may make (at least 1).
    pub(crate) cap: u32,
}

// By hand: a derived `Clone` would ask `P: Clone`, and only `Arc`s of it are cloned.
impl<P> Clone for PolicyTable<P> {
    fn clone(&self) -> PolicyTable<P> {
        PolicyTable {
            methods: self.methods.clone(),
            services: self.services.clone(),
            fallback: self.fallback.clone(),
            throttle: self.throttle.clone(),
            cap: self.cap,
        }
    }
}

impl<P: AttemptPolicy> PolicyTable<P> {
    /// No policy by name, `fallback` for the others, at most 5 attempts (gRFC A6's client-side
    /// cap) and a [`RetryThrottle::default()`] of the table's own.
    pub(crate) fn new(fallback: Option<P>) -> PolicyTable<P> {
        PolicyTable {
            methods: HashMap::new(),
            services: HashMap::new(),
            fallback: fallback.map(Arc::new),
            throttle: Some(RetryThrottle::default()),
            cap: 5,
        }
    }

    /// Sets the policy of the method at `path`.
    pub(crate) fn set_method(&mut self, path: String, policy: P) {
        self.methods.insert(path, Arc::new(policy));
    }

    /// Sets the policy of the service `name`'s methods.
    pub(crate) fn set_service(&mut self, name: String, policy: P) {
        self.services.insert(name, Arc::new(policy));
    }

    /// Sets the fallback (`None`: those calls are sent once).
    pub(crate) fn set_fallback(&mut self, policy: Option<P>) {
        self.fallback = policy.map(Arc::new);
    }

    /// Sets the cap on attempts (at least 1).
    pub(crate) fn set_cap(&mut self, cap: u32) {
        self.cap = cap.max(1);
    }

    /// The policy for `call`, when it may be sent more than once. `by_level` is what the
    /// layer's idempotency rule says of the call: `None` when the rule does not cover it (it
    /// gets the fallback), `Some(policy)` when it does (`Some(None)`: sent once). A policy set
    /// by method or service wins over both; the maps are not hashed into while empty.
    pub(crate) fn policy_for(
        &self,
        call: &Call,
        by_level: Option<Option<&Arc<P>>>,
    ) -> Option<Arc<P>> {
        let explicit = (!self.methods.is_empty())
            .then(|| self.methods.get(call.path()))
            .flatten()
            .or_else(|| {
                (!self.services.is_empty())
                    .then(|| self.services.get(call.service()))
                    .flatten()
            });
        let policy = match (explicit, by_level) {
            (Some(policy), _) => policy,
            (None, Some(by_level)) => by_level?,
            (None, None) => self.fallback.as_ref()?,
        };
        (policy.max_attempts().min(self.cap) > 1).then(|| Arc::clone(policy))
    }
}
