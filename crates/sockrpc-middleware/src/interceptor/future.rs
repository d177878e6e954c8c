//! The futures of intercepted calls.

use super::restore;
use pin_project_lite::pin_project;
use sockrpc_protocol::{Request, Status};
use sockrpc_service::{Body, Call};
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tower_service::Service;

pin_project! {
    /// The answer of a call behind an [`InterceptedService`](super::InterceptedService): the
    /// inner service's, or the interceptor's refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Rejected { status: Option<Status> },
        Called { #[pin] inner: F },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn called(inner: F) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Called { inner },
        }
    }

    pub(crate) fn rejected(status: Status) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Rejected {
                status: Some(status),
            },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interceptor::ResponseFuture")
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<R, E>>,
    E: From<Status>,
{
    type Output = Result<R, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { inner } => inner.poll(cx),
            StateProj::Rejected { status } => Poll::Ready(Err(status
                .take()
                .unwrap_or_else(|| Status::internal("response polled after completion"))
                .into())),
        }
    }
}

pin_project! {
    /// The answer of a call behind an
    /// [`AsyncInterceptedService`](super::AsyncInterceptedService): first the interceptor
    /// runs, then (if it let the call through) the inner service.
    pub struct AsyncResponseFuture<S, I>
    where
        S: Service<Call>,
    {
        #[pin]
        state: AsyncState<S, I>,
    }
}

pin_project! {
    #[project = AsyncStateProj]
    enum AsyncState<S, I>
    where
        S: Service<Call>,
    {
        Intercepting {
            #[pin]
            interceptor: I,
            // The call without its head, its messages, and the service that was ready for it.
            rest: Option<(Call, Body, S)>,
        },
        Called { #[pin] inner: S::Future },
        Done,
    }
}

impl<S: Service<Call>, I> AsyncResponseFuture<S, I> {
    pub(crate) fn new(interceptor: I, call: Call, body: Body, service: S) -> Self {
        AsyncResponseFuture {
            state: AsyncState::Intercepting {
                interceptor,
                rest: Some((call, body, service)),
            },
        }
    }
}

impl<S: Service<Call>, I> std::fmt::Debug for AsyncResponseFuture<S, I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interceptor::AsyncResponseFuture")
    }
}

impl<S, I> Future for AsyncResponseFuture<S, I>
where
    S: Service<Call>,
    S::Error: From<Status>,
    I: Future<Output = Result<Request<()>, Status>>,
{
    type Output = Result<S::Response, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                AsyncStateProj::Intercepting { interceptor, rest } => {
                    let verdict = ready!(interceptor.poll(cx));
                    let Some((mut call, body, mut service)) = rest.take() else {
                        state.set(AsyncState::Done);
                        continue;
                    };
                    match verdict {
                        Ok(head) => {
                            restore(&mut call, head, body);
                            let inner = service.call(call);
                            state.set(AsyncState::Called { inner });
                        }
                        Err(status) => {
                            state.set(AsyncState::Done);
                            return Poll::Ready(Err(status.into()));
                        }
                    }
                }
                AsyncStateProj::Called { inner } => {
                    let result = ready!(inner.poll(cx));
                    state.set(AsyncState::Done);
                    return Poll::Ready(result);
                }
                AsyncStateProj::Done => {
                    return Poll::Ready(Err(
                        Status::internal("response polled after completion").into()
                    ))
                }
            }
        }
    }
}
