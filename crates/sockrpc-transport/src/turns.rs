//! `TurnQueue`: calls waiting for a connection's write buffer to drain, woken a few at a time
//! in the order they parked, not all at once. Used by the server's response streams
//! (`server/pump.rs`; and, for the client's answer credit rather than room,
//! `server/answer_window.rs`) and the client's stream senders, for room and for the server's
//! connection credit (`client/credit.rs`).
//!
//! ```text
//!  buffer past the mark (or others in line) ──▶ park(id): in line, by ticket (FIFO)
//!  buffer down to the resume mark ──▶ resume(): the first WOKEN_AT_ONCE parked get a turn
//!  a woken call looks again ── room ──▶ goes, and its turn passes to the next parked
//!                             └ none ──▶ parks again at the back; its turn is not passed on
//!  a call ends (forget) ──▶ leaves the line; a turn it held passes on
//! ```
//!
//! Why: both ends used to wake every writer parked for room each time their buffer fell back
//! under the high-water mark. The first one or two wrote, the buffer passed the mark again, and
//! the rest parked again: a peer reading a few KiB at a time made its end poll every parked
//! writer (thousands of streams) per few KiB it read. With turns, a pass wakes at most
//! [`WOKEN_AT_ONCE`] writers, and each wakes the next only once it found room; new turns are
//! handed out only once the buffer is down to the resume mark (half the high-water mark, the
//! caller's to say: hysteresis), so a buffer hovering at the mark wakes no one per write.
//! The server's handlers that wait have their own queue by ticket (`server/room.rs`): their
//! place is held by a guard across tasks, not by a call id in the connection's state.
//!
//! No waiter is lost: a woken call either comes back (and goes, passing its turn on, or parks
//! again), or ends, and [`forget`](TurnQueue::forget) passes its turn on. A call waiting while
//! others are in line parks behind them, so a newcomer never jumps the line. When the
//! connection ends, [`wake_all`](TurnQueue::wake_all) wakes everyone, to see it ended.
//! That asks of the callers that a call with a place is polled again or forgotten: one
//! dropped while it holds a place holds a turn for good once it is given one, and
//! [`WOKEN_AT_ONCE`] such hold every turn (the server's pumps take no place for a call
//! cancelled before its answer started, `server/pump.rs`).
//!
//! What it costs: nothing on the fast path (nobody parked: one length check); one map lookup
//! per look of a parked or woken call.

use foldhash::HashMap;
use std::collections::BTreeMap;
use std::task::Waker;

/// Calls woken with a turn at once: a few, so that what they write past the mark stays a few
/// messages, and a call that finds the buffer full again costs one wasted poll, not thousands.
pub(crate) const WOKEN_AT_ONCE: usize = 4;

/// Where a connection whose buffer passed the mark hands out turns again: half the mark, so
/// that each round of turns fills what the peer drained, not the few KiB of its last read.
pub(crate) const RESUME_AT: usize = crate::outbox::HIGH_WATER / 2;

/// Where one call stands in the queue.
#[derive(Debug)]
enum Place {
    /// In line with this ticket, to be woken through the waker.
    Parked(u64, Waker),
    /// Woken with a turn, not yet back.
    Woken,
}

/// Calls waiting for room, by call id, in the order they parked; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct TurnQueue {
    /// Parked calls by ticket: the first is the longest parked.
    line: BTreeMap<u64, u32>,
    /// Every call parked or holding a turn.
    places: HashMap<u32, Place>,
    /// The next ticket.
    next: u64,
    /// Calls holding a turn.
    turns: usize,
}

impl TurnQueue {
    /// Call `id` looks for room; `room`: the buffer is under the high-water mark. True: it may
    /// write now (a turn it held passes on to the next parked call). False: it waits, parked
    /// (kept in line if it already was), to be woken through `waker`.
    pub(crate) fn poll_turn(&mut self, id: u32, room: bool, waker: &Waker) -> bool {
        if self.places.is_empty() {
            if room {
                return true;
            }
            self.park_new(id, waker);
            return false;
        }
        match self.places.get_mut(&id) {
            Some(Place::Parked(_, kept)) => {
                // Woken by something else (its own credit, a timer): it stays in line.
                if !kept.will_wake(waker) {
                    kept.clone_from(waker);
                }
                false
            }
            Some(Place::Woken) => {
                self.places.remove(&id);
                self.turns -= 1;
                if room {
                    self.give_turns();
                    true
                } else {
                    // Full again: to the back, without waking anyone.
                    self.park_new(id, waker);
                    false
                }
            }
            None if room && self.line.is_empty() => true,
            None => {
                self.park_new(id, waker);
                false
            }
        }
    }

    fn park_new(&mut self, id: u32, waker: &Waker) {
        let ticket = self.next;
        self.next += 1;
        self.line.insert(ticket, id);
        self.places.insert(id, Place::Parked(ticket, waker.clone()));
    }

    /// Wakes parked calls, first parked first, while fewer than [`WOKEN_AT_ONCE`] hold a turn.
    fn give_turns(&mut self) {
        while self.turns < WOKEN_AT_ONCE {
            let Some((_, id)) = self.line.pop_first() else {
                break;
            };
            if let Some(place) = self.places.get_mut(&id) {
                if let Place::Parked(_, waker) = std::mem::replace(place, Place::Woken) {
                    self.turns += 1;
                    waker.wake();
                }
            }
        }
    }

    /// The buffer is down to the resume mark: parked calls get turns (a few).
    pub(crate) fn resume(&mut self) {
        if !self.line.is_empty() {
            self.give_turns();
        }
    }

    /// Call `id` ended: it leaves the line, and a turn it held passes on when `room`.
    pub(crate) fn forget(&mut self, id: u32, room: bool) {
        if self.places.is_empty() {
            return;
        }
        match self.places.remove(&id) {
            Some(Place::Parked(ticket, _)) => {
                self.line.remove(&ticket);
            }
            Some(Place::Woken) => {
                self.turns -= 1;
                if room {
                    self.give_turns();
                }
            }
            None => {}
        }
    }

    /// Wakes every parked call (the connection is ending, or the buffer is gone).
    pub(crate) fn wake_all(&mut self) {
        self.line.clear();
        self.turns = 0;
        for (_, place) in self.places.drain() {
            if let Place::Parked(_, waker) = place {
                waker.wake();
            }
        }
    }

    /// Whether no call is parked nor holds a turn.
    pub(crate) fn is_empty(&self) -> bool {
        self.places.is_empty()
    }

    /// Calls parked or holding a turn.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.places.len()
    }

    /// Calls parked, waiting for a turn.
    #[cfg(test)]
    pub(crate) fn parked(&self) -> usize {
        self.line.len()
    }

    /// Calls holding a turn.
    #[cfg(test)]
    pub(crate) fn turns(&self) -> usize {
        self.turns
    }

    /// Whether call `id` holds a turn (woken, not yet back).
    #[cfg(test)]
    pub(crate) fn holds_turn(&self, id: u32) -> bool {
        matches!(self.places.get(&id), Some(Place::Woken))
    }

    /// Whether call `id` has a place (parked, or holding a turn).
    #[cfg(test)]
    pub(crate) fn has_place(&self, id: u32) -> bool {
        self.places.contains_key(&id)
    }
}

#[cfg(test)]
#[path = "turns_tests.rs"]
mod tests;
