//! Watching a streamed body: each message as it passes, and how the stream ends.
//!
//! A unary call is over when its future completes, but a streamed one is not: its answer's head
//! arrives first and the messages follow in the body, and the call's status is known only when
//! the body ends. The tracing and metrics layers both need that end (a span must cover the whole
//! call, a latency must measure it), so both wrap streamed bodies in a [`Watched`] body that
//! reports to them. Unary bodies are never wrapped: that would cost a box per call.

use crate::Side;
use bytes::Bytes;
use sockrpc_protocol::{Code, MetadataMap, Status};
use sockrpc_service::{Body, Incoming};
use sockrpc_transport::ending::dropped_as;
use std::task::{Context, Poll};

/// What a layer does as a streamed body passes.
pub(crate) trait Watch: Send + 'static {
    /// A message of `len` bytes passed; `compressed` when it arrived compressed (an incoming
    /// message is seen before the body decodes it), so `len` is its compressed size.
    fn on_message(&mut self, len: usize, compressed: bool);

    /// The stream ended: `Ok` after its last message, or the status it failed with. Called
    /// once, or [`on_drop`](Watch::on_drop) instead.
    fn on_end(&mut self, code: Code);

    /// The stream failed with `status`: by default, [`on_end`](Watch::on_end) with its code. A
    /// watcher that keeps the status message (a span's description) reads it here.
    fn on_error(&mut self, status: &Status) {
        self.on_end(status.code());
    }

    /// The stream was dropped before its end: by default, ended `Cancelled`. A watcher that
    /// knows its side says what a server's transport ended it with ([`dropped_code`]).
    fn on_drop(&mut self) {
        self.on_end(Code::Cancelled);
    }
}

/// The code of a call's part dropped unfinished on `side`. On a server, what its transport
/// ended the call with when it dropped it ([`dropped_as`]: a panic, a deadline, a message over
/// the limit), else `CANCELLED`. On a client always `CANCELLED`: a client call dropped inside a
/// server's `drop_as` belongs to a handler that failed, and was given up, not failed itself
/// (its backend is not to blame for the handler's panic).
pub(crate) fn dropped_code(side: Side) -> Code {
    match side {
        Side::Server => dropped_as(),
        Side::Client => Code::Cancelled,
    }
}

/// A body that reports its messages and its end to `W`.
struct Watched<W: Watch> {
    inner: Body,
    watch: W,
    ended: bool,
}

impl<W: Watch> Watched<W> {
    fn end(&mut self, code: Code) {
        if !self.ended {
            self.ended = true;
            self.watch.on_end(code);
        }
    }

    fn fail(&mut self, status: &Status) {
        if !self.ended {
            self.ended = true;
            self.watch.on_error(status);
        }
    }
}

impl<W: Watch> Watched<W> {
    /// Reports what the inner body gave.
    fn saw<T>(
        &mut self,
        polled: &Poll<Option<Result<T, Status>>>,
        len: impl Fn(&T) -> (usize, bool),
    ) {
        match polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(message))) => {
                let (len, compressed) = len(message);
                self.watch.on_message(len, compressed);
            }
            Poll::Ready(Some(Err(status))) => self.fail(status),
            Poll::Ready(None) => self.end(Code::Ok),
        }
    }
}

/// The outer body ([`Body::wrap`]) reads messages as they arrived, flagged, and decodes them
/// itself: a compressed one is reported with its compressed length.
impl<W: Watch> Incoming for Watched<W> {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        let polled = self.inner.poll_message(cx);
        self.saw(&polled, |message| (message.len(), false));
        polled
    }

    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        let polled = self.inner.poll_message_flagged(cx);
        self.saw(&polled, |(message, compressed)| {
            (message.len(), *compressed)
        });
        polled
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.inner.trailers()
    }

    /// A message passed whole and the reader refused it: the stream ends with its code (a
    /// drop that follows is not a cancellation).
    fn refused(&mut self, status: &Status) {
        self.fail(status);
        self.inner.refuse(status);
    }
}

impl<W: Watch> Drop for Watched<W> {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            self.watch.on_drop();
        }
    }
}

/// `body`, reporting to `watch`; its compression, limits and trailers are kept
/// ([`Body::wrap`]).
pub(crate) fn watch(body: Body, watch: impl Watch) -> Body {
    body.wrap(|inner| Watched {
        inner,
        watch,
        ended: false,
    })
}

/// The size of a one-message body, without taking it apart for good: the message is moved out
/// and back (no copy). `None` for a stream.
pub(crate) fn once_len(body: &mut Body) -> Option<usize> {
    if !body.is_once() {
        return None;
    }
    match std::mem::take(body).into_once() {
        Ok(message) => {
            let len = message.len();
            *body = Body::once(message);
            Some(len)
        }
        Err(other) => {
            *body = other;
            None
        }
    }
}

/// Whether a body needs watching: anything but one message or none. An empty body is not
/// distinguishable from outside without polling, so only `once` is known to need nothing.
pub(crate) fn is_streamed(body: &Body) -> bool {
    !body.is_once()
}

/// The code a call's result carries.
pub(crate) fn code_of<T>(result: &Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}
