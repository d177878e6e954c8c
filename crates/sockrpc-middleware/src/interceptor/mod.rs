//! Interceptors: read and change a call's metadata and extensions before it goes on, or refuse
//! it with a [`Status`] — the small, per-call hook tonic users reach for first.
//!
//! ```text
//!  call ──▶ interceptor(Request<()>) ──Ok(request)──▶ inner service ──▶ answer
//!                                   └─Err(status)───▶ answer status (inner never called)
//! ```
//!
//! Why `Request<()>`: an interceptor sees everything about a call except its messages —
//! metadata, timeout, [`Extensions`](sockrpc_protocol::Extensions), and on a server the
//! [`ConnInfo`](sockrpc_protocol::ConnInfo) — and it must not consume a streamed request it
//! cannot put back. It is the same signature as tonic's, so a tonic interceptor closure moves
//! over unchanged. The method being called is in the extensions as a
//! [`MethodPath`] (`request.extensions().get::<MethodPath>()`), so an interceptor can decide
//! per method; putting it there costs two small allocations per intercepted call, paid only
//! by services that use interceptors.
//!
//! The same type works on both sides:
//! - client: `GreeterClient::with_interceptor(channel, f)`, or [`InterceptorLayer`] in a
//!   tower stack over a `Channel`;
//! - server: `GreeterServer::with_interceptor(service, f)` (one service), or
//!   `Server::builder().layer(InterceptorLayer::new(f))` (every service).
//!
//! [`AsyncInterceptor`] is the same hook for work that waits (a token lookup, a remote
//! policy check); [`AsyncInterceptedService`] runs it.

mod async_service;
mod future;
mod layer;

pub use async_service::{AsyncInterceptedService, AsyncInterceptor};
pub use future::{AsyncResponseFuture, ResponseFuture};
pub use layer::{AsyncInterceptorLayer, InterceptorLayer};

use sockrpc_protocol::{MethodPath, Request, Status};
use sockrpc_service::{Call, NamedService};
use std::task::{Context, Poll};
use tower_service::Service;

/// A synchronous hook run on every call before it goes on: return the request (changed or
/// not) to let the call through, or a status to refuse it.
pub trait Interceptor {
    /// Looks at (and may change) `request`; an `Err` answers the call with that status.
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status>;
}

impl<F> Interceptor for F
where
    F: FnMut(Request<()>) -> Result<Request<()>, Status>,
{
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self(request)
    }
}

/// Takes the request's head (everything but the messages) out of `call`, with the method's
/// path in its extensions; [`restore`] puts it back.
pub(crate) fn take_head(call: &mut Call) -> (Request<()>, sockrpc_service::Body) {
    let request = std::mem::take(call.request_mut());
    let (mut head, body) = request.split_message();
    if !head.extensions().contains::<MethodPath>() {
        head.extensions_mut().insert(call.method_path().clone());
    }
    (head, body)
}

/// Puts an intercepted head back together with the call's messages.
pub(crate) fn restore(call: &mut Call, head: Request<()>, body: sockrpc_service::Body) {
    *call.request_mut() = head.map(|()| body);
}

/// A service behind a synchronous [`Interceptor`].
#[derive(Debug, Clone)]
pub struct InterceptedService<S, F> {
    inner: S,
    interceptor: F,
}

impl<S, F> InterceptedService<S, F> {
    /// Runs `interceptor` in front of `inner`.
    pub fn new(inner: S, interceptor: F) -> InterceptedService<S, F> {
        InterceptedService { inner, interceptor }
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

impl<S, F> Service<Call> for InterceptedService<S, F>
where
    S: Service<Call>,
    S::Error: From<Status>,
    F: Interceptor,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Call) -> Self::Future {
        let (head, body) = take_head(&mut call);
        match self.interceptor.call(head) {
            Ok(head) => {
                restore(&mut call, head, body);
                ResponseFuture::called(self.inner.call(call))
            }
            Err(status) => ResponseFuture::rejected(status),
        }
    }
}

/// Mounted in a router under the wrapped server's name, so
/// `Server::builder().add_service(GreeterServer::with_interceptor(..))` works.
impl<S: NamedService, F> NamedService for InterceptedService<S, F> {
    const NAME: &'static str = S::NAME;
    const IDEMPOTENT_METHODS: &'static [&'static str] = S::IDEMPOTENT_METHODS;
}

#[cfg(test)]
mod tests;
