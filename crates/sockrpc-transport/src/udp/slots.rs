//! Answer slots: where the receive path (`inbox.rs`) leaves the answer of each UDP call in
//! flight, and the request buffers calls reuse.
//!
//! ```text
//!  call starts ──▶ open: slot Waiting, a spare request buffer (or a new one)
//!  reader reads an answer ──▶ deliver: Waiting ─▶ Answered, wake the call
//!                                      Answered / Taken / no slot ─▶ a duplicate
//!  call polls ──▶ take: Answered ─▶ Taken, the answer is the call's
//!  call ends ──▶ close: the slot goes, its request buffer waits for the next call
//! ```
//!
//! A slot is a waker and, once it came, the answer, in one map under one lock: no allocation
//! per call. (A `oneshot` channel per call cost a `malloc` and its reference counting, and the
//! request buffer another `malloc` grown by the encoder: two of a UDP call's three allocations
//! on the client.) The lock is the one every call already took to join and to leave the map.

use super::inbox::Incoming;
use bytes::BytesMut;
use foldhash::HashMap;
use std::task::{Context, Poll, Waker};

/// Request buffers kept for the next calls; past it, buffers are freed.
const MAX_SPARE: usize = 64;
/// Largest buffer kept (twice the default largest datagram, with room for the encoder's
/// growth): the spares hold at most 256 KiB, whatever datagram size a client allows. A larger
/// request's buffer is freed when its call ends.
const MAX_SPARE_CAPACITY: usize = 4096;

/// Where one call's answer is.
enum Slot {
    /// No answer yet; the call's waker, once it waited.
    Waiting(Option<Waker>),
    /// The answer came and the call has not taken it yet.
    Answered(Incoming),
    /// The call took its answer: anything more for it is a duplicate.
    Taken,
}

/// The answer slots of a client's calls in flight, and spare request buffers.
#[derive(Default)]
pub(super) struct Slots {
    calls: HashMap<u32, Slot>,
    spare: Vec<BytesMut>,
}

impl Slots {
    /// Opens call `call_id`'s slot; returns an empty request buffer for it and whether other
    /// calls are in flight.
    pub(super) fn open(&mut self, call_id: u32) -> (BytesMut, bool) {
        self.calls.insert(call_id, Slot::Waiting(None));
        (self.spare.pop().unwrap_or_default(), self.calls.len() > 1)
    }

    /// Waits again, for a second answer (after a TRUNCATED that a cookie would have avoided).
    pub(super) fn rearm(&mut self, call_id: u32) {
        self.calls.insert(call_id, Slot::Waiting(None));
    }

