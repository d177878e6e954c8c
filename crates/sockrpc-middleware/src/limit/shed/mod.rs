//! Load shedding: refuse at once, rather than queue, when the server is full.
//!
//! ```text
//!  call ─▶ in flight < max and the service behind is ready? ─yes─▶ runs
//!                          └ no ─▶ RESOURCE_EXHAUSTED + grpc-retry-pushback-ms (handler never runs)
//! ```
//!
//! Why refuse instead of wait: past a point, queued work only adds latency to every call and
//! memory to the server, and the callers time out anyway. Refusing early and cheaply — with a
//! hint of when to come back — keeps the calls that are admitted fast, and lets clients with a
//! retry policy back off instead of piling on. Put it outermost, in front of limits that
//! queue: a service behind it that is not ready (a full `ConcurrencyLimit` from tower, say)
//! makes it shed rather than wait.

mod future;
mod layer;

pub use future::ResponseFuture;
pub use layer::LoadShedLayer;

use super::refusal;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{Body, Call, NamedService};
use std::{
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
};
use tower_service::Service;

/// A service that sheds load; made by [`LoadShedLayer`].
#[derive(Debug, Clone)]
pub struct LoadShed<S> {
    inner: S,
    state: Arc<layer::State>,
    /// Whether the inner service said it was ready at the last `poll_ready`.
    ready: bool,
}

impl<S> LoadShed<S> {
    /// Sheds calls to `inner` beyond `max_in_flight` at once (see [`LoadShedLayer::new`]).
    pub fn new(inner: S, max_in_flight: usize) -> LoadShed<S> {
        tower_layer::Layer::layer(&LoadShedLayer::new(max_in_flight), inner)
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

/// One call counted in flight until its answer is complete.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<layer::State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<S> Service<Call> for LoadShed<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: From<Status>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Always ready: a service behind that is not makes the next call shed, not wait.
        self.ready = match self.inner.poll_ready(cx) {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => false,
        };
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let state = &self.state;
        if !std::mem::take(&mut self.ready) {
            let why = format!("server is overloaded: not ready for {}", call.path());
            return ResponseFuture::shed(refusal(why, state.pushback));
        }
        let admitted = state
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < state.max_in_flight).then_some(n + 1)
            });
        if admitted.is_err() {
            let why = format!(
                "server is overloaded: {} calls in flight",
                state.max_in_flight
            );
            return ResponseFuture::shed(refusal(why, state.pushback));
        }
        let counted = InFlight(Arc::clone(state));
        ResponseFuture::running(self.inner.call(call), counted)
    }
}

impl<S: NamedService> NamedService for LoadShed<S> {
    const NAME: &'static str = S::NAME;
    const IDEMPOTENT_METHODS: &'static [&'static str] = S::IDEMPOTENT_METHODS;
}
