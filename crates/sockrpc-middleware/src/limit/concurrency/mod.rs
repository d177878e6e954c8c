//! Per-method concurrency limits: at most `n` calls of a method run at once; more wait in a
//! bounded queue, then are refused (see [the module rules](super)).
//!
//! ```text
//!  /shop.Orders/Place  ── limit 8  ─┐
//!  /shop.Orders/Cancel ── limit 2  ─┼─▶ inner service
//!  every other method  ── limit 64 ─┘   (one shared limit; or none)
//! ```
//!
//! Why per method and not per connection: the connection's cap (`max_concurrent_calls`)
//! protects the server's memory; this protects what a method uses behind it — a database pool,
//! a downstream quota — so a flood of one expensive method cannot starve the cheap ones.
//!
//! Why in `call` and not `poll_ready`: tower asks for readiness before it shows the request,
//! so readiness cannot depend on the method. The limit is taken when the call arrives, and
//! the call's future waits for it. The set of limited methods is fixed when the layer is
//! built, so a client naming random paths cannot grow it.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::ConcurrencyLimitLayer;

use super::{deadline_of, refusal, Place, WaitQueue};
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{Body, Call, NamedService};
use std::{
    sync::{atomic::AtomicUsize, Arc},
    task::{Context, Poll},
};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower_service::Service;

/// One method's (or the others') limit.
#[derive(Debug)]
pub(crate) struct Limit {
    semaphore: Arc<Semaphore>,
    max: usize,
    waiting: Arc<AtomicUsize>,
}

impl Limit {
    pub(crate) fn new(max: usize) -> Limit {
        Limit {
            semaphore: Arc::new(Semaphore::new(max)),
            max,
            waiting: Arc::default(),
        }
    }
}

/// A service whose methods have concurrency limits; made by [`ConcurrencyLimitLayer`].
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limits: Arc<layer::Limits>,
}

impl<S> ConcurrencyLimit<S> {
    /// At most `max` calls to `inner` at once, whatever their method (the same as
    /// `ConcurrencyLimitLayer::new().others(max)`); build a [`ConcurrencyLimitLayer`] for limits
    /// per method.
    pub fn new(inner: S, max: usize) -> ConcurrencyLimit<S> {
        tower_layer::Layer::layer(&ConcurrencyLimitLayer::new().others(max), inner)
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

impl<S> Service<Call> for ConcurrencyLimit<S>
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
        let Some(limit) = self.limits.for_path(call.path()) else {
            return ResponseFuture::running(self.inner.call(call), None);
        };
        if let Ok(permit) = Arc::clone(&limit.semaphore).try_acquire_owned() {
            return ResponseFuture::running(self.inner.call(call), Some(permit));
        }
        let queue: &WaitQueue = &self.limits.queue;
        let Some(place) = Place::take(&limit.waiting, queue.max_waiting) else {
            return ResponseFuture::refused(refusal(
                format!(
                    "{} is at its concurrency limit of {} and {} calls already wait",
                    call.path(),
                    limit.max,
                    queue.max_waiting
                ),
                queue.pushback,
            ));
        };
        // Only a call that must wait reads the clock: its deadline is fixed here, on entry.
        let now = Instant::now();
        let deadline = deadline_of(&mut call, now);
        let (until, ends_at_deadline) = queue.wait_until(now, deadline);
        let wait = future::Wait {
            until,
            deadline,
            ends_at_deadline,
        };
        // The instance that was ready goes with the call; a clone takes its place.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let acquire = Box::pin(Arc::clone(&limit.semaphore).acquire_owned());
        ResponseFuture::waiting(acquire, wait, place, ready, call, limit.max, queue.pushback)
    }
}

impl<S: NamedService> NamedService for ConcurrencyLimit<S> {
    const NAME: &'static str = S::NAME;
    const IDEMPOTENT_METHODS: &'static [&'static str] = S::IDEMPOTENT_METHODS;
}
