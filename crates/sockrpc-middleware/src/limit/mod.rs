//! Limits a server (or a client) puts on its own load: per-method concurrency, a rate limit,
//! and load shedding. The server-wide default timeout is a server setting instead
//! (`Server::builder().timeout(..)`), enforced by the transport so it also ends streams.
//!
//! # What "over the limit" means
//!
//! One rule for every limit here, and for the server's own readiness queue
//! (`sockrpc_service::ReadyQueue`):
//!
//! ```text
//!  under the limit ─────────────────────────────────────────────▶ runs now
//!  over it, queue not full ─▶ waits (≤ its deadline, ≤ max_wait) ─▶ runs when room frees,
//!                                                                  with what remains of its timeout
//!                                                └ max_wait over ─▶ RESOURCE_EXHAUSTED + pushback
//!                                               └ deadline over ─▶ DEADLINE_EXCEEDED, never sent
//!  over it, queue full ────────────────────────────────────────▶ RESOURCE_EXHAUSTED + pushback
//! ```
//!
//! # The wait counts against the call's deadline
//!
//! A call's deadline is fixed when it enters the layer: now plus its timeout, or plus the
//! `grpc-timeout` metadata entry a tonic-style caller set instead (moved into the timeout, as
//! [`Request::resolve_timeout`](sockrpc_protocol::Request::resolve_timeout) does for every
//! layer that times a whole call). The wait ends by that deadline at the latest, and the call
//! goes on with only what remains as its timeout. Otherwise a client call with a 1 s timeout
//! that waited 900 ms for room would be sent with a full 1 s and end 1.9 s after its caller
//! started it; on a server, the handler would read a timeout longer than the time it has
//! (the transport ends the call at the original deadline regardless). A call whose deadline
//! passes while it waits fails `DEADLINE_EXCEEDED` (with no pushback: trying again cannot
//! help it) and is never sent; a wait ended by `max_wait` is a refusal, as above. A call that
//! finds room at once reads no clock and keeps its timeout as it is.
//!
//! - A short burst is absorbed: a call waits a little rather than failing at once.
//! - A sustained overload is refused quickly and cheaply: the queue is bounded (so are the
//!   memory and the wait it costs), and the refusal comes before any handler runs.
//! - The refusal says when to come back: `grpc-retry-pushback-ms` in the status's metadata,
//!   which the retry and hedging layers obey. `RESOURCE_EXHAUSTED` is not retried by default
//!   (it is not in any default retryable set); list it in a `RetryPolicy` to retry it.
//! - [`LoadShedLayer`] is the exception by design: it never queues — at its limit, or when the
//!   service behind it is not ready, the call is refused at once.
//!
//! The limits hold their slot until the answer is complete: for a streamed answer, until its
//! last message (the body is wrapped), not just until its head.

pub mod concurrency;
pub mod rate;
pub mod shed;
mod waiter;

pub use concurrency::{ConcurrencyLimit, ConcurrencyLimitLayer};
pub use rate::{RateLimit, RateLimitLayer};
pub use shed::{LoadShed, LoadShedLayer};

pub(crate) use waiter::Waiter;

use bytes::Bytes;
use sockrpc_protocol::{MetadataMap, Response, Status};
use sockrpc_service::{Body, Call, Incoming, Pushback};
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;

/// How many calls may wait for room, for how long, and the pushback hint a refusal carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitQueue {
    /// The most calls waiting at once; a call finding it full is refused at once.
    pub max_waiting: usize,
    /// The longest a call waits (its own deadline, if sooner, ends the wait too, and the call
    /// then fails `DEADLINE_EXCEEDED`); the wait counts against the call's timeout.
    pub max_wait: Duration,
    /// The `grpc-retry-pushback-ms` a refusal carries, when the limit cannot compute a better
    /// one (the rate limit tells exactly when the next slot frees).
    pub pushback: Duration,
}

impl Default for WaitQueue {
    /// 1024 calls, 1 s, 100 ms — the server's readiness queue's defaults.
    fn default() -> WaitQueue {
        WaitQueue {
            max_waiting: 1024,
            max_wait: Duration::from_secs(1),
            pushback: Duration::from_millis(100),
        }
    }
}

impl WaitQueue {
    /// No waiting: over the limit is refused at once.
    pub fn none() -> WaitQueue {
        WaitQueue {
            max_waiting: 0,
            max_wait: Duration::ZERO,
            ..WaitQueue::default()
        }
    }

