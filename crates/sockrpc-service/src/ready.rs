//! `ReadyQueue`: what a server does with a call when a layer in front of the router is not
//! ready for it.
//!
//! A tower service says "not now" from `poll_ready`. A client can simply wait; a server
//! connection cannot stop reading its socket for one call without stalling every other call
//! multiplexed on it. So the server never waits in the connection: the call waits in a queue
//! of its own, and the semantics are:
//!
//! 1. Ready now (the common case): the call runs at once, at no extra cost.
//! 2. Not ready: the call joins a bounded queue and waits for the stack to become ready, at
//!    most until its own deadline and at most [`max_wait`](ReadyQueue::max_wait).
//! 3. The queue already holds [`max_waiting`](ReadyQueue::max_waiting) calls, or the wait ends
//!    before the stack is ready: the call is shed — answered `RESOURCE_EXHAUSTED` with a
//!    [`Pushback`] hint (`grpc-retry-pushback-ms`) telling the client when trying again makes
//!    sense. The handler never ran, so nothing happened twice if the client does.
//!
//! A call whose own deadline passes while it is queued fails with `DEADLINE_EXCEEDED`, like any
//! call past its deadline (no pushback: there is nothing left to retry); one that gets to run
//! after waiting runs with what is left of its timeout, so a handler reading
//! `request.timeout()` sees the deadline the transport keeps. Waiting calls hold no connection resources beyond their slot in the
//! connection's call cap; the queue bound keeps their number (and memory) fixed.
//!
//! The same rule applies to services mounted in a [`Router`](crate::Router), which are polled
//! the same way.

use crate::call::deadline_passed;
use crate::{status_from_error, Body, BoxError, Call, CallFuture, Pushback};
use bytes::Bytes;
use futures_core::Stream;
use sockrpc_protocol::{Response, Status};
use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tower_service::Service;

/// How many calls may wait for a layer that is not ready, and for how long (see the module
/// docs). Clones share one count.
#[derive(Debug, Clone)]
pub struct ReadyQueue {
    max_waiting: usize,
    max_wait: Duration,
    pushback: Duration,
    waiting: Arc<AtomicUsize>,
}

impl Default for ReadyQueue {
    /// 1024 calls, 1 s, a pushback hint of 100 ms.
    fn default() -> ReadyQueue {
        ReadyQueue::new(1024, Duration::from_secs(1))
    }
}

