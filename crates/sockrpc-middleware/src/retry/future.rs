//! The future of a call under [`Retry`](super::Retry): one attempt after another, with waits.

use super::{layer::Config, Jitter, RetryPolicy};
use crate::attempts::{Attempts, Once};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError, Call, CloseSignal, Closing, Pushback};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The answer of a call under [`Retry`](super::Retry).
    pub struct ResponseFuture<S>
    where
        S: Service<Call>,
    {
        #[pin]
        state: State<S::Future>,
        retrying: Option<Retrying<S>>,
        // A call sent once: how the throttle counts its answer.
        count: Option<Once>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Attempt { #[pin] attempt: F },
        // `closing`: the channel's close ends the wait (`RetryLayer::close_signal`).
        Backoff { #[pin] sleep: Sleep, #[pin] closing: Option<Closing> },
        Ready,
        Done,
    }
}

/// What a call that may be attempted again keeps.
pub(crate) struct Retrying<S> {
    service: S,
    policy: Arc<RetryPolicy>,
    /// The copy kept to send again, the deadline, the count sent, the throttle.
    attempts: Attempts,
    /// Retries since the first attempt or the last pushback: what the backoff grows with.
    step: u32,
    jitter: Option<Jitter>,
    /// The failure that led to the attempt in flight: the call's answer if that attempt is
    /// refused before it is sent (its attempt count pushed the metadata over the limit).
    previous: Option<Status>,
    /// The channel's close, when the layer was given it: a wait ends there.
    closing: Option<CloseSignal>,
    /// A layer above counts the call's success on this throttle (`Call::outcome_counter`).
    counted_above: bool,
}

/// What to do after an attempt.
enum Next {
    Answer(Result<Response<Body>, Status>),
    RetryAfter(Duration),
}

impl<S> Retrying<S> {
    pub(crate) fn new(
        service: S,
        template: Call,
        policy: Arc<RetryPolicy>,
        config: &Config,
        counted_above: bool,
    ) -> Retrying<S> {
        Retrying {
            service,
            attempts: Attempts::new(template, &*policy, &config.table),
            policy,
            step: 0,
            jitter: None,
            previous: None,
            closing: config.closing.clone(),
            counted_above,
        }
    }

    fn after(&mut self, result: Result<Response<Body>, Status>) -> Next {
        let mut status = match result {
            Ok(mut response) => {
                if !self.counted_above {
                    self.attempts.succeeded(&mut response);
                }
                self.attempts.annotate(response.metadata_mut());
                return Next::Answer(Ok(response));
            }
            Err(status) => status,
        };
        if status.is_refused_before_sending() {
            // A retry this side would not send: the failure that asked for it is the answer
            // (the first attempt's own refusal is, when there is none).
            self.attempts.unsent();
            let status = self.previous.take().unwrap_or(status);
            return Next::Answer(Err(self.attempts.annotated(status)));
        }
        let retryable = self.policy.is_retryable(status.code());
        let failure = self.attempts.failed(&mut status, retryable);
        let (unprocessed, pushback) = (failure.unprocessed, failure.pushback);
        let throttled = !unprocessed && !self.attempts.throttle_allows();
        let give_up = !(retryable || unprocessed)
            || pushback == Some(Pushback::DontRetry)
            || self.attempts.exhausted()
            || throttled;
        if give_up {
            return Next::Answer(Err(self.attempts.annotated(status)));
        }
        let delay = match pushback {
            _ if unprocessed => Duration::ZERO,
            Some(Pushback::RetryAfter(delay)) => {
                self.step = 0;
                delay
            }
            _ => {
                self.step += 1;
                let cap = self.policy.backoff_cap(self.step);
                self.jitter.get_or_insert_with(Jitter::new).below(cap)
            }
        };
        if self.attempts.past_deadline(Instant::now() + delay) {
            return Next::Answer(Err(self.attempts.annotated(status)));
        }
        self.previous = Some(status);
        Next::RetryAfter(delay)
    }
}

impl<S: Service<Call>> ResponseFuture<S> {
    pub(crate) fn new(
        attempt: S::Future,
        retrying: Option<Retrying<S>>,
        count: Option<Once>,
    ) -> ResponseFuture<S> {
        ResponseFuture {
            state: State::Attempt { attempt },
            retrying,
            count,
        }
    }
}

impl<S: Service<Call>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("retry::ResponseFuture")
            .field(
                "attempts",
                &self.retrying.as_ref().map_or(1, |r| r.attempts.sent()),
            )
            .finish()
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: Into<BoxError> + 'static,
{
    type Output = Result<Response<Body>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let retrying = match this.state.as_mut().project() {
                StateProj::Attempt { attempt } => {
                    let mut result = ready!(attempt.poll(cx)).map_err(status_from_error);
                    let Some(retrying) = this.retrying.as_mut() else {
                        this.state.set(State::Done);
                        if let Some(count) = this.count.take() {
                            count.settle(&mut result);
                        }
                        return Poll::Ready(result);
                    };
                    match retrying.after(result) {
                        Next::Answer(answer) => {
                            this.state.set(State::Done);
                            return Poll::Ready(answer);
                        }
                        Next::RetryAfter(delay) if delay.is_zero() => this.state.set(State::Ready),
                        Next::RetryAfter(delay) => this.state.set(State::Backoff {
                            sleep: tokio::time::sleep(delay),
                            closing: retrying.closing.as_ref().map(CloseSignal::closing),
                        }),
                    }
                    continue;
                }
                StateProj::Backoff { sleep, closing } => {
                    if let Some(Poll::Ready(status)) = closing.as_pin_mut().map(|c| c.poll(cx)) {
                        // The channel closed: the next attempt would be a call after the close
                        // (`UNAVAILABLE`), or the close was at once (`CANCELLED`).
                        this.state.set(State::Done);
                        let status = match this.retrying.as_ref() {
                            Some(retrying) => retrying.attempts.annotated(status),
                            None => status,
                        };
                        return Poll::Ready(Err(status));
                    }
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                    continue;
                }
                StateProj::Ready => this.retrying.as_mut(),
                StateProj::Done => {
                    return Poll::Ready(Err(Status::internal("response polled after completion")))
                }
            };
            let Some(retrying) = retrying else {
                this.state.set(State::Done);
                return Poll::Ready(Err(Status::internal("retry state lost")));
            };
            if let Err(err) = ready!(retrying.service.poll_ready(cx)) {
                this.state.set(State::Done);
                let status = status_from_error(err);
                return Poll::Ready(Err(retrying.attempts.annotated(status)));
            }
            let Some(call) = retrying.attempts.next_call(Instant::now()) else {
                this.state.set(State::Done);
                return Poll::Ready(Err(Status::internal("retry request lost")));
            };
            let attempt = retrying.service.call(call);
            this.state.set(State::Attempt { attempt });
        }
    }
}
