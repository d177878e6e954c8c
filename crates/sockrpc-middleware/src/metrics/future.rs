//! `ResponseFuture` and the guard that finishes a call exactly once.

use super::handles::MethodMetrics;
use crate::watch::{code_of, once_len, watch, Watch};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Code, Response, Status};
use sockrpc_service::{status_from_error, AnswerHook, AnswerHooks, Body, BoxError};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Instant,
};

/// Finishes a call once: when told how it ended, or as `CANCELLED` when dropped unfinished (the
/// caller gave up, the server aborted the handler), so the in-flight gauge never drifts.
pub(crate) struct CallGuard {
    method: Arc<MethodMetrics>,
    started: Instant,
    done: bool,
}

impl CallGuard {
    pub(crate) fn new(method: Arc<MethodMetrics>, started: Instant) -> CallGuard {
        CallGuard {
            method,
            started,
            done: false,
        }
    }

    fn finish(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        self.method.active.decrement(1.0);
        let finished = self.method.finished(code);
        finished.count.increment(1);
        finished
            .duration
            .record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// On a client, a one-message answer's call ends when the caller decoded it (or refused it:
/// `answer_hooks.rs` in sockrpc-service).
impl AnswerHook for CallGuard {
    fn answered(mut self: Box<Self>, code: Code) {
        self.finish(code);
    }
}

/// Counts a streamed answer's bytes and finishes the call at its end.
impl Watch for CallGuard {
    fn on_message(&mut self, len: usize, _compressed: bool) {
        self.method.response_bytes.increment(len as u64);
    }

    fn on_end(&mut self, code: Code) {
        self.finish(code);
    }
}

pin_project! {
    /// The future of a call through [`Metrics`](super::Metrics): finishes the call when the
    /// answer is complete (on a client, a one-message answer once the caller decoded it).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: Option<CallGuard>,
        client: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, guard: CallGuard, client: bool) -> ResponseFuture<F> {
        ResponseFuture {
            inner,
            guard: Some(guard),
            client,
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
                Some(len) if *this.client => {
                    guard.method.response_bytes.increment(len as u64);
                    // The caller may yet refuse it: it tells the guard how the call ended.
                    AnswerHooks::add(response.extensions_mut(), guard);
                    return Poll::Ready(result);
                }
                Some(len) => guard.method.response_bytes.increment(len as u64),
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
