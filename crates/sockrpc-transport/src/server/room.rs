//! A handler that waits is polled only while its connection's write buffer has room.
//!
//! ```text
//!  answer appended, buffer past HIGH_WATER ──▶ answers_paused = true
//!  waiting handler woken ──▶ paused? ── no ──▶ polled
//!                               └─ yes, buffer still past HIGH_WATER ──▶ parked in `writers`
//!  client reads, buffer back under HIGH_WATER ──▶ connection wakes `writers` ──▶ polled
//! ```
//!
//! Why: the connection stops reading, and stops taking frames already read, once its write
//! buffer passes [`HIGH_WATER`] (`conn.rs`), so calls answered at once cannot make it buffer
//! more. But a client may send as many calls as the connection takes in flight
//! (`max_concurrent_calls`, 4,096 by default) while the buffer is still empty; their handlers
//! wait (a database, a timer), then each finishes with an answer of up to the message limit,
//! appended whatever the buffer held: a client that never read held calls in flight × answer
//! size of one connection (`tests/hostile/unread_waiting_answers.rs`: 200 answers of 1 MiB,
//! 200 MiB). A finished handler's answer is held whether or not it is encoded, so the bound
//! has to come before it is made: a handler that waits is not polled while the buffer is past
//! the mark. What one connection holds of unsent answers is then the mark, and one answer for
//! each handler that finishes between two looks at it (one per worker thread at most).
//!
//! What it costs: nothing for a call answered at once (its first poll, on the connection's task,
//! is not paced), and an atomic load per poll of a handler that waits, a lock only while the
//! buffer is past the mark. What it trades: a handler of a client that does not read stops at
//! its next wait, holding what it holds (a lock held across an `.await` too), as a streamed
//! answer stops at its next message; its deadline still ends it. It cannot deadlock a sockrpc
//! client: its driver reads whatever its application does, so the buffer drains and the parked
//! handlers go on.

use super::respond::{ConnState, Shared};
use crate::outbox::HIGH_WATER;
use std::sync::atomic::Ordering;
use std::task::Context;

/// Whether a waiting handler on this connection may be polled now. When not, `cx` is woken once
/// the connection's write buffer is back under [`HIGH_WATER`].
pub(super) fn has_room(shared: &Shared, cx: &Context<'_>) -> bool {
    if !shared.answers_paused.load(Ordering::Acquire) {
        return true;
    }
    let mut state = shared.lock();
    if state.outbox.buffered() <= HIGH_WATER {
        shared.answers_paused.store(false, Ordering::Release);
        return true;
    }
    state.writers.push(cx.waker().clone());
    // The connection's task writes the buffer out and wakes `writers` once it has room.
    state.outbox.wake_driver();
    false
}

/// After an answer was appended (the lock held): a buffer past [`HIGH_WATER`] pauses the
/// handlers that wait, before their next poll.
pub(super) fn note_appended(shared: &Shared, state: &ConnState) {
    if state.outbox.buffered() > HIGH_WATER {
        shared.answers_paused.store(true, Ordering::Release);
    }
}