    /// Up to `max_waiting` calls for up to `max_wait` each.
    pub fn new(max_waiting: usize, max_wait: Duration) -> WaitQueue {
        WaitQueue {
            max_waiting,
            max_wait,
            ..WaitQueue::default()
        }
    }

    /// How long a call with `timeout` may wait.
    pub(crate) fn wait_for(&self, timeout: Option<Duration>) -> Duration {
        timeout.map_or(self.max_wait, |t| t.min(self.max_wait))
    }

    /// When a call that starts waiting at `now`, with `deadline`, stops waiting: at `max_wait`,
    /// or at its deadline if that comes first (then `true`: the call is past its deadline).
    pub(crate) fn wait_until(&self, now: Instant, deadline: Option<Instant>) -> (Instant, bool) {
        let most = now.checked_add(self.max_wait);
        match (deadline, most) {
            (Some(deadline), Some(most)) if deadline <= most => (deadline, true),
            (_, Some(most)) => (most, false),
            (Some(deadline), None) => (deadline, true),
            // Further than any timer can reach: a wait with no end.
            (None, None) => (far_future(now), false),
        }
    }
}

/// The deadline of a call about to wait: its timeout, or a `grpc-timeout` entry moved into it
/// ([`Request::resolve_timeout`]), counted from the call's start when its method noted one,
/// else from `now` (when it entered the layer). `None`
/// for a call with no deadline (or one too far away to name).
///
/// [`Request::resolve_timeout`]: sockrpc_protocol::Request::resolve_timeout
pub(crate) fn deadline_of(call: &mut Call, now: Instant) -> Option<Instant> {
    let request = call.request_mut();
    if let Some(fixed) = request.deadline() {
        // Fixed when the caller started the call, before encoding: it stands.
        return Some(fixed);
    }
    // A `grpc-timeout` entry counts from the call's start, when its method noted one.
    let from = request.started().unwrap_or(now);
    request
        .resolve_timeout()
        .and_then(|timeout| from.checked_add(timeout))
}

/// What a call waited for, in the `DEADLINE_EXCEEDED` of one whose deadline passed meanwhile
/// ([`Call::after_wait`]).
pub(crate) const WAITED: &str = "for room under a limit";

/// Before a call that waited is sent: what remains of `deadline` as its timeout, or
/// `DEADLINE_EXCEEDED` unsent ([`Call::after_wait`], the rule the server's ready queue keeps too).
pub(crate) fn after_wait(call: &mut Call, deadline: Option<Instant>) -> Result<(), Status> {
    call.after_wait(deadline, WAITED)
}

/// The answer to a call whose deadline passed while it waited for room.
pub(crate) fn past_deadline(path: &str) -> Status {
    sockrpc_service::deadline_passed(path, WAITED)
}

fn far_future(now: Instant) -> Instant {
    // About 30 years, as tokio's own far-future instant.
    now.checked_add(Duration::from_secs(86400 * 365 * 30))
        .unwrap_or(now)
}

/// The refusal every limit answers with.
pub(crate) fn refusal(why: String, pushback: Duration) -> Status {
    Pushback::RetryAfter(pushback).on(Status::resource_exhausted(why))
}

/// The answer of a limit's future that refused its call: the refusal, once (polled again
/// after that, an internal error).
pub(crate) fn take_refusal(status: &mut Option<Status>) -> Status {
    status
        .take()
        .unwrap_or_else(|| Status::internal("response polled after completion"))
}

/// A place in a wait queue: taken if there is room, given back on drop.
#[derive(Debug)]
pub(crate) struct Place(Arc<AtomicUsize>);

impl Place {
    pub(crate) fn take(waiting: &Arc<AtomicUsize>, max: usize) -> Option<Place> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(Arc::clone(waiting)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Keeps `guard` (a permit, an in-flight count) until the answer is complete: dropped now
/// for a single message, carried to the end of a streamed body (whose compression, limits and
/// trailers are kept: [`Body::wrap`]).
pub(crate) fn hold<G: Send + 'static>(response: Response<Body>, guard: G) -> Response<Body> {
    if response.get_ref().is_once() {
        return response;
    }
    response.map(|body| {
        body.wrap(|body| Held {
            body,
            _guard: guard,
        })
    })
}

struct Held<G> {
    body: Body,
    _guard: G,
}

impl<G: Send> Incoming for Held<G> {
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        self.body.poll_message(cx)
    }

    fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        self.body.poll_message_flagged(cx)
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.body.trailers()
    }

    fn refused(&mut self, status: &Status) {
        self.body.refuse(status);
    }
}

#[cfg(test)]
mod tests;