impl ReadyQueue {
    /// A queue of at most `max_waiting` calls, each waiting at most `max_wait` (or its own
    /// deadline, if sooner). `max_waiting` 0 sheds every call that finds the stack not ready.
    pub fn new(max_waiting: usize, max_wait: Duration) -> ReadyQueue {
        ReadyQueue {
            max_waiting,
            max_wait,
            pushback: Duration::from_millis(100),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sets the pushback hint a shed call carries (default 100 ms).
    pub fn pushback(mut self, pushback: Duration) -> ReadyQueue {
        self.pushback = pushback;
        self
    }

    /// The most calls that wait at once.
    pub fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// The longest a call waits.
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The same queue with no room: a call that finds the stack not ready is shed at once
    /// (tonic's `load_shed(true)`), with the same pushback hint.
    pub(crate) fn shedding(&self) -> ReadyQueue {
        ReadyQueue::new(0, self.max_wait).pushback(self.pushback)
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    fn shed(&self, why: &str) -> Status {
        Pushback::RetryAfter(self.pushback).on(Status::resource_exhausted(format!(
            "server is overloaded: {why}"
        )))
    }

    /// Runs `call` on `service` by the rules in the module docs. On the waiting path the
    /// service that said "not ready" moves into the call's future (and a clone takes its
    /// place), so whatever it reserved — a semaphore's place in line — is polled again by the
    /// call that waits for it, not left behind.
    pub fn call<S>(&self, service: &mut S, call: Call) -> CallFuture
    where
        S: Service<Call> + Clone + Send + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        let waker = std::task::Waker::noop();
        match service.poll_ready(&mut Context::from_waker(waker)) {
            Poll::Ready(Ok(())) => call_future(service.call(call)),
            Poll::Ready(Err(err)) => Box::pin(std::future::ready(Err(to_status(err)))),
            Poll::Pending => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    let status = if self.max_waiting == 0 {
                        self.shed(&format!("not ready for {} (load shedding)", call.path()))
                    } else {
                        self.shed(&format!(
                            "{} calls already wait for {}",
                            self.max_waiting,
                            call.path()
                        ))
                    };
                    return Box::pin(std::future::ready(Err(status)));
                }
                let place = Place(Arc::clone(&self.waiting));
                let mut pending = std::mem::replace(service, service.clone());
                let timeout = call.request().timeout();
                let wait = timeout.map_or(self.max_wait, |t| t.min(self.max_wait));
                // The call's own deadline ends the wait, not the queue's patience.
                let by_deadline = timeout.is_some_and(|t| t <= self.max_wait);
                let queue = self.clone();
                // The wait counts from now, when the call enters the queue.
                let started = tokio::time::Instant::now();
                Box::pin(async move {
                    let ready = std::future::poll_fn(|cx| pending.poll_ready(cx));
                    // Settled to a status before the call is awaited: the error need not be
                    // `Send`.
                    let refused = match tokio::time::timeout_at(
                        sockrpc_transport::deadline_after(started, wait),
                        ready,
                    )
                    .await
                    {
                        Ok(Ok(())) => None,
                        Ok(Err(err)) => Some(to_status(err)),
                        Err(_) if by_deadline => Some(deadline_passed(call.path(), WAITED)),
                        Err(_) => Some(
                            queue.shed(&format!("not ready for {} within {wait:?}", call.path())),
                        ),
                    };
                    drop(place);
                    if let Some(status) = refused {
                        return Err(status);
                    }
                    let mut call = call;
                    // The handler sees what is left of the deadline, as the transport counts it.
                    let deadline = timeout.and_then(|t| started.checked_add(t));
                    call.after_wait(deadline, WAITED)?;
                    to_call_result(pending.call(call).await)
                })
            }
        }
    }
}

/// What a queued call waits for, in the `DEADLINE_EXCEEDED` of one whose deadline passes.
const WAITED: &str = "for the server to be ready";

/// A call's place in the queue, given up however its wait ends (the call future may be
/// dropped while it waits: a cancelled call).
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A middleware error as a status, without boxing one that already is.
pub(crate) fn to_status<E: Into<BoxError> + 'static>(err: E) -> Status {
    status_from_error(err)
}

fn to_call_result<R, E>(result: Result<R, E>) -> Result<Response<Body>, Status>
where
    R: IntoCallResponse,
    E: Into<BoxError> + 'static,
{
    match result {
        Ok(response) => Ok(response.into_call_response()),
        Err(err) => Err(to_status(err)),
    }
}

/// A response a server layer may answer with: `Response<B>` for any body `B` that is a stream
/// of encoded messages (a layer that counts or transforms the answer's messages replaces the
/// body with its own type). The server turns it into a `Response<Body>`; a `Body` is kept as
/// it is.
pub trait IntoCallResponse: Send + 'static {
    /// The response with a [`Body`].
    fn into_call_response(self) -> Response<Body>;
}

impl<B> IntoCallResponse for Response<B>
where
    B: Stream<Item = Result<Bytes, Status>> + Send + 'static,
{
    fn into_call_response(self) -> Response<Body> {
        self.map(Body::new)
    }
}

/// Any call future as a [`CallFuture`]: one that already is one passes through (no second
/// box), any other is boxed once with its body and error converted.
pub fn call_future<F, R, E>(future: F) -> CallFuture
where
    F: Future<Output = Result<R, E>> + Send + 'static,
    R: IntoCallResponse,
    E: Into<BoxError> + 'static,
{
    let mut slot = Some(future);
    if let Some(future) = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<CallFuture>>()
        .and_then(Option::take)
    {
        return future;
    }
    match slot {
        Some(inner) => Box::pin(IntoCallResult { inner }),
        None => Box::pin(std::future::ready(Err(Status::internal(
            "call future taken twice",
        )))),
    }
}

