//! The future of a call under [`RateLimit`](super::RateLimit): wait for the reserved token,
//! then run.

use crate::limit::{take_refusal, Place, Waiter};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{Body, Call};
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The answer of a call under [`RateLimit`](super::RateLimit).
    pub struct ResponseFuture<S>
    where
        S: Service<Call>,
    {
        #[pin]
        state: State<S>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S>
    where
        S: Service<Call>,
    {
        Waiting { #[pin] sleep: Sleep, waiter: Waiter<S> },
        Running { #[pin] inner: S::Future },
        Refused { status: Option<Status> },
    }
}

impl<S: Service<Call>> ResponseFuture<S> {
    pub(crate) fn running(inner: S::Future) -> Self {
        ResponseFuture {
            state: State::Running { inner },
        }
    }

    pub(crate) fn refused(status: Status) -> Self {
        ResponseFuture {
            state: State::Refused {
                status: Some(status),
            },
        }
    }

    pub(crate) fn waiting(
        until: Instant,
        deadline: Option<Instant>,
        place: Place,
        service: S,
        call: Call,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                sleep: tokio::time::sleep_until(until),
                waiter: Waiter::new(deadline, place, service, call),
            },
        }
    }
}

impl<S: Service<Call>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("rate::ResponseFuture")
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: From<Status>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting { sleep, waiter } => {
                    ready!(sleep.poll(cx));
                    match waiter.send() {
                        Ok(inner) => state.set(State::Running { inner }),
                        Err(status) => state.set(State::Refused {
                            status: Some(status),
                        }),
                    }
                }
                StateProj::Running { inner } => return inner.poll(cx),
                StateProj::Refused { status } => {
                    return Poll::Ready(Err(take_refusal(status).into()));
                }
            }
        }
    }
}
