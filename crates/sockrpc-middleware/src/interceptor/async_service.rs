//! [`AsyncInterceptor`] and [`AsyncInterceptedService`]: an interceptor that may wait.

use super::{take_head, AsyncResponseFuture};
use sockrpc_protocol::{Request, Status};
use sockrpc_service::{Call, NamedService};
use std::{
    future::Future,
    task::{Context, Poll},
};
use tower_service::Service;

/// A hook run on every call before it goes on, that may wait (look a token up, ask a policy
/// service): resolve to the request to let the call through, or to a status to refuse it.
pub trait AsyncInterceptor {
    /// What [`call`](AsyncInterceptor::call) returns.
    type Future: Future<Output = Result<Request<()>, Status>>;

    /// Starts looking at `request`.
    fn call(&mut self, request: Request<()>) -> Self::Future;
}

impl<F, Fut> AsyncInterceptor for F
where
    F: FnMut(Request<()>) -> Fut,
    Fut: Future<Output = Result<Request<()>, Status>>,
{
    type Future = Fut;

    fn call(&mut self, request: Request<()>) -> Fut {
        self(request)
    }
}

/// A service behind an [`AsyncInterceptor`]. The inner service is cloned per call (the one
/// that was ready goes with the call while the interceptor runs), as tower's `oneshot` does.
#[derive(Debug, Clone)]
pub struct AsyncInterceptedService<S, F> {
    inner: S,
    interceptor: F,
}

impl<S, F> AsyncInterceptedService<S, F> {
    /// Runs `interceptor` in front of `inner`.
    pub fn new(inner: S, interceptor: F) -> AsyncInterceptedService<S, F> {
        AsyncInterceptedService { inner, interceptor }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, to change.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, dropping the interceptor.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F> Service<Call> for AsyncInterceptedService<S, F>
where
    S: Service<Call> + Clone,
    S::Error: From<Status>,
    F: AsyncInterceptor,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = AsyncResponseFuture<S, F::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let (head, body) = take_head(&mut call);
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        AsyncResponseFuture::new(self.interceptor.call(head), call, body, ready)
    }
}

impl<S: NamedService, F> NamedService for AsyncInterceptedService<S, F> {
    const NAME: &'static str = S::NAME;
    const IDEMPOTENT_METHODS: &'static [&'static str] = S::IDEMPOTENT_METHODS;
}
