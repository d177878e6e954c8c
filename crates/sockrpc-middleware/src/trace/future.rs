//! `ResponseFuture`: the inner call's future inside its span.

use super::body::Events;
use super::{record_end, record_status};
use crate::watch::{code_of, dropped_code, is_streamed, watch};
use crate::Side;
use pin_project_lite::pin_project;
use sockrpc_protocol::{Code, Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError};
use sockrpc_transport::ending::ending_as;
use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
};
use tracing::Span;

pin_project! {
    /// The future of a call through [`Trace`](super::Trace): polls the inner future inside the
    /// call's span, and records the status when it completes (or, for a streamed answer, when
    /// the stream ends). Dropped before completing, the call is recorded as `CANCELLED`, or on
    /// a server as what its transport ended it with (a panic, a deadline:
    /// `sockrpc_transport::ending`).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        side: Side,
        done: bool,
        // A server's one-message answer passed whole: the span ends when the transport drops
        // this future, which knows whether it sent the answer (`ending_as`).
        answered: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // Entered, so that the span ends now (its end is its last exit), with the code
                // the transport ended the call with when it dropped it (`dropped_as`), or for an
                // answer passed whole, `OK` unless the transport refused it.
                let _entered = this.span.enter();
                let code = match ending_as() {
                    Some(refused) if *this.answered && refused != Code::Ok => refused,
                    _ if *this.answered => Code::Ok,
                    _ => dropped_code(*this.side),
                };
                record_end(this.span, *this.side, code);
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, span: Span, side: Side) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            span,
            side,
            done: false,
            answered: false,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("trace::ResponseFuture")
            .field("side", &self.side)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Into<BoxError> + 'static,
{
    type Output = Result<Response<Body>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx)).map_err(status_from_error)
        };
        if this.span.is_disabled() {
            *this.done = true;
            return Poll::Ready(result);
        }
        match result {
            Ok(response) if *this.side == Side::Server && !is_streamed(response.get_ref()) => {
                // The transport may yet refuse to send it (too large): the span ends when the
                // transport drops this future, knowing.
                *this.answered = true;
                Poll::Ready(Ok(response))
            }
            Ok(mut response) if is_streamed(response.get_ref()) => {
                *this.done = true;
                // The call goes on in the body: the body takes the span along and ends it.
                let events = Events::answers(this.span.clone(), *this.side);
                let body = response.get_mut();
                *body = watch(std::mem::take(body), events);
                Poll::Ready(Ok(response))
            }
            result => {
                *this.done = true;
                let message = result.as_ref().err().map_or("", Status::message);
                record_status(this.span, *this.side, code_of(&result), message);
                Poll::Ready(result)
            }
        }
    }
}
