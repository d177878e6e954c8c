//! The future of a call under [`LoadShed`](super::LoadShed).

use super::InFlight;
use crate::limit::{hold, take_refusal};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::Body;
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};

pin_project! {
    /// The answer of a call under [`LoadShed`](super::LoadShed): the inner service's, or the
    /// refusal.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        counted: Option<InFlight>,
        shed: Option<Status>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn running(inner: F, counted: InFlight) -> Self {
        ResponseFuture {
            inner: Some(inner),
            counted: Some(counted),
            shed: None,
        }
    }

    pub(crate) fn shed(status: Status) -> Self {
        ResponseFuture {
            inner: None,
            counted: None,
            shed: Some(status),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("shed::ResponseFuture")
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: From<Status>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(Err(take_refusal(this.shed).into()));
        };
        let result = ready!(inner.poll(cx));
        Poll::Ready(match (result, this.counted.take()) {
            (Ok(response), Some(counted)) => Ok(hold(response, counted)),
            (result, _) => result,
        })
    }
}
