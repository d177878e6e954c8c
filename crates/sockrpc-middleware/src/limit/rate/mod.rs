//! A rate limit: a token bucket of `burst` calls refilled at `rate` per period; a call finding
//! it empty waits for its token (bounded), or is refused with a pushback that says exactly when
//! the next token comes (see [the module rules](super)).
//!
//! ```text
//!  bucket: ● ● ● ○ ○   burst 5, refilled one token every period / rate
//!  call ─▶ token now? ─yes─▶ runs
//!            └ no ─▶ next token within the wait allowed, queue not full? ─yes─▶ waits, runs
//!                                                                   └ no ─▶ RESOURCE_EXHAUSTED
//! ```
//!
//! Kept as one timestamp ("when the bucket is next full again"), the generic cell rate
//! algorithm, so taking a token is a lock, a compare and a store, with no timer task. A
//! waiting call reserves its token when it joins the queue; if it is cancelled meanwhile the
//! token is lost (the limit errs on the side of fewer calls). Clones share the bucket, so one
//! layer on a server limits calls across all its connections.
//!
//! The wait is known when the call arrives, so a call whose token comes after its deadline
//! is refused at once (`RESOURCE_EXHAUSTED`, with the time to that token as pushback) rather
//! than made to wait for nothing; a call that waits goes on with what remains of its deadline
//! ([the deadline rule](super#the-wait-counts-against-the-calls-deadline)).

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::RateLimitLayer;

use super::{deadline_of, refusal, Place};
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{Body, Call, NamedService};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::Instant;
use tower_service::Service;

/// A rate-limited service; made by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<layer::Bucket>,
}

impl<S> RateLimit<S> {
    /// At most `rate` calls to `inner` per `period` (see [`RateLimitLayer::new`]).
    pub fn new(inner: S, rate: u32, period: std::time::Duration) -> RateLimit<S> {
        tower_layer::Layer::layer(&RateLimitLayer::new(rate, period), inner)
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

impl<S> Service<Call> for RateLimit<S>
where
    S: Service<Call, Response = Response<Body>> + Clone,
    S::Error: From<Status>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let bucket = &self.bucket;
        let now = Instant::now();
        // Read only when the call would wait: the deadline, fixed on entry, bounds the wait.
        let mut deadline = None;
        let max_wait = || {
            deadline = deadline_of(&mut call, now);
            let left = deadline.map(|deadline| deadline.saturating_duration_since(now));
            bucket.queue.wait_for(left)
        };
        match bucket.reserve(now, max_wait) {
            Ok(None) => ResponseFuture::running(self.inner.call(call)),
            Ok(Some((until, place))) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::waiting(until, deadline, place, ready, call)
            }
            Err(next) => ResponseFuture::refused(refusal(
                format!(
                    "rate limit of {} calls per {:?} reached",
                    bucket.rate, bucket.period
                ),
                next.max(bucket.interval),
            )),
        }
    }
}

impl<S: NamedService> NamedService for RateLimit<S> {
    const NAME: &'static str = S::NAME;
    const IDEMPOTENT_METHODS: &'static [&'static str] = S::IDEMPOTENT_METHODS;
}

/// A waiting call's reservation: when its token comes, and its place in the queue.
pub(crate) type Reservation = (Instant, Place);
