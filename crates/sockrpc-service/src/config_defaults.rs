//! `ConfigDefaults`: what a service config chose for a call that chose nothing itself, left in
//! the call's extensions for the channel to weigh against its endpoint's own defaults.
//!
//! Why not just set the call's timeout and wait-for-ready: the channel could then no longer
//! tell them from the caller's own choices, and the endpoint's defaults
//! (`Endpoint::timeout`, `Endpoint::wait_for_ready`) would lose to the config. In grpc-go the
//! channel's default call options win over the method config, and a deadline is the smallest
//! of all that apply.

use sockrpc_protocol::Request;
use std::time::Duration;

/// A service config's defaults for one call (set by
/// `sockrpc_middleware::service_config::MethodDefaults`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigDefaults {
    /// The caller set no timeout of its own (its deadline is the config's, or a `grpc-timeout`
    /// entry's if shorter): the endpoint's `timeout`, when shorter, still bounds it, as it
    /// bounds such a call without a config. Per attempt: under retries or hedging each attempt
    /// is bounded by it afresh, the whole call by the config's timeout.
    pub endpoint_timeout_applies: bool,
    /// The config's `waitForReady`, for a call that did not choose: an endpoint whose
    /// `wait_for_ready` is set waits whatever the config says.
    pub wait_for_ready: Option<bool>,
}

impl ConfigDefaults {
    /// Defaults with the given fields.
    pub fn new(endpoint_timeout_applies: bool, wait_for_ready: Option<bool>) -> ConfigDefaults {
        ConfigDefaults {
            endpoint_timeout_applies,
            wait_for_ready,
        }
    }

    /// For a layer that times a whole call (retries, hedging, a balanced channel): moves a
    /// `grpc-timeout` entry into the request's timeout, unless a deadline is fixed
    /// ([`Request::resolve_timeout`]), and returns the timeout. When the entry gave it (the
    /// caller set none of its own), the call is marked
    /// ([`endpoint_timeout_applies`](ConfigDefaults::endpoint_timeout_applies)) so that the
    /// endpoint's default, when shorter, still bounds each attempt, as the channel bounds such
    /// a call when it reads the entry itself: below the layer the timeout could not be told
    /// from one the caller set (`tests/unary/deadline_entry_bounded.rs`).
    pub fn resolve_entry<T>(request: &mut Request<T>) -> Option<Duration> {
        if request.deadline().is_some() || request.timeout().is_some() {
            return request.timeout();
        }
        let timeout = request.resolve_timeout();
        if timeout.is_some() {
            let wait_for_ready = request
                .extensions()
                .get::<ConfigDefaults>()
                .and_then(|d| d.wait_for_ready);
            request
                .extensions_mut()
                .insert(ConfigDefaults::new(true, wait_for_ready));
        }
        timeout
    }

    /// Whether a call that did not choose waits for a connection, given the endpoint's default.
    pub fn waits(defaults: Option<&ConfigDefaults>, endpoint_waits: bool) -> bool {
        endpoint_waits || defaults.and_then(|d| d.wait_for_ready).unwrap_or(false)
    }
}
