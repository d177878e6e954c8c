//! gRPC's service config, from its JSON: per-method timeouts, wait-for-ready, retry and hedging
//! policies, retry throttling and the load-balancing policy, as grpc-go's
//! `WithDefaultServiceConfig` takes them.
//!
//! Why: teams moving from grpc-go or grpc-java keep their client behaviour in one JSON document
//! (often shipped beside the service, or in DNS TXT records). Reading that document as it is
//! means no hand translation into layers, and the same rules gRPC applies to it:
//!
//! ```text
//!  {"methodConfig": [{"name": [{"service": "shop.Orders", "method": "Get"}],
//!                     "timeout": "1.5s", "waitForReady": true,
//!                     "retryPolicy": {"maxAttempts": 4, "initialBackoff": "0.1s",
//!                                     "maxBackoff": "1s", "backoffMultiplier": 2,
//!                                     "retryableStatusCodes": ["UNAVAILABLE"]}}],
//!   "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
//!   "loadBalancingConfig": [{"round_robin": {}}]}
//!
//!  a call ──▶ MethodDefaults (timeout: the smaller of the call's and the config's;
//!             │                wait-for-ready unless the call chose; message size limits)
//!             ▼
//!            Retry (retryPolicy) ──▶ Hedge (hedgingPolicy) ──▶ the channel
//! ```
//!
//! Each call takes the entry naming its method, else the one naming its service, else the
//! default entry (`"name": [{}]`); entries do not merge, so a method's own entry without a
//! retry policy means no retries for it, whatever the default says (a call the server refused
//! unprocessed is still sent again by the channel, as in gRPC). Methods no entry covers get no
//! policy. The document is read as grpc-go reads it (`parse.rs`): what grpc-go refuses is
//! refused with the reason — a name twice, a method without its service, a malformed duration,
//! an integer given as a string (`"maxAttempts": "3"`: Go's JSON wants a number, though
//! protobuf's JSON mapping would take it), a `retryThrottling` with `maxTokens` outside
//! (0, 1000] or `tokenRatio` not above 0, a retry policy that breaks gRFC A6's rules (a field
//! missing, `maxAttempts` under 2, a backoff or multiplier not above 0, no codes, a status code
//! grpc-go does not know: names are upper case, as there, though A6 allows any case; grpc-go
//! refuses the config for these since 1.70, and earlier dropped the policy), no known
//! load-balancing policy. `maxAttempts` above 5 reads as 5, as there.
//! Unlike grpc-go, sockrpc hedges: a config written for grpc-go, which reads no
//! `hedgingPolicy`, hedges here the methods it names, so name only methods safe to run twice.
//! A `hedgingPolicy` that breaks A6's rules (or stands beside a `retryPolicy`) is logged and
//! left out rather than refusing the config: grpc-go takes any, and a config it takes is taken
//! here. Left as they are: `maxTokens` with a fraction is rounded up to whole tokens (grpc-go
//! keeps the fraction) and `tokenRatio` is rounded to three decimals (A6 says cut).
//!
//! The channel keeps the last word, as grpc-go's channel-wide call options do: an endpoint's
//! shorter `Endpoint::timeout` bounds a configured deadline, and its `Endpoint::wait_for_ready`
//! set true waits whatever the config says (`sockrpc_service::ConfigDefaults`).
//!
//! `maxRequestMessageBytes` and `maxResponseMessageBytes` bound each message of the calls an
//! entry covers: a request message over the limit fails its call `RESOURCE_EXHAUSTED` before
//! it is sent (and is not retried: grpc-go too checks before its retries), an answer message
//! over it fails the call `RESOURCE_EXHAUSTED` when it arrives. A client's own
//! `max_encoding_message_size` / `max_decoding_message_size` still apply (the smaller limit
//! wins), and so does the connection's message limit, which a config cannot raise. Unlike
//! grpc-go, a request is measured before compression, as the client's own limit is.
//!
//! - `parse.rs`: the JSON, checked as gRPC checks it.
//! - `defaults.rs`: [`MethodDefaults`], the timeout and wait-for-ready of each call.
//! - `layer.rs`: [`ServiceConfigLayer`], the three layers together.
//! - `dynamic.rs`: [`DynamicServiceConfigLayer`], the layers of a config that discovery (DNS
//!   TXT records) changes while the channel runs, over a default of the user's.

