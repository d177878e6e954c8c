//! `Once`: what a call the retry or hedging layer sends a single time tells the throttle.
//!
//! gRFC A6 throttles per server, not per method: every call to it counts its success, and
//! every failed attempt that speaks of the server's health counts against it, also on a
//! method without a policy (grpc-go consults its throttle in `shouldRetry` for any call on a
//! channel that has one). So a call sent once is still watched, at the cost of nothing but the
//! throttle's handle on its way and one look at its answer.

use super::count::count_failure;
use crate::retry::{CodeSet, RetryThrottle};
use sockrpc_protocol::{Response, Status};
use sockrpc_service::Body;

/// How a call sent once is counted on the throttle.
#[derive(Debug)]
pub(crate) struct Once {
    throttle: RetryThrottle,
    /// Its success counts here: no layer above counts it on the same throttle.
    success: bool,
    /// The codes its method's policy lists, when it has one but the request is a stream the
    /// layer cannot send again; none without a policy (then only a pushback counts).
    listed: CodeSet,
}

impl Once {
    /// How a call sent once is counted on `throttle` (`None` without one): its success unless
    /// `counted_above`, a failure whatever layer is above (the failure's mark keeps it once).
    pub(crate) fn new(
        throttle: Option<&RetryThrottle>,
        counted_above: bool,
        listed: CodeSet,
    ) -> Option<Once> {
        throttle.map(|throttle| Once {
            throttle: throttle.clone(),
            success: !counted_above,
            listed,
        })
    }

    /// Counts the call's answer: a success once it ends OK (`RetryThrottle::count_success`),
    /// a failure by [`count_failure`]'s rule.
    pub(crate) fn settle(self, result: &mut Result<Response<Body>, Status>) {
        match result {
            Ok(response) if self.success => self.throttle.count_success(response),
            Ok(_) => {}
            Err(status) => {
                let listed = self.listed.contains(status.code());
                count_failure(Some(&self.throttle), status, listed);
            }
        }
    }
}
