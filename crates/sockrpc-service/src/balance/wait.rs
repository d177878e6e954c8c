//! How long a balanced call waits for a usable endpoint, and until when.
//!
//! A call's own choices (wait-for-ready, its deadline) come first; what it did not say comes
//! from a service config's defaults, then from the endpoints' own (`Endpoint::wait_for_ready`,
//! `Endpoint::timeout`), and a fail-fast call never waits past
//! `BalanceBuilder::wait_for_endpoint`.

use super::member::Member;
use crate::config_defaults::ConfigDefaults;
use std::sync::Arc;
use tokio::time::Instant;

/// How long a call waits for a usable endpoint.
#[derive(Clone, Copy)]
pub(super) struct Wait {
    /// The call's own wait-for-ready choice, else the builder's; `None`: the endpoints' default.
    pub(super) for_ready: Option<bool>,
    /// What a service config chose for the call ([`ConfigDefaults`]).
    pub(super) config: Option<ConfigDefaults>,
    /// When the call started: its method's noted start, else when this channel took it.
    pub(super) started: Instant,
    /// The call's own deadline (its timeout, or a `grpc-timeout` entry).
    pub(super) deadline: Option<Instant>,
    /// The longest a fail-fast call waits (`BalanceBuilder::wait_for_endpoint`).
    pub(super) cap: Instant,
}

/// How a call waits for a usable endpoint ([`Wait::resolve`]).
pub(super) struct Resolved {
    /// Whether it waits through failures.
    pub(super) for_ready: bool,
    /// Until when it waits (`None`: until an endpoint is usable).
    pub(super) until: Option<Instant>,
    /// Its deadline: when it passes, the call fails `DEADLINE_EXCEEDED`, fail-fast or not.
    pub(super) deadline: Option<Instant>,
}

impl Wait {
    /// Whether the call waits through failures, and until when (`None`: until an endpoint is
    /// usable), given the endpoints now: their `Endpoint::wait_for_ready` and
    /// `Endpoint::timeout` stand in for what the call did not say (the first endpoint's:
    /// discovery makes them from one template).
    pub(super) fn resolve(&self, list: &[Arc<Member>]) -> Resolved {
        let endpoint = list.first().map(|m| m.endpoint());
        let for_ready = self.for_ready.unwrap_or_else(|| {
            ConfigDefaults::waits(
                self.config.as_ref(),
                endpoint.is_some_and(|e| e.wait_for_ready),
            )
        });
        let deadline = endpoint.map_or(self.deadline, |e| self.deadline_for(e));
        let until = if for_ready {
            deadline
        } else {
            Some(deadline.map_or(self.cap, |d| d.min(self.cap)))
        };
        Resolved {
            for_ready,
            until,
            deadline,
        }
    }

    /// The call's deadline on `endpoint`: its own, else the endpoint's `timeout` from when the
    /// call began; one a service config set is still bounded by the endpoint's.
    pub(super) fn deadline_for(
        &self,
        endpoint: &sockrpc_transport::endpoint::Endpoint,
    ) -> Option<Instant> {
        let default = endpoint.timeout.map(|timeout| self.started + timeout);
        match (self.deadline, default) {
            (Some(own), Some(default))
                if self.config.is_some_and(|c| c.endpoint_timeout_applies) =>
            {
                Some(own.min(default))
            }
            (Some(own), _) => Some(own),
            (None, default) => default,
        }
    }
}