mod defaults;
mod dynamic;
mod layer;
mod parse;
#[cfg(test)]
mod tests;

pub use defaults::{MethodDefaults, MethodDefaultsLayer};
pub use dynamic::{DynamicServiceConfig, DynamicServiceConfigLayer};
pub use layer::ServiceConfigLayer;

use crate::hedge::HedgingPolicy;
use crate::retry::{RetryPolicy, RetryThrottle};
use sockrpc_service::balance::{BalanceBuilder, PickFirst, RoundRobin};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A parsed gRPC service config ([module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    methods: HashMap<String, Arc<MethodConfig>>,
    services: HashMap<String, Arc<MethodConfig>>,
    default: Option<Arc<MethodConfig>>,
    throttle: Option<(u32, f64)>,
    load_balancing: Option<LoadBalancing>,
}

/// One `methodConfig` entry: what the calls it names get.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MethodConfig {
    /// `timeout`: the longest a call may take (the smaller of this and the call's own).
    pub timeout: Option<Duration>,
    /// `waitForReady`: whether calls wait for a connection by default (the call's own choice,
    /// `Request::set_wait_for_ready`, wins).
    pub wait_for_ready: Option<bool>,
    /// `retryPolicy`, its attempts capped at 5 (one that breaks gRFC A6's rules refuses the
    /// config).
    pub retry: Option<RetryPolicy>,
    /// `hedgingPolicy`, its attempts capped at 5 (`None` too when the config's broke gRFC A6's
    /// rules: it is logged and left out).
    pub hedging: Option<HedgingPolicy>,
    /// `maxRequestMessageBytes`: the largest request message sent (before compression).
    pub max_request_message_bytes: Option<u64>,
    /// `maxResponseMessageBytes`: the largest answer message accepted (after decompression).
    pub max_response_message_bytes: Option<u64>,
}

/// The load-balancing policy a service config chose: the first entry of
/// `loadBalancingConfig` sockrpc knows (or the older `loadBalancingPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalancing {
    /// `pick_first`: [`PickFirst`].
    PickFirst,
    /// `round_robin`: [`RoundRobin`].
    RoundRobin,
}

/// A service config gRPC's rules refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfigError(String);

impl std::fmt::Display for ServiceConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid service config: {}", self.0)
    }
}

impl std::error::Error for ServiceConfigError {}

impl ServiceConfig {
    /// Parses a service config's JSON as grpc-go reads it ([module docs](self)); unknown fields
    /// are ignored.
    pub fn from_json(json: &str) -> Result<ServiceConfig, ServiceConfigError> {
        parse::service_config(json).map_err(ServiceConfigError)
    }

    /// The entry that applies to a call to `path` (`/package.Service/Method`): the one naming
    /// the method, else its service, else the default; `None` when no entry covers it.
    pub fn method_config(&self, path: &str) -> Option<&MethodConfig> {
        if let Some(config) = self.methods.get(path) {
            return Some(config);
        }
        let service = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .map(|(service, _)| service);
        service
            .and_then(|service| self.services.get(service))
            .or(self.default.as_ref())
            .map(|config| &**config)
    }

    /// `retryThrottling`: a throttle for the retries and hedges of one channel; `None` when the
    /// config has none. Each call makes a new throttle: share one per channel.
    pub fn retry_throttle(&self) -> Option<RetryThrottle> {
        self.throttle
            .map(|(tokens, ratio)| RetryThrottle::new(tokens, ratio))
    }

    /// The load-balancing policy the config chose, if any.
    pub fn load_balancing(&self) -> Option<LoadBalancing> {
        self.load_balancing
    }

    /// A balanced channel's builder with the config's picker (`round_robin`: [`RoundRobin`];
    /// `pick_first`, or no policy, as in grpc-go: [`PickFirst`]).
    pub fn balance_builder(&self) -> BalanceBuilder {
        let builder = BalanceBuilder::default();
        match self.load_balancing {
            Some(LoadBalancing::RoundRobin) => builder.picker(RoundRobin::new()),
            Some(LoadBalancing::PickFirst) | None => builder.picker(PickFirst::new()),
        }
    }

    /// The layer applying the config's method entries and throttling to a channel (one layer
    /// per channel: its calls share the throttle).
    pub fn layer(&self) -> ServiceConfigLayer {
        ServiceConfigLayer::new(self)
    }
}
