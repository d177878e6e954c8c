//! A handler that waits is polled only while its connection's write buffer has room; parked
//! handlers are woken a few at a time, in the order they parked, as the buffer drains.
//!
//! ```text
//!  answer appended, buffer past HIGH_WATER ──▶ answers_paused = true
//!  waiting handler woken ──▶ paused? ── no ──▶ polled
//!                               └─ yes ──▶ parked in `Parked`, by ticket (FIFO)
//!  buffer down to RESUME_AT ──▶ connection wakes the first WOKEN_AT_ONCE parked handlers
//!  a woken handler polled ──▶ answers (or waits again) ──▶ its turn ends ──▶ buffer ≤ HIGH_WATER?
//!                                                                            └─ yes: next parked
//! ```
//!
//! Why pause: the connection stops reading, and stops taking frames already read, once its write
//! buffer passes [`HIGH_WATER`] (`conn.rs`), so calls answered at once cannot make it buffer
//! more. But a client may send as many calls as the connection takes in flight
//! (`max_concurrent_calls`, 4,096 by default) while the buffer is still empty; their handlers
//! wait (a database, a timer), then each finishes with an answer of up to the message limit,
//! appended whatever the buffer held: a client that never read held calls in flight × answer
//! size of one connection (`tests/hostile/unread_waiting_answers.rs`: 200 answers of 1 MiB,
//! 200 MiB). A finished handler's answer is held whether or not it is encoded, so the bound
//! has to come before it is made: a handler that waits is not polled while the buffer is past
//! the mark. What one connection holds of unsent answers is then the mark, and one answer for
//! each handler woken at once ([`WOKEN_AT_ONCE`]) or finishing between two looks at it.
//!
//! Why a few at a time: the connection used to wake every parked handler each time its buffer
//! fell back under the mark; the first answered, the buffer passed the mark again, and the rest
//! parked again. A client reading a few KiB at a time made the server poll every parked handler
//! (up to 4,096) per answer it drained (`tests/hostile/parked_wakes.rs`, 3,000 calls of which
//! over a thousand parked: 42 polls a call, 6 now). Now a parked handler is woken only with a turn: at most [`WOKEN_AT_ONCE`] hold one,
//! each passes it on when it has answered (or waits again, or is dropped) and the buffer still
//! has room, and the connection hands out new turns only once the buffer is down to
//! [`RESUME_AT`] (hysteresis: a buffer hovering at the mark does not wake anyone per write). A
//! parked handler is polled about twice: when its own wait ends (it stays parked), and with its
//! turn.
//!
//! No handler is left parked: a turn is given back however its handler ends (answered, waiting
//! again, cancelled, its deadline past, its task aborted: [`Turn`]'s drop), and given on; a
//! handler that leaves the queue before its turn takes its ticket with it, so no stale waker is
//! woken in a live one's place. Whoever parks wakes the connection, which gives turns once the
//! buffer is down to [`RESUME_AT`]; it cannot deadlock a sockrpc client: its driver reads
//! whatever its application does, so the buffer drains and the parked handlers go on.
//!
//! What it costs: nothing for a call answered at once (its first poll, on the connection's task,
//! is not paced), and an atomic load per poll of a handler that waits, a lock only while the
//! buffer is or was past the mark. What it trades: a handler of a client that does not read
//! stops at its next wait, holding what it holds (a lock held across an `.await` too), as a
//! streamed answer stops at its next message; its deadline still ends it.

use super::respond::{ConnState, Shared};
use crate::outbox::HIGH_WATER;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Waker};

/// Where a paused connection starts waking parked handlers again: half the mark, so that each
/// round of turns fills what the client drained, not the few KiB of its last read.
pub(super) const RESUME_AT: usize = HIGH_WATER / 2;

/// Parked handlers holding a turn at once: a few, so that handlers on different workers answer
/// side by side, and what they append past the mark stays a few answers.
pub(super) const WOKEN_AT_ONCE: usize = 4;

/// A connection's handlers parked for room, in the order they parked, and the turns out.
#[derive(Debug, Default)]
pub(super) struct Parked {
    /// Parked handlers by ticket: the first is the longest parked.
    waiting: BTreeMap<u64, Waker>,
    /// The next ticket.
    next: u64,
    /// Handlers woken with a turn that have not given it back.
    turns: usize,
}

/// Where one paced handler stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Neither parked nor holding a turn.
    #[default]
    Free,
    /// Parked with this ticket (if the ticket is gone from the queue, it was given a turn).
    Waiting(u64),
    /// Holding a turn, given back once its answer is appended or it waits again.
    Woken,
}

/// A handler's place in its connection's queue; one per call that waits. Dropped, it leaves the
/// queue and gives back a turn it holds, so a cancelled or aborted handler blocks no other.
#[derive(Default)]
pub(super) struct Turn {
    /// Set once the handler is paced (it waited on its first poll).
    shared: Option<Arc<Shared>>,
    place: Place,
}