pin_project_lite::pin_project! {
    /// `future`'s answer as a [`CallFuture`]'s, converted as it comes ([`call_future`]).
    ///
    /// A future of its own, not an `async` block: a block awaiting the future it captured
    /// holds it twice (the capture, and the copy it awaits), which made the box a server with
    /// layers makes per call 1,080 bytes (trace, limit and metrics layers): past glibc's
    /// per-thread cache (requests up to 1,032 bytes), so every call took `malloc`'s slow path.
    struct IntoCallResult<F> {
        #[pin]
        inner: F,
    }
}

impl<F, R, E> Future for IntoCallResult<F>
where
    F: Future<Output = Result<R, E>>,
    R: IntoCallResponse,
    E: Into<BoxError> + 'static,
{
    type Output = Result<Response<Body>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map(to_call_result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockrpc_protocol::{Code, MethodPath, Request};
    use tokio::time::Instant;

    /// A handler taking `millis`, behind tower's concurrency limit of one: not ready while a
    /// call runs.
    fn one_at_a_time(
        millis: u64,
    ) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send>
           + Clone
           + Send
           + 'static {
        tower::limit::ConcurrencyLimit::new(
            tower::service_fn(move |_call: Call| async move {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok::<_, Status>(Response::new(Body::once(Bytes::from_static(b"ok"))))
            }),
            1,
        )
    }

    fn call() -> Call {
        Call::new(
            MethodPath::from_static("/s.Svc/M"),
            Request::new(Body::once(Bytes::from_static(b"req"))),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_finds_the_stack_busy_waits_then_runs() {
        let queue = ReadyQueue::new(4, Duration::from_secs(1));
        let mut service = one_at_a_time(100);
        let started = Instant::now();
        let first = tokio::spawn(queue.call(&mut service, call()));
        let second = tokio::spawn(queue.call(&mut service, call()));
        tokio::task::yield_now().await;
        assert_eq!(queue.waiting(), 1);
        first.await.expect("join").expect("runs at once");
        second
            .await
            .expect("join")
            .expect("runs when the first is done");
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        assert_eq!(queue.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_or_a_long_wait_sheds_with_a_pushback() {
        let queue =
            ReadyQueue::new(1, Duration::from_millis(50)).pushback(Duration::from_millis(7));
        let mut service = one_at_a_time(1000);
        let running = tokio::spawn(queue.call(&mut service, call()));
        let waiting = tokio::spawn(queue.call(&mut service, call()));
        let err = queue
            .call(&mut service, call())
            .await
            .expect_err("queue full");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(
            Pushback::of(&err),
            Some(Pushback::RetryAfter(Duration::from_millis(7)))
        );
        let started = Instant::now();
        let err = waiting.await.expect("join").expect_err("waited too long");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        // The call's own deadline, when sooner, ends the wait.
        let mut short = call();
        short.request_mut().set_timeout(Duration::from_millis(10));
        let started = Instant::now();
        let err = queue.call(&mut service, short).await.expect_err("deadline");
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert_eq!(
            Pushback::of(&err),
            None,
            "nothing to retry: the deadline is gone"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(10));
        running
            .await
            .expect("join")
            .expect("the running call finishes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_waited_runs_with_what_is_left_of_its_deadline() {
        let queue = ReadyQueue::new(4, Duration::from_secs(1));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let mut service = tower::limit::ConcurrencyLimit::new(
            tower::service_fn(move |call: Call| {
                record.lock().expect("seen").push(call.request().timeout());
                async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, Status>(Response::new(Body::once(Bytes::from_static(b"ok"))))
                }
            }),
            1,
        );
        let timed = || {
            let mut call = call();
            call.request_mut().set_timeout(Duration::from_millis(500));
            call
        };
        let first = tokio::spawn(queue.call(&mut service, timed()));
        let second = queue.call(&mut service, timed());
        first.await.expect("join").expect("runs at once");
        second.await.expect("runs after 300 ms of its 500");
        assert_eq!(
            *seen.lock().expect("seen"),
            [
                Some(Duration::from_millis(500)),
                Some(Duration::from_millis(200))
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_gives_its_place_back() {
        let queue = ReadyQueue::new(1, Duration::from_secs(1));
        let mut service = one_at_a_time(1000);
        let _running = tokio::spawn(queue.call(&mut service, call()));
        let waiter = queue.call(&mut service, call());
        assert_eq!(queue.waiting(), 1);
        drop(waiter);
        assert_eq!(queue.waiting(), 0);
    }
}
