//! `RetryLayer`: which policy each method gets, and the throttle its calls share.

use super::{Retry, RetryPolicy, RetryThrottle};
use crate::attempts::PolicyTable;
use sockrpc_service::{Call, CloseSignal};
use std::sync::Arc;
use tower_layer::Layer;

/// Wraps a service in [`Retry`]. Every service it makes shares one [`RetryThrottle`], so use
/// one layer per server (per channel).
///
/// ```ignore
/// let channel = RetryLayer::new()
///     .method("/shop.Orders/Place", RetryPolicy::new(3).retryable([Code::Unavailable]))
///     .layer(channel);
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer {
    config: Arc<Config>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// By method, by service, the fallback; the cap and the throttle.
    pub(crate) table: PolicyTable<RetryPolicy>,
    /// For `NO_SIDE_EFFECTS` and `IDEMPOTENT` methods without one of their own (`None`: they
    /// are sent once, not given the fallback).
    idempotent: Option<Arc<RetryPolicy>>,
    /// The channel's close: ends a wait between two attempts ([`RetryLayer::close_signal`]).
    pub(crate) closing: Option<CloseSignal>,
}

impl Config {
    /// The policy for `call`, when it may be attempted more than once.
    pub(crate) fn policy_for(&self, call: &Call) -> Option<Arc<RetryPolicy>> {
        let by_level = call
            .idempotency()
            .is_retry_safe()
            .then_some(self.idempotent.as_ref());
        self.table.policy_for(call, by_level)
    }
}

impl Default for RetryLayer {
    fn default() -> RetryLayer {
        RetryLayer::new()
    }
}

impl RetryLayer {
    /// Retries by the `.proto`'s idempotency levels: [`RetryPolicy::default()`] for
    /// `NO_SIDE_EFFECTS` and `IDEMPOTENT` methods, [`RetryPolicy::not_processed_only()`] for
    /// the others; attempts capped at 5; a [`RetryThrottle::default()`] of its own (10 tokens,
    /// 0.1 per success).
    pub fn new() -> RetryLayer {
        RetryLayer {
            config: Arc::new(Config {
                table: PolicyTable::new(Some(RetryPolicy::not_processed_only())),
                idempotent: Some(Arc::new(RetryPolicy::default())),
                closing: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Sets the policy of one method, by its full path (`/package.Service/Method`). It wins
    /// over every other setting, whatever the method's idempotency level.
    pub fn method(mut self, path: impl Into<String>, policy: RetryPolicy) -> RetryLayer {
        self.config().table.set_method(path.into(), policy);
        self
    }

    /// Sets the policy of every method of a service (`package.Service`) that has none of its
    /// own.
    pub fn service(mut self, name: impl Into<String>, policy: RetryPolicy) -> RetryLayer {
        self.config().table.set_service(name.into(), policy);
        self
    }

    /// Sets the policy of `NO_SIDE_EFFECTS` and `IDEMPOTENT` methods without one of their own
    /// (`None`: they are not retried).
    pub fn idempotent_policy(mut self, policy: Option<RetryPolicy>) -> RetryLayer {
        self.config().idempotent = policy.map(Arc::new);
        self
    }

    /// Sets the policy of other methods without one of their own (`None`: not retried here at
    /// all). Listing a code here retries calls that may have run — only for methods you know
    /// are safe to run twice.
    pub fn fallback_policy(mut self, policy: Option<RetryPolicy>) -> RetryLayer {
        self.config().table.set_fallback(policy);
        self
    }

    /// Sets the throttle (`None`: retries are never throttled). Share one throttle between
    /// layers that talk to the same server.
    pub fn throttle(mut self, throttle: Option<RetryThrottle>) -> RetryLayer {
        self.config().table.throttle = throttle;
        self
    }

    /// Sets the most attempts any policy may make (default 5, gRFC A6's client-side cap, so
    /// a misconfigured policy cannot multiply load without bound).
    pub fn max_attempts_cap(mut self, cap: u32) -> RetryLayer {
        self.config().table.set_cap(cap);
        self
    }

    /// Ends a call's wait between two attempts when the channel below closes, rather than at
    /// its next attempt a backoff later: `CANCELLED` after `close_now`, `UNAVAILABLE`
    /// ("channel closed") after `close`. Pass the channel's own signal
    /// (`Channel::close_signal`, `Balanced::close_signal`: a balanced channel's, which a
    /// member leaving the set does not raise). Nothing is allocated per call for it.
    pub fn close_signal(mut self, signal: CloseSignal) -> RetryLayer {
        self.config().closing = Some(signal);
        self
    }

    /// The throttle the layer's services share.
    pub fn get_throttle(&self) -> Option<&RetryThrottle> {
        self.config.table.throttle.as_ref()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
