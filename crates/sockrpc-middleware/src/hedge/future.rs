//! The future of a call under [`Hedge`](super::Hedge): copies in flight, a timer for the next.

use super::{layer::Config, HedgingPolicy};
use crate::retry::RetryThrottle;
use pin_project_lite::pin_project;
use sockrpc_protocol::{MetadataMap, Response, Status};
use sockrpc_service::{
    status_from_error, Body, BoxError, Call, ConfigDefaults, Pushback, PREVIOUS_ATTEMPTS_KEY,
};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pin_project! {
    /// The answer of a call under [`Hedge`](super::Hedge). Dropping it cancels every copy.
    pub struct ResponseFuture<S>
    where
        S: Service<Call>,
    {
        #[pin]
        kind: Kind<S>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S>
    where
        S: Service<Call>,
    {
        Single { #[pin] inner: S::Future },
        Hedged { hedging: Hedging<S> },
    }
}

/// A hedged call's copies and what decides the next one.
struct Hedging<S: Service<Call>> {
    service: S,
    template: Call,
    policy: Arc<HedgingPolicy>,
    max_attempts: u32,
    throttle: Option<RetryThrottle>,
    /// Copies sent so far.
    sent: u32,
    in_flight: Vec<Pin<Box<S::Future>>>,
    /// When the next copy is due.
    next: Pin<Box<Sleep>>,
    /// A copy failed non-fatally: the next one goes without waiting for `next`.
    now: bool,
    /// No more copies (pushback said so, the throttle ran dry, or the service failed).
    stopped: bool,
    deadline: Option<Instant>,
    last: Option<Status>,
}

impl<S: Service<Call>> ResponseFuture<S> {
    pub(crate) fn single(inner: S::Future) -> ResponseFuture<S> {
        ResponseFuture {
            kind: Kind::Single { inner },
        }
    }

    pub(crate) fn hedged(
        first: S::Future,
        service: S,
        mut template: Call,
        policy: Arc<HedgingPolicy>,
        config: &Config,
    ) -> ResponseFuture<S> {
        // A `grpc-timeout` entry is the call's deadline as much as a timeout set: the copy
        // kept for later copies carries it as its timeout (the first copy, already on its way,
        // leaves it to the channel).
        // An entry's deadline stays bounded by the endpoint's default on each copy.
        ConfigDefaults::resolve_entry(template.request_mut());
        let deadline = template.request_mut().resolve_deadline();
        let hedging = Hedging {
            service,
            template,
            max_attempts: policy.max_attempts.min(config.cap),
            next: Box::pin(tokio::time::sleep(policy.delay)),
            policy,
            throttle: config.throttle.clone(),
            sent: 1,
            in_flight: vec![Box::pin(first)],
            now: false,
            stopped: false,
            deadline,
            last: None,
        };
        ResponseFuture {
            kind: Kind::Hedged { hedging },
        }
    }
}

impl<S: Service<Call>> std::fmt::Debug for ResponseFuture<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hedge::ResponseFuture")
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: Into<BoxError> + 'static,
{
    type Output = Result<Response<Body>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Single { inner } => inner.poll(cx).map_err(status_from_error),
            KindProj::Hedged { hedging } => hedging.poll(cx),
        }
    }
}

impl<S> Hedging<S>
where
    S: Service<Call, Response = Response<Body>>,
    S::Error: Into<BoxError> + 'static,
{
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response<Body>, Status>> {
        loop {
            if let Some(done) = self.poll_copies(cx) {
                // Dropping the other copies cancels them on the server.
                self.in_flight.clear();
                return Poll::Ready(done);
            }
            if self.may_send() && (self.now || self.next.as_mut().poll(cx).is_ready()) {
                // The first copy went out unconditionally; every further one asks the throttle.
                if !self
                    .throttle
                    .as_ref()
                    .is_none_or(RetryThrottle::allows_retry)
                {
                    self.stopped = true;
                    continue;
                }
                match self.service.poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Err(err)) => {
                        self.stopped = true;
                        self.last = Some(status_from_error(err));
                        continue;
                    }
                    Poll::Ready(Ok(())) => {
                        self.send();
                        continue;
                    }
                }
            }
            if self.in_flight.is_empty() && !self.may_send() {
                let last = self
                    .last
                    .take()
                    .unwrap_or_else(|| Status::internal("hedged call ended without an answer"));
                return Poll::Ready(Err(self.annotated(last)));
            }
            return Poll::Pending;
        }
    }

    /// Polls every copy; `Some` when the call is decided (a success, or a fatal failure).
    fn poll_copies(&mut self, cx: &mut Context<'_>) -> Option<Result<Response<Body>, Status>> {
        let mut i = 0;
        while i < self.in_flight.len() {
            let status = match self.in_flight[i].as_mut().poll(cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(Ok(mut response)) => {
                    if let Some(throttle) = &self.throttle {
                        throttle.record_success();
                    }
                    self.annotate(response.metadata_mut());
                    return Some(Ok(response));
                }
                Poll::Ready(Err(err)) => status_from_error(err),
            };
            drop(self.in_flight.swap_remove(i));
            if status.is_refused_before_sending() {
                // This side's own refusal (a message over its limit, or a later copy's attempt
                // count pushing the metadata over it) would only be met again: no more copies.
                // Those in flight go on; else the failure before it, if any, is the answer.
                self.stopped = true;
                self.sent -= 1;
                if self.in_flight.is_empty() {
                    let status = self.last.take().unwrap_or(status);
                    return Some(Err(self.annotated(status)));
                }
                self.last.get_or_insert(status);
                continue;
            }
            let unprocessed = status.is_not_processed();
            let non_fatal = self.policy.is_non_fatal(status.code());
            let pushback = Pushback::of(&status);
            if !unprocessed && (non_fatal || pushback == Some(Pushback::DontRetry)) {
                if let Some(throttle) = &self.throttle {
                    throttle.record_failure();
                }
            }
            if !(non_fatal || unprocessed) {
                return Some(Err(self.annotated(status)));
            }
            match pushback {
                Some(Pushback::DontRetry) => self.stopped = true,
                Some(Pushback::RetryAfter(delay)) => {
                    self.now = false;
                    self.next.as_mut().reset(Instant::now() + delay);
                }
                None => self.now = true,
            }
            self.last = Some(status);
        }
        None
    }

    fn may_send(&self) -> bool {
        !self.stopped
            && self.sent < self.max_attempts
            && self
                .deadline
                .is_none_or(|deadline| Instant::now() < deadline)
    }

    /// Sends the next copy, with the attempt count and what remains of the deadline.
    fn send(&mut self) {
        let Some(mut call) = self.template.try_clone() else {
            self.stopped = true;
            return;
        };
        let request = call.request_mut();
        // Digits are always a valid value.
        let _ = request
            .metadata_mut()
            .insert(PREVIOUS_ATTEMPTS_KEY, &self.sent.to_string());
        // One clock read for what remains and for when the next copy is due.
        let now = Instant::now();
        if let Some(deadline) = self.deadline {
            // What remains as its timeout, for the layers below; and the deadline itself,
            // which the transport counts from (the server is told what is left when it sends).
            request.hand_on_deadline(deadline, now);
        } else if request.started().is_some() {
            // No deadline of the call's own, but its start noted for one given below (the
            // endpoint's default): that one bounds each copy afresh, so this copy's counts
            // from now, not from the call's start (tests/unary/deadline_attempts.rs).
            request.start_call(true);
        }
        self.in_flight.push(Box::pin(self.service.call(call)));
        self.sent += 1;
        self.now = false;
        let next = now + self.policy.delay;
        self.next.as_mut().reset(next);
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
