//! The future of a call under [`Hedge`](super::Hedge): copies in flight, a timer for the next.

use super::{layer::Config, HedgingPolicy};
use crate::attempts::{Attempts, Once};
use pin_project_lite::pin_project;
use sockrpc_protocol::{Response, Status};
use sockrpc_service::{status_from_error, Body, BoxError, Call, Pushback};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
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
        // `count`: how the throttle counts this call's answer (none without a throttle).
        Single { #[pin] inner: S::Future, count: Option<Once> },
        Hedged { hedging: Hedging<S> },
    }
}

/// A hedged call's copies and what decides the next one.
struct Hedging<S: Service<Call>> {
    service: S,
    policy: Arc<HedgingPolicy>,
    /// The copy kept to send again, the deadline, the count sent, the throttle.
    attempts: Attempts,
    in_flight: Vec<Pin<Box<S::Future>>>,
    /// When the next copy is due.
    next: Pin<Box<Sleep>>,
    /// A copy failed non-fatally: the next one goes without waiting for `next`.
    now: bool,
    /// No more copies (pushback said so, the throttle ran dry, the deadline would pass before
    /// the next, or the service failed).
    stopped: bool,
    /// A layer above counts the call's success on this throttle (`Call::outcome_counter`).
    counted_above: bool,
    last: Option<Status>,
}

impl<S: Service<Call>> ResponseFuture<S> {
    /// A call sent once. Its answer still counts on `count` (gRFC A6 counts every call to the
    /// server), so that the throttle hedged calls drain is earned back by the others too.
    pub(crate) fn single(inner: S::Future, count: Option<Once>) -> ResponseFuture<S> {
        ResponseFuture {
            kind: Kind::Single { inner, count },
        }
    }

    pub(crate) fn hedged(
        first: S::Future,
        service: S,
        template: Call,
        policy: Arc<HedgingPolicy>,
        config: &Config,
        counted_above: bool,
    ) -> ResponseFuture<S> {
        let hedging = Hedging {
            service,
            counted_above,
            attempts: Attempts::new(template, &*policy, &config.table),
            next: Box::pin(tokio::time::sleep(policy.delay)),
            policy,
            in_flight: vec![Box::pin(first)],
            now: false,
            stopped: false,
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
            KindProj::Single { inner, count } => {
                let mut result = ready!(inner.poll(cx)).map_err(status_from_error);
                if let Some(count) = count.take() {
                    count.settle(&mut result);
                }
                Poll::Ready(result)
            }
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
                if !self.attempts.throttle_allows() {
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
                return Poll::Ready(Err(self.attempts.annotated(last)));
            }
            return Poll::Pending;
        }
    }

    /// Polls every copy; `Some` when the call is decided (a success, or a fatal failure).
    fn poll_copies(&mut self, cx: &mut Context<'_>) -> Option<Result<Response<Body>, Status>> {
        let mut i = 0;
        while i < self.in_flight.len() {
            let mut status = match self.in_flight[i].as_mut().poll(cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(Ok(mut response)) => {
                    if !self.counted_above {
                        self.attempts.succeeded(&mut response);
                    }
                    self.attempts.annotate(response.metadata_mut());
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
                self.attempts.unsent();
                if self.in_flight.is_empty() {
                    let status = self.last.take().unwrap_or(status);
                    return Some(Err(self.attempts.annotated(status)));
                }
                self.last.get_or_insert(status);
                continue;
            }
            let non_fatal = self.policy.is_non_fatal(status.code());
            let failure = self.attempts.failed(&mut status, non_fatal);
            if !(non_fatal || failure.unprocessed) {
                return Some(Err(self.attempts.annotated(status)));
            }
            match failure.pushback {
                Some(Pushback::DontRetry) => self.stopped = true,
                Some(Pushback::RetryAfter(delay)) => {
                    // A copy the deadline would pass before is never sent: with none in
                    // flight, the call ends now with this failure (A6: the deadline bounds
                    // every hedge), as the retry layer gives up.
                    let due = Instant::now() + delay;
                    if self.attempts.past_deadline(due) {
                        self.stopped = true;
                    } else {
                        self.now = false;
                        self.next.as_mut().reset(due);
                    }
                }
                None => self.now = true,
            }
            self.last = Some(status);
        }
        None
    }

    fn may_send(&self) -> bool {
        !self.stopped && !self.attempts.exhausted() && !self.attempts.past_deadline(Instant::now())
    }

    /// Sends the next copy, with the attempt count and what remains of the deadline.
    fn send(&mut self) {
        // One clock read for what remains and for when the next copy is due.
        let now = Instant::now();
        let Some(call) = self.attempts.next_call(now) else {
            self.stopped = true;
            return;
        };
        self.in_flight.push(Box::pin(self.service.call(call)));
        self.now = false;
        self.next.as_mut().reset(now + self.policy.delay);
    }
}