impl Turn {
    /// From now on, the handler is polled only while `shared`'s write buffer has room.
    pub(super) fn pace(&mut self, shared: Arc<Shared>) {
        self.shared = Some(shared);
    }

    /// Whether the handler may be polled now. When not, it is parked and `cx` is woken with a
    /// turn once the buffer has drained.
    pub(super) fn has_room(&mut self, cx: &Context<'_>) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        if self.place == Place::Free && !shared.answers_paused.load(Ordering::Acquire) {
            return true;
        }
        let mut state = shared.lock();
        let state = &mut *state;
        match self.place {
            Place::Woken => true,
            Place::Waiting(ticket) => match state.parked.waiting.get_mut(&ticket) {
                // Woken by its own wait, not by a turn: it stays in line.
                Some(waker) => {
                    if !waker.will_wake(cx.waker()) {
                        waker.clone_from(cx.waker());
                    }
                    false
                }
                None => {
                    self.place = Place::Woken;
                    true
                }
            },
            Place::Free => {
                let parked = &mut state.parked;
                if parked.waiting.is_empty()
                    && parked.turns == 0
                    && state.outbox.buffered() <= HIGH_WATER
                {
                    // Drained and nobody in line (a look before the connection's).
                    shared.answers_paused.store(false, Ordering::Release);
                    return true;
                }
                let ticket = parked.next;
                parked.next += 1;
                parked.waiting.insert(ticket, cx.waker().clone());
                self.place = Place::Waiting(ticket);
                // The connection's task writes the buffer out and gives turns once it drained.
                state.outbox.wake_driver();
                false
            }
        }
    }

    /// After a poll of the handler that left it waiting: a turn it held goes to the next.
    pub(super) fn waiting_again(&mut self) {
        if self.place == Place::Woken {
            self.leave();
        }
    }

    /// Leaves the queue (the handler ended), the lock held: a turn held goes on to the next
    /// parked handler while the buffer has room. Call after appending the handler's answer.
    pub(super) fn end(mut self, shared: &Shared, state: &mut ConnState) {
        leave(shared, state, self.place);
        self.place = Place::Free;
    }

    fn leave(&mut self) {
        if self.place == Place::Free {
            return;
        }
        if let Some(shared) = &self.shared {
            let mut state = shared.lock();
            leave(shared, &mut state, self.place);
        }
        self.place = Place::Free;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Takes `place` out of the queue: its ticket if still parked, else its turn, passed on.
fn leave(shared: &Shared, state: &mut ConnState, place: Place) {
    match place {
        Place::Free => {}
        Place::Waiting(ticket) => {
            if state.parked.waiting.remove(&ticket).is_none() {
                // Given a turn it has not seen yet: the turn goes on.
                give_back(shared, state);
            }
        }
        Place::Woken => give_back(shared, state),
    }
}

fn give_back(shared: &Shared, state: &mut ConnState) {
    state.parked.turns = state.parked.turns.saturating_sub(1);
    give_turns(shared, state);
}

/// Wakes parked handlers, first parked first, while fewer than [`WOKEN_AT_ONCE`] hold a turn
/// and the buffer has room; with none parked nor woken and room, handlers that wait are no
/// longer paused.
fn give_turns(shared: &Shared, state: &mut ConnState) {
    let room = state.outbox.buffered() <= HIGH_WATER;
    let parked = &mut state.parked;
    while room && parked.turns < WOKEN_AT_ONCE {
        let Some((_, waker)) = parked.waiting.pop_first() else {
            break;
        };
        parked.turns += 1;
        waker.wake();
    }
    if room && parked.waiting.is_empty() && parked.turns == 0 {
        shared.answers_paused.store(false, Ordering::Release);
    }
}

/// The connection's look after a flush, the buffer under [`HIGH_WATER`]: once it is down to
/// [`RESUME_AT`], parked handlers get turns.
pub(super) fn resume(shared: &Shared, state: &mut ConnState) {
    if state.outbox.buffered() <= RESUME_AT
        && (!state.parked.waiting.is_empty() || shared.answers_paused.load(Ordering::Relaxed))
    {
        give_turns(shared, state);
    }
}

/// Wakes every parked handler (the connection is ending: their tasks are being aborted, and
/// each gives its turn back as it is dropped).
pub(super) fn wake_all(state: &mut ConnState) {
    let parked = &mut state.parked;
    while let Some((_, waker)) = parked.waiting.pop_first() {
        parked.turns += 1;
        waker.wake();
    }
}

/// After an answer was appended (the lock held): a buffer past [`HIGH_WATER`] pauses the
/// handlers that wait, before their next poll.
pub(super) fn note_appended(shared: &Shared, state: &ConnState) {
    if state.outbox.buffered() > HIGH_WATER {
        shared.answers_paused.store(true, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
