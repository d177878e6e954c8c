//! Unary calls that ended before their request message arrived, whose message may still come.
//!
//! A server credits the connection window (`CAP_CONNECTION_WINDOW`) with every stream message
//! it drops for a call it no longer knows: the client counted it. A unary call's message the
//! client never counts, so crediting a late one (its call refused at the call limit or for its
//! metadata, expired, cancelled while the message waited behind other calls' pieces) gave the
//! client credit for bytes it never had outstanding: over-credit that let it run past the
//! window by that much, every time. The ids of such calls are kept here until their message
//! arrives, and it is dropped without credit.
//!
//! ```text
//!  OPEN(7, unary) ─▶ answered RESOURCE_EXHAUSTED ─▶ note(7)
//!  MESSAGE(7)     ─▶ call 7 unknown: take(7) → true: dropped, no credit
//!  MESSAGE(9)     ─▶ call 9 (a stream) unknown: take(9) → false: credited back, as before
//! ```
//!
//! The record is bounded ([`KEPT`]): a client that never sends the message of a call it
//! cancelled leaves its id behind, so the oldest is forgotten first. A message that comes after
//! its id was forgotten is credited, as before: too much credit for one message, never too
//! little.

use foldhash::HashSet;
use std::collections::VecDeque;

/// Ids kept at most. A late message follows its OPEN within a few reads (or behind one split
/// message), so a few thousand cover every honest case with room to spare.
pub(super) const KEPT: usize = 4096;

/// The unary calls ended here before their request message arrived.
#[derive(Default)]
pub(super) struct Uncounted {
    /// The ids, in the order noted, to forget the oldest first.
    order: VecDeque<u32>,
    /// The same ids, to look one up; keyed by the peer's call ids: a seeded hash.
    ids: HashSet<u32>,
}

impl Uncounted {
    /// Notes that unary call `id` ended before its request message arrived.
    pub(super) fn note(&mut self, id: u32) {
        if !self.ids.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
    }

    /// Whether `id` was noted (its message is arriving now): forgotten from then on, as a unary
    /// call has one message. Its place in `order` goes when it is the oldest.
    pub(super) fn take(&mut self, id: u32) -> bool {
        self.ids.remove(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noted_id_is_taken_once_and_the_oldest_is_forgotten_past_the_bound() {
        let mut uncounted = Uncounted::default();
        uncounted.note(7);
        assert!(uncounted.take(7));
        assert!(!uncounted.take(7), "a unary call has one message");
        assert!(!uncounted.take(9), "never noted: a stream's message");
        for id in 0..=KEPT as u32 {
            uncounted.note(id);
        }
        assert!(!uncounted.take(0), "the oldest is forgotten");
        assert!(uncounted.take(KEPT as u32));
        assert!(uncounted.order.len() <= KEPT && uncounted.ids.len() <= KEPT);
    }
}
