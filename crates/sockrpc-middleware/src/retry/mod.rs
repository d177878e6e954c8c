//! Retries, per method, as gRPC's retry design (gRFC A6) lays them out.
//!
//! ```text
//!  call ─▶ attempt 1 ──OK / committed──────────────────────────────▶ answer
//!              └─fail─▶ retryable? throttle allows? attempts left? time left?
//!                        │ no ──────────────────────────────────────▶ the failure
//!                        └ yes ─▶ wait (backoff, or the server's pushback) ─▶ attempt 2 ─▶ …
//! ```
//!
//! What decides, in order:
//!
//! - **Which policy.** A [`RetryPolicy`] set for the method (`/pkg.Svc/Method`), else for its
//!   service (`pkg.Svc`), else by the method's idempotency level, which generated clients put
//!   on every call from the `.proto`: `NO_SIDE_EFFECTS` and `IDEMPOTENT` methods get
//!   [`RetryPolicy::default()`] (4 attempts, 100 ms doubling to 1 s, on `UNAVAILABLE`) with no
//!   configuration at all; any other method gets [`RetryPolicy::not_processed_only()`]: it is
//!   sent again only when the server says it never started it.
//! - **Which failures.** A status code the policy lists, or a status the server marked not
//!   processed (the protocol's `NOT_PROCESSED` flag: refused before any handler ran — always
//!   safe to send again, whatever the policy). Never this side's own refusal before sending
//!   ([`Status::is_refused_before_sending`]:
//!   a message or metadata over the channel's limits), which another attempt would meet again.
//! - **Never once committed.** A call is committed once the server sent response headers or a
//!   message: the `Channel` returns `Ok` at that point (a streamed answer as soon as its head
//!   arrives), so only failures that arrive before any answer are retried. (A unary answer's
//!   headers reach the caller only together with its message, so a unary call that fails has
//!   shown the caller nothing.) A streamed request
//!   cannot be replayed, so client- and bidirectional-streaming calls get one attempt here (the
//!   channel itself still re-opens a stream the server refused before its first message left).
//! - **How many.** The policy's `max_attempts`, capped at 5 (A6's client-side cap; see
//!   [`RetryLayer::max_attempts_cap`]).
//! - **When.** Full-jitter exponential backoff, or exactly what the server's pushback
//!   (`grpc-retry-pushback-ms`) asks; a negative pushback, one that is not a number, or more
//!   than one means do not retry (grpc-go's reading). A call refused unprocessed is sent again
//!   at once. (The channel already sent it again once, uncounted, as A6's transparent retry;
//!   a refusal that reaches this layer is the second, and A6 leaves it to the policy: it counts
//!   as an attempt and carries `grpc-previous-rpc-attempts`, but goes without a wait.)
//! - **Within the deadline.** The call's timeout covers all attempts; each attempt is sent with
//!   what remains, and no retry starts that could not finish in time. The timeout is the one
//!   set on the request, or else a `grpc-timeout` metadata entry (`"500m"`, tonic's form): the
//!   channel reads it as the deadline, so the layer does too, and sends later attempts with
//!   what remains as their timeout instead of the entry. (A call with neither gets the
//!   endpoint's default from the channel, per attempt: set one on the request to bound the
//!   whole call.)
//! - **At the channel's close.** Built with the channel's [`CloseSignal`]
//!   ([`RetryLayer::close_signal`]), a wait between two attempts ends when the channel closes:
//!   `CANCELLED` after `close_now`, `UNAVAILABLE` ("channel closed") after `close`. Without it,
//!   the wait runs out and the next attempt finds the channel closed. A balanced channel's
//!   signal is its own: a member leaving the set does not raise it.
//! - **Throttling.** A [`RetryThrottle`] per layer (so per server, when one layer wraps one
//!   channel) stops retries while the server fails more than it succeeds. Every call through
//!   the layer that ends OK counts, with or without a policy (a streamed answer at its clean
//!   end). Against it counts every attempt that fails with a code the method's policy lists
//!   (the last one too, and one the layer cannot send again: a streamed request), and every
//!   failure whose pushback refuses retries, on any method, with a policy or none: grpc-go's
//!   `shouldRetry` reads the pushback before it looks for a policy. A failure the server marks
//!   not processed, or this side refused before sending, never counts (grpc-go counts a
//!   second unprocessed refusal whose code is retryable; here the channel re-sent the first).
//!   Each failed attempt counts once: of a retry layer and a hedging layer stacked on one
//!   throttle, the inner one counts it and marks the status ([`Status::failure_counter`]),
//!   and the outer one, which sees it again as its own attempt's failure, leaves it.
//!
//! Attempts after the first carry `grpc-previous-rpc-attempts: n` (n attempts went before), and
//! so does the answer (response metadata, or the final status's metadata) of a call that
//! needed more than one.
//!
//! Cost on the path that succeeds first time: the request is kept for a possible retry — its
//! message is shared, not copied, but its metadata map is cloned — and the inner service is
//! cloned once. Nothing else is allocated (the close signal is cloned, not allocated). So a
//! request of any size may be retried: grpc-go commits a call whose buffered messages pass its
//! retry buffer (256 KiB a call), a bound on the copies it keeps of a stream; a unary request
//! here is kept by reference until the call ends, and streamed requests are never replayed.

mod future;
mod layer;
mod policy;
mod throttle;

pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::RetryPolicy;
pub use throttle::RetryThrottle;

pub(crate) use policy::{CodeSet, Jitter};

use crate::attempts::Once;
use sockrpc_protocol::{Response, Status};
#[cfg(doc)]
use sockrpc_service::CloseSignal;
use sockrpc_service::{status_from_error, Body, BoxError, Call};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tower_service::Service;

/// A service that retries failed calls by their method's [`RetryPolicy`]; made by
/// [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    config: Arc<layer::Config>,
}

impl<S> Retry<S> {
    /// Retries calls to `inner` with the defaults of [`RetryLayer::new`] (a throttle of its
    /// own).
    pub fn new(inner: S) -> Retry<S> {
        tower_layer::Layer::layer(&RetryLayer::new(), inner)
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

impl<S> Service<Call> for Retry<S>
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
        // Every call's success counts once on the throttle: here, unless a layer above that
        // shares it marked the call (a hedging layer outside, whose copies this one retries);
        // marked here, so that a hedging layer below that shares it leaves the call to this one.
        let throttle = self.config.table.throttle.as_ref();
        let counted_above =
            throttle.is_some_and(|throttle| call.outcome_counter() == Some(throttle.id()));
        if let Some(throttle) = throttle {
            call.set_outcome_counter(throttle.id());
        }
        // The copy kept for later attempts; none when the policy allows a single attempt or the
        // request is a stream that cannot be replayed. (A message over its sending limit fails
        // before it is sent, marked so, and is not attempted again.)
        let mut listed = CodeSet::default();
        let retrying = match self.config.policy_for(&call) {
            Some(policy) => match call.try_clone() {
                Some(template) => {
                    let service = self.inner.clone();
                    let config = &self.config;
                    Some(future::Retrying::new(
                        service,
                        template,
                        policy,
                        config,
                        counted_above,
                    ))
                }
                None => {
                    // Sent once, but its failures count as the policy's would (A6).
                    listed = policy.retryable;
                    None
                }
            },
            None => None,
        };
        // A call sent once still counts on the throttle.
        let count = match retrying {
            None => Once::new(throttle, counted_above, listed),
            Some(_) => None,
        };
        ResponseFuture::new(self.inner.call(call), retrying, count)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod throttle_tests;
