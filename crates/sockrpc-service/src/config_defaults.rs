//! `ConfigDefaults`: what a service config chose for a call that chose nothing itself, left in
//! the call's extensions for the channel to weigh against its endpoint's own defaults.
//!
//! Why not just set the call's timeout and wait-for-ready: the channel could then no longer
//! tell them from the caller's own choices, and the endpoint's defaults
//! (`Endpoint::timeout`, `Endpoint::wait_for_ready`) would lose to the config. In grpc-go the
//! channel's default call options win over the method config, and a deadline is the smallest
//! of all that apply.

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

    /// Whether a call that did not choose waits for a connection, given the endpoint's default.
    pub fn waits(defaults: Option<&ConfigDefaults>, endpoint_waits: bool) -> bool {
        endpoint_waits || defaults.and_then(|d| d.wait_for_ready).unwrap_or(false)
    }
}
