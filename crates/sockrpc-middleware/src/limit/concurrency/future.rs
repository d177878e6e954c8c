//! The future of a call under [`ConcurrencyLimit`](super::ConcurrencyLimit): wait for a
//! permit (bounded), then run holding it.

use crate::limit::{hold, past_deadline, refusal, take_refusal, Place, Waiter};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{Body, Call};
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

/// How a call waits for a permit: until when, and whether that is its deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) until: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) ends_at_deadline: bool,
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

pin_project! {
    /// The answer of a call under [`ConcurrencyLimit`](super::ConcurrencyLimit).
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
        Waiting {
            acquire: Acquire,
            #[pin]
            sleep: Sleep,
            // The wait ends at the deadline (not at `max_wait`).
            ends_at_deadline: bool,
            waiter: Waiter<S>,
            max: usize,
            pushback: Duration,
        },
        Running {
            #[pin]
            inner: S::Future,
            permit: Option<OwnedSemaphorePermit>,
        },
        Refused { status: Option<Status> },
    }
}

impl<S: Service<Call>> ResponseFuture<S> {
    pub(crate) fn running(inner: S::Future, permit: Option<OwnedSemaphorePermit>) -> Self {
        ResponseFuture {
            state: State::Running { inner, permit },
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
        acquire: Acquire,
        wait: Wait,
        place: Place,
        service: S,
        call: Call,
        max: usize,
        pushback: Duration,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting {
                acquire,
                sleep: tokio::time::sleep_until(wait.until),
                ends_at_deadline: wait.ends_at_deadline,
                waiter: Waiter::new(wait.deadline, place, service, call),
                max,
                pushback,
            },
        }
    }
}

impl<S: Service<Call>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("concurrency::ResponseFuture")
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
                StateProj::Waiting {
                    acquire,
                    sleep,
                    ends_at_deadline,
                    waiter,
                    max,
                    pushback,
                } => {
                    let permit = match acquire.as_mut().poll(cx) {
                        Poll::Ready(Ok(permit)) => permit,
                        Poll::Ready(Err(_)) => {
                            let status = Status::unavailable("concurrency limit closed");
                            state.set(State::Refused {
                                status: Some(status),
                            });
                            continue;
                        }
                        Poll::Pending => {
                            ready!(sleep.poll(cx));
                            let path = waiter.path();
                            let status = if *ends_at_deadline {
                                past_deadline(path)
                            } else {
                                let why = format!(
                                    "{path} is at its concurrency limit of {max}; waited too long"
                                );
                                refusal(why, *pushback)
                            };
                            state.set(State::Refused {
                                status: Some(status),
                            });
                            continue;
                        }
                    };
                    match waiter.send() {
                        Ok(inner) => state.set(State::Running {
                            inner,
                            permit: Some(permit),
                        }),
                        Err(status) => {
                            drop(permit);
                            state.set(State::Refused {
                                status: Some(status),
                            });
                        }
                    }
                }
                StateProj::Running { inner, permit } => {
                    let result = ready!(inner.poll(cx));
                    return Poll::Ready(match (result, permit.take()) {
                        (Ok(response), Some(permit)) => Ok(hold(response, permit)),
                        (result, _) => result,
                    });
                }
                StateProj::Refused { status } => {
                    return Poll::Ready(Err(take_refusal(status).into()));
                }
            }
        }
    }
}
