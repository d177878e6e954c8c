//! `ResponseFuture` and the guard that finishes a call exactly once.

use super::handles::{MethodMetrics, Registry};
use crate::watch::{code_of, dropped_code, once_len, watch, Watch};
use crate::Side;
use pin_project_lite::pin_project;
use sockrpc_protocol::{Code, MethodPath, Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError};
use sockrpc_transport::ending::ending_as;
use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU64, Ordering},
    sync::Arc,
    task::{ready, Context, Poll},
    time::Instant,
};

/// Finishes a call once: when told how it ended, or when dropped unfinished, as `CANCELLED` (the
/// caller gave up) or on a server as what its transport ended it with (a panic, a deadline:
/// [`dropped_code`]), so the in-flight gauge never drifts.
pub(crate) struct CallGuard {
    method: Arc<MethodMetrics>,
    started: Instant,
    side: Side,
    done: bool,
    /// The request's count (messages, or A66's bytes): `None` for one message, else counted
    /// by the request's watcher.
    requests: Option<Arc<AtomicU64>>,
    /// The one-message request's count: 1, or its bytes.
    request: u64,
    /// The answer's count (messages, or A66's bytes) passed on so far.
    responses: u64,
    /// A server's one-message answer, passed whole, of this size: the call finishes when the
    /// future is dropped, after the transport sent the answer or refused it.
    answered: Option<usize>,
    /// A path counted under `_OTHER` for want of room among unconfirmed paths: confirmed by
    /// this call's end, it gets series of its own ([`Registry::confirm`]). Boxed: rare.
    candidate: Option<Box<(Arc<Registry>, MethodPath)>>,
}

impl CallGuard {
    /// A call started now; `requests` counts its request's messages when they are streamed,
    /// else `request` is its one message's count.
    pub(crate) fn new(
        method: Arc<MethodMetrics>,
        side: Side,
        requests: Option<Arc<AtomicU64>>,
        request: u64,
    ) -> CallGuard {
        CallGuard {
            method,
            started: Instant::now(),
            side,
            done: false,
            requests,
            request,
            responses: 0,
            answered: None,
            candidate: None,
        }
    }

    /// The call's path is a candidate for series of its own ([`Registry::get`]).
    pub(crate) fn candidate(mut self, registry: &Arc<Registry>, path: &MethodPath) -> CallGuard {
        self.candidate = Some(Box::new((Arc::clone(registry), path.unshared())));
        self
    }

    /// A response message of `len` bytes passed.
    fn responded(&mut self, len: usize) {
        self.method.response_size.record(len as f64);
        self.responses += self.method.weight(len);
    }

    fn finish(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        self.method.ended(code);
        if let Some(candidate) = self.candidate.take() {
            if code == Code::Ok {
                candidate.0.confirm(&candidate.1);
            }
        }
        self.method.active.decrement(1.0);
        let finished = self.method.finished(code);
        finished.count.increment(1);
        let elapsed = self.started.elapsed().as_secs_f64();
        finished.duration.record(elapsed);
        // The one branch the A66 names add to a call's path.
        if let Some(call_duration) = &finished.call_duration {
            call_duration.record(elapsed);
        }
        let requests = self
            .requests
            .as_ref()
            .map_or(self.request, |count| count.load(Ordering::Relaxed));
        finished.requests.record(requests as f64);
        finished.responses.record(self.responses as f64);
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let code = match self.answered.take() {
            // Sent, unless the transport refused it (over the send limit): then the client got
            // the code it drops the call's future with, and no message.
            Some(len) => match ending_as() {
                Some(refused) if refused != Code::Ok => refused,
                _ => {
                    self.responded(len);
                    Code::Ok
                }
            },
            None => dropped_code(self.side),
        };
        self.finish(code);
    }
}

/// Records a streamed answer's messages and finishes the call at its end.
impl Watch for CallGuard {
    fn on_message(&mut self, len: usize, _compressed: bool) {
        self.responded(len);
    }

    fn on_end(&mut self, code: Code) {
        self.finish(code);
    }

    fn on_drop(&mut self) {
        self.finish(dropped_code(self.side));
    }
}

/// Records a streamed request's messages, and counts them for the call's end.
pub(crate) struct RequestMessages {
    pub(crate) method: Arc<MethodMetrics>,
    pub(crate) count: Arc<AtomicU64>,
}

impl Watch for RequestMessages {
    fn on_message(&mut self, len: usize, _compressed: bool) {
        self.method.request_size.record(len as f64);
        self.count
            .fetch_add(self.method.weight(len), Ordering::Relaxed);
    }

    fn on_end(&mut self, _code: Code) {}
}

pin_project! {
    /// The future of a call through [`Metrics`](super::Metrics): finishes the call when the
    /// answer is complete.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        // Kept past completion on a server with a one-message answer, finished when dropped.
        guard: Option<CallGuard>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, guard: CallGuard) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            guard: Some(guard),
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("metrics::ResponseFuture")
            .field("done", &self.guard.is_none())
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
        let mut result = ready!(this.inner.poll(cx)).map_err(status_from_error);
        let Some(mut guard) = this.guard.take() else {
            return Poll::Ready(result);
        };
        if let Ok(response) = &mut result {
            let body = response.get_mut();
            match once_len(body) {
                // On a server the transport may yet refuse the answer (too large to send): the
                // call finishes when it drops this future, knowing (`ending_as`).
                Some(len) if guard.side == Side::Server => {
                    guard.answered = Some(len);
                    *this.guard = Some(guard);
                    return Poll::Ready(result);
                }
                Some(len) => guard.responded(len),
                None => {
                    // The call goes on in the body, which now finishes it.
                    *body = watch(std::mem::take(body), guard);
                    return Poll::Ready(result);
                }
            }
        }
        guard.finish(code_of(&result));
        Poll::Ready(result)
    }
}
