//! Hedging: for methods that only read, send a second copy of a call when the first is slow,
//! take whichever answers first, and cancel the other (gRFC A6's hedging policy).
//!
//! ```text
//!  t=0      copy 1 ─────────────────────────────── (slow) ✗ cancelled
//!  t=delay  copy 2 ────────── answer ─▶ returned
//! ```
//!
//! - **Which calls.** Methods the `.proto` marks `NO_SIDE_EFFECTS`, which generated clients
//!   say on every call: running two copies of a read at once is harmless; running two copies
//!   of anything else may not be, so `IDEMPOTENT` and unmarked methods pass through unless
//!   named with [`HedgeLayer::method`].
//! - **When the next copy goes.** [`HedgingPolicy::delay`] after the one before, or at once
//!   when a copy fails with a non-fatal code (or was refused unprocessed), or when the server's
//!   pushback says (`grpc-retry-pushback-ms`); a negative pushback (or a malformed one, or
//!   more than one) stops further copies.
//! - **How it ends.** The first success wins; every other copy is dropped, which sends CANCEL
//!   to the server and stops its handler. A fatal failure ends the call the same way. When every
//!   copy failed with nothing left to send, the last failure is the answer.
//! - **Limits.** At most [`HedgingPolicy::max_attempts`] copies (capped at 5), never after the
//!   call's deadline (its timeout, or else a `grpc-timeout` metadata entry, as the channel
//!   reads it; later copies are sent with what remains of it), and only while the
//!   [`RetryThrottle`](crate::retry::RetryThrottle) allows — the first copy is always sent.
//!   Every call through the layer that ends OK earns its share back, hedged or not (A6 counts
//!   every call to the server), once: a retry layer above or below that shares the throttle
//!   counts it only if it is the outer of the two. Every copy that fails with a non-fatal code
//!   costs a token, and so does any failure whose pushback refuses more, hedged or not: once,
//!   by the inner of two such layers sharing the throttle (see [`retry`](crate::retry)).
//!
//! Copies after the first carry `grpc-previous-rpc-attempts` like retries do. A call should be
//! hedged or retried, not both: stacking `RetryLayer` inside `HedgeLayer` retries each copy.
//! Streamed requests cannot be copied and pass through.

mod future;
mod layer;
mod policy;

pub use future::ResponseFuture;
pub use layer::HedgeLayer;
pub use policy::HedgingPolicy;

use crate::{attempts::Once, retry::CodeSet};
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError, Call};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// A service that hedges calls to `NO_SIDE_EFFECTS` methods; made by [`HedgeLayer`].
#[derive(Debug, Clone)]
pub struct Hedge<S> {
    inner: S,
    config: Arc<layer::Config>,
}

impl<S> Hedge<S> {
    /// Hedges calls to `inner` by `policy` (see [`HedgeLayer::new`]).
    pub fn new(inner: S, policy: HedgingPolicy) -> Hedge<S> {
        tower_layer::Layer::layer(&HedgeLayer::new(policy), inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, to change.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Call> for Hedge<S>
where
    S: Service<Call, Response = Response<Body>> + Clone,
    S::Error: Into<BoxError> + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx).map_err(status_from_error)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        // The call's success counts once on a throttle: here, unless a layer above that shares
        // it marked the call (a retry layer outside); marked here, so that a retry layer
        // inside sharing it (retrying each copy) leaves it to this one.
        let throttle = self.config.table.throttle.as_ref();
        let counted_above =
            throttle.is_some_and(|throttle| call.outcome_counter() == Some(throttle.id()));
        if let Some(throttle) = throttle {
            call.set_outcome_counter(throttle.id());
        }
        // A message over its sending limit fails before it is sent, marked so
        // (`Status::is_refused_before_sending`): the copies stop there.
        let Some(policy) = self.config.policy_for(&call) else {
            let count = Once::new(throttle, counted_above, CodeSet::default());
            return ResponseFuture::single(self.inner.call(call), count);
        };
        let Some(template) = call.try_clone() else {
            // A streamed request is sent once, but its failures count as the policy's would.
            let count = Once::new(throttle, counted_above, policy.non_fatal);
            return ResponseFuture::single(self.inner.call(call), count);
        };
        let first = self.inner.call(call);
        let (service, config) = (self.inner.clone(), &self.config);
        ResponseFuture::hedged(first, service, template, policy, config, counted_above)
    }
}

#[cfg(test)]
mod tests;
