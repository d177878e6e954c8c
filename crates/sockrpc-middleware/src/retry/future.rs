//! The future of a call under [`Retry`](super::Retry): one attempt after another, with waits.

use super::{layer::Config, Jitter, RetryPolicy, RetryThrottle};
use pin_project_lite::pin_project;
use sockrpc_protocol::{MetadataMap, Response, Status};
use sockrpc_service::{
    status_from_error, Body, BoxError, Call, CloseSignal, Closing, ConfigDefaults, Pushback,
    PREVIOUS_ATTEMPTS_KEY,
};
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
    template: Call,
    policy: Arc<RetryPolicy>,
    max_attempts: u32,
    throttle: Option<RetryThrottle>,
    /// Attempts sent so far.
    sent: u32,
    /// Retries since the first attempt or the last pushback: what the backoff grows with.
    step: u32,
    deadline: Option<Instant>,
    jitter: Option<Jitter>,
    /// The failure that led to the attempt in flight: the call's answer if that attempt is
    /// refused before it is sent (its attempt count pushed the metadata over the limit).
    previous: Option<Status>,
    /// The channel's close, when the layer was given it: a wait ends there.
    closing: Option<CloseSignal>,
}

/// What to do after an attempt.
enum Next {
    Answer(Result<Response<Body>, Status>),
    RetryAfter(Duration),
}

impl<S> Retrying<S> {
    pub(crate) fn new(
        service: S,
        mut template: Call,
        policy: Arc<RetryPolicy>,
        config: &Config,
    ) -> Retrying<S> {
        // A `grpc-timeout` entry is the call's deadline as much as a timeout set: the copy
        // kept for later attempts carries it as its timeout (the first attempt, already on its
        // way, leaves it to the channel).
        // A deadline fixed when the caller started the call stands (a retry never extends it).
        // An entry's deadline stays bounded by the endpoint's default on each attempt.
        ConfigDefaults::resolve_entry(template.request_mut());
        let deadline = template.request_mut().resolve_deadline();
        Retrying {
            service,
            template,
            max_attempts: policy.max_attempts.min(config.cap),
            policy,
            throttle: config.throttle.clone(),
            sent: 1,
            step: 0,
            deadline,
            jitter: None,
            previous: None,
            closing: config.closing.clone(),
        }
    }

    fn after(&mut self, result: Result<Response<Body>, Status>) -> Next {
        let status = match result {
            Ok(mut response) => {
                if let Some(throttle) = &self.throttle {
                    throttle.record_success();
                }
                self.annotate(response.metadata_mut());
                return Next::Answer(Ok(response));
            }
            Err(status) => status,
        };
        if status.is_refused_before_sending() {
            // A retry this side would not send: the failure that asked for it is the answer
            // (the first attempt's own refusal is, when there is none).
            self.sent -= 1;
            let status = self.previous.take().unwrap_or(status);
            return Next::Answer(Err(self.annotated(status)));
        }
        let unprocessed = status.is_not_processed();
        let retryable = self.policy.is_retryable(status.code());
        let pushback = Pushback::of(&status);
        // Only failures that speak of the server's health count (A6): a retryable code or a
        // pushback refusing retries; a call refused unprocessed never reached a handler.
        if !unprocessed && (retryable || pushback == Some(Pushback::DontRetry)) {
            if let Some(throttle) = &self.throttle {
                throttle.record_failure();
            }
        }
        let throttled = !unprocessed
            && self
                .throttle
                .as_ref()
                .is_some_and(|throttle| !throttle.allows_retry());
        let give_up = !(retryable || unprocessed)
            || pushback == Some(Pushback::DontRetry)
            || self.sent >= self.max_attempts
            || throttled;
        if give_up {
            return Next::Answer(Err(self.annotated(status)));
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
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() + delay >= deadline)
        {
            return Next::Answer(Err(self.annotated(status)));
        }
        self.previous = Some(status);
        Next::RetryAfter(delay)
    }

    /// The next attempt: a copy of the request, with the attempt count and what remains of
    /// the deadline.
    fn next_call(&mut self) -> Option<Call> {
        let mut call = self.template.try_clone()?;
        let request = call.request_mut();
        // Digits are always a valid value.
        let _ = request
            .metadata_mut()
            .insert(PREVIOUS_ATTEMPTS_KEY, &self.sent.to_string());
        if let Some(deadline) = self.deadline {
            // What remains as its timeout, for the layers below; and the deadline itself,
            // which the transport counts from (the server is told what is left when it sends).
            request.hand_on_deadline(deadline, Instant::now());
        } else if request.started().is_some() {
            // No deadline of the call's own, but its start noted for one given below (the
            // endpoint's default): that one bounds each attempt afresh, so this attempt's
            // counts from now, not from the call's start (tests/unary/deadline_attempts.rs).
            request.start_call(true);
        }
        self.sent += 1;
        Some(call)
    }

    fn annotate(&self, metadata: &mut MetadataMap) {
        if self.sent > 1 {
            let _ = metadata.insert(PREVIOUS_ATTEMPTS_KEY, &(self.sent - 1).to_string());
        }
    }

    fn annotated(&self, mut status: Status) -> Status {
        self.annotate(status.metadata_mut());
        status
    }
}

impl<S: Service<Call>> ResponseFuture<S> {
    pub(crate) fn new(attempt: S::Future, retrying: Option<Retrying<S>>) -> ResponseFuture<S> {
        ResponseFuture {
            state: State::Attempt { attempt },
            retrying,
        }
    }
}

impl<S: Service<Call>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("retry::ResponseFuture")
            .field("attempts", &self.retrying.as_ref().map_or(1, |r| r.sent))
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
                    let result = ready!(attempt.poll(cx)).map_err(status_from_error);
                    let Some(retrying) = this.retrying.as_mut() else {
                        this.state.set(State::Done);
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
                            Some(retrying) => retrying.annotated(status),
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
                return Poll::Ready(Err(retrying.annotated(status_from_error(err))));
            }
            let Some(call) = retrying.next_call() else {
                this.state.set(State::Done);
                return Poll::Ready(Err(Status::internal("retry request lost")));
            };
            let attempt = retrying.service.call(call);
            this.state.set(State::Attempt { attempt });
        }
    }
}
