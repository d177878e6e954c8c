//! Whether a call may meet a channel's default timeout: a process-wide flag, so a generated
//! client's method (which cannot see the channel under the layers it calls) knows whether to
//! note a call's start for a timeout given below it, without a clock read when nothing can.

use sockrpc_transport::endpoint::Endpoint;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a channel with a default timeout (`Endpoint::timeout`) was ever made in this
/// process: only then does a generated client's method note a call's start without a timeout
/// of its own ([`Request::start_call`](sockrpc_protocol::Request::start_call)), so a call with no timeout anywhere reads no clock.
static DEFAULT_TIMEOUTS: AtomicBool = AtomicBool::new(false);

/// Notes a channel's endpoint: one with a default timeout sets the flag for good.
pub(crate) fn note(endpoint: &Endpoint) {
    if endpoint.timeout.is_some() && !DEFAULT_TIMEOUTS.load(Ordering::Relaxed) {
        DEFAULT_TIMEOUTS.store(true, Ordering::Relaxed);
    }
}

/// Whether a call may meet a channel's default timeout (see [`DEFAULT_TIMEOUTS`]).
pub(crate) fn default_timeouts() -> bool {
    DEFAULT_TIMEOUTS.load(Ordering::Relaxed)
}