    /// The call's answer, once it came; `Ready(None)` if the call has no slot waiting (it was
    /// closed, or its answer taken).
    pub(super) fn poll_take(
        &mut self,
        call_id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Incoming>> {
        let Some(slot) = self.calls.get_mut(&call_id) else {
            return Poll::Ready(None);
        };
        match slot {
            Slot::Waiting(waker) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Slot::Answered(_) => match std::mem::replace(slot, Slot::Taken) {
                Slot::Answered(incoming) => Poll::Ready(Some(incoming)),
                _ => Poll::Ready(None),
            },
            Slot::Taken => Poll::Ready(None),
        }
    }

    /// The call's answer if it came, without waiting.
    pub(super) fn try_take(&mut self, call_id: u32) -> Option<Incoming> {
        let slot = self.calls.get_mut(&call_id)?;
        if !matches!(slot, Slot::Answered(_)) {
            return None;
        }
        match std::mem::replace(slot, Slot::Taken) {
            Slot::Answered(incoming) => Some(incoming),
            _ => None,
        }
    }

    /// Leaves `incoming` in call `call_id`'s slot. `Err`: no call waits for it (a duplicate,
    /// or a late answer to a call that ended); `Ok` with the waker to call once the lock is
    /// released.
    pub(super) fn deliver(
        &mut self,
        call_id: u32,
        incoming: Incoming,
    ) -> Result<Option<Waker>, Incoming> {
        match self.calls.get_mut(&call_id) {
            Some(slot @ Slot::Waiting(_)) => {
                match std::mem::replace(slot, Slot::Answered(incoming)) {
                    Slot::Waiting(waker) => Ok(waker),
                    _ => Ok(None),
                }
            }
            // A hurry not yet taken is no answer: the answer takes its place.
            Some(slot @ Slot::Answered(Incoming::Hurry))
                if !matches!(incoming, Incoming::Hurry) =>
            {
                *slot = Slot::Answered(incoming);
                Ok(None)
            }
            _ => Err(incoming),
        }
    }

    /// Tells call `call_id`, if it still waits, to retransmit now ([`Incoming::Hurry`]); the
    /// waker to call once the lock is released.
    pub(super) fn hurry(&mut self, call_id: u32) -> Option<Waker> {
        self.deliver(call_id, Incoming::Hurry).ok().flatten()
    }

    /// Closes call `call_id`'s slot; its request buffer is kept for the next call.
    pub(super) fn close(&mut self, call_id: u32, mut buf: BytesMut) {
        self.calls.remove(&call_id);
        if self.spare.len() < MAX_SPARE && (1..=MAX_SPARE_CAPACITY).contains(&buf.capacity()) {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Calls in flight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wake_count::counting_waker;

    fn truncated() -> Incoming {
        Incoming::Truncated { fits: false }
    }

    #[test]
    fn an_answer_wakes_its_call_once_and_a_second_is_a_duplicate() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut slots = Slots::default();
        let (_, together) = slots.open(7);
        assert!(!together);
        assert!(slots.poll_take(7, &mut cx).is_pending());
        let woken = slots.deliver(7, truncated());
        woken
            .ok()
            .flatten()
            .expect("the waiting call's waker")
            .wake();
        assert_eq!(count.count(), 1);
        assert!(slots.deliver(7, truncated()).is_err(), "second answer");
        assert!(matches!(slots.poll_take(7, &mut cx), Poll::Ready(Some(_))));
        assert!(slots.deliver(7, truncated()).is_err(), "answer after take");
        assert!(matches!(slots.poll_take(7, &mut cx), Poll::Ready(None)));
        assert!(slots.deliver(8, truncated()).is_err(), "no such call");
    }

    #[test]
    fn a_hurry_wakes_a_waiting_call_and_gives_way_to_its_answer() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut slots = Slots::default();
        let _ = slots.open(7);
        assert!(slots.poll_take(7, &mut cx).is_pending());
        slots.hurry(7).expect("the waiting call's waker").wake();
        assert_eq!(count.count(), 1);
        assert!(slots.hurry(7).is_none(), "told once");
        // The answer comes before the call looked: it takes the hurry's place.
        assert!(slots.deliver(7, truncated()).is_ok());
        assert!(matches!(
            slots.poll_take(7, &mut cx),
            Poll::Ready(Some(Incoming::Truncated { .. }))
        ));
        assert!(slots.hurry(7).is_none(), "nothing to hurry once answered");
        assert!(slots.hurry(8).is_none(), "no such call");
    }

    #[test]
    fn a_rearmed_slot_takes_a_second_answer() {
        let mut slots = Slots::default();
        let _ = slots.open(1);
        assert!(slots.try_take(1).is_none());
        assert!(slots.deliver(1, truncated()).is_ok());
        assert!(slots.try_take(1).is_some());
        slots.rearm(1);
        assert!(slots.deliver(1, truncated()).is_ok());
        assert!(slots.try_take(1).is_some());
    }

    #[test]
    fn buffers_are_reused_and_the_spares_bounded() {
        let mut slots = Slots::default();
        let mut open = Vec::new();
        for id in 0..(MAX_SPARE as u32 + 10) {
            let (mut buf, together) = slots.open(id);
            assert_eq!(together, id > 0);
            buf.extend_from_slice(b"request");
            open.push((id, buf));
        }
        for (id, buf) in open {
            slots.close(id, buf);
        }
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.spare.len(), MAX_SPARE);
        let (buf, _) = slots.open(1);
        assert!(buf.is_empty(), "a reused buffer starts empty");
        assert!(buf.capacity() >= 7, "and keeps its room");
        slots.close(1, buf);
        let big = BytesMut::with_capacity(MAX_SPARE_CAPACITY + 1);
        let _ = slots.open(2);
        let spares = slots.spare.len();
        slots.close(2, big);
        assert_eq!(slots.spare.len(), spares, "a large buffer is not kept");
    }
}
