//! Answer slots: where the receive path (`inbox.rs`) leaves the answer of each UDP call in
//! flight, and the request buffers calls reuse.
//!
//! ```text
//!  call starts ──▶ open_armed: slot Waiting, due when its first transmission times out,
//!                  a spare request buffer (or a new one)
//!  reader reads an answer ──▶ deliver: Waiting ─▶ Answered, wake the call
//!                                      Answered / Taken / no slot ─▶ a duplicate
//!  call polls ──▶ take: Answered ─▶ Taken, the answer is the call's
//!  call ends ──▶ close: the slot goes (an answer left in it, untaken, counts as a duplicate),
//!                its request buffer waits for the next call
//!  retransmission sent ──▶ arm: the slot's due time again
//!  (the client's timer task, `client/timer.rs`, sleeps until the soonest due time: a slot
//!   past it gets Timeout, and its call wakes)
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
use tokio::runtime::Id as RuntimeId;
use tokio::time::Instant;

/// Request buffers kept for the next calls; past it, buffers are freed.
const MAX_SPARE: usize = 64;
/// Largest buffer kept (twice the default largest datagram, with room for the encoder's
/// growth): the spares hold at most 256 KiB, whatever datagram size a client allows. A larger
/// request's buffer is freed when its call ends.
const MAX_SPARE_CAPACITY: usize = 4096;

/// Where one call's answer is.
enum Slot {
    /// No answer yet; the call's waker, once it waited, and when its timer goes off.
    Waiting {
        waker: Option<Waker>,
        due: Option<Instant>,
    },
    /// The answer came and the call has not taken it yet.
    Answered(Incoming),
    /// The call took its answer: anything more for it is a duplicate.
    Taken,
}

/// The answer slots of a client's calls in flight, spare request buffers, and the state of the
/// client's timer task.
#[derive(Default)]
pub(super) struct Slots {
    calls: HashMap<u32, Slot>,
    spare: Vec<BytesMut>,
    timer: Timer,
    /// The client's runtime shut down (`client/runtime_gone.rs`): every slot that waits, or
    /// would, holds [`Incoming::Gone`].
    gone: bool,
}

/// The client's timer task (`client/timer.rs`), as the calls see it.
#[derive(Default)]
struct Timer {
    /// When the task sleeps until: never later than a waiting call's due time. `None`: no call
    /// waits for it.
    armed: Option<Instant>,
    /// The task's waker, for a call due sooner than `armed`.
    waker: Option<Waker>,
    /// The runtime the task was started on, until it ends.
    running_on: Option<RuntimeId>,
}

/// What a call that armed its slot must do about the timer task.
pub(super) enum Arm {
    /// Nothing: the task wakes in time.
    Nothing,
    /// Wake the task (once the lock is released): the call is due sooner than it sleeps.
    Wake(Waker),
    /// Start a task on the caller's runtime: none runs.
    Spawn,
    /// The task runs on another runtime, which this caller's cannot count on being driven: the
    /// call keeps a timer of its own (its slot is not armed).
    Elsewhere,
}

/// A slot that waits, with no waker yet and no due time.
const WAITING: Slot = Slot::Waiting {
    waker: None,
    due: None,
};

impl Slots {
    /// Opens call `call_id`'s slot; returns an empty request buffer for it and whether other
    /// calls are in flight.
    pub(super) fn open(&mut self, call_id: u32) -> (BytesMut, bool) {
        self.calls.insert(call_id, self.waiting());
        (self.spare.pop().unwrap_or_default(), self.calls.len() > 1)
    }

    /// [`open`](Self::open) and [`arm`](Self::arm) under one lock: the slot opens with its due
    /// time set, for a call that knows when its first transmission times out.
    pub(super) fn open_armed(
        &mut self,
        call_id: u32,
        at: Instant,
        runtime: RuntimeId,
    ) -> (BytesMut, bool, Arm) {
        let (buf, together) = self.open(call_id);
        (buf, together, self.arm(call_id, at, runtime))
    }

    /// Waits again, for a second answer (after a TRUNCATED that a cookie would have avoided).
    pub(super) fn rearm(&mut self, call_id: u32) {
        self.calls.insert(call_id, self.waiting());
    }

    /// What a slot that starts to wait holds: nothing yet, or, once the client's runtime is
    /// gone, that.
    fn waiting(&self) -> Slot {
        if self.gone {
            Slot::Answered(Incoming::Gone)
        } else {
            WAITING
        }
    }

    /// The client's runtime shut down: no answer can be read any more. Every call waiting, and
    /// every call that waits from now on, gets [`Incoming::Gone`] (the wakers of those waiting
    /// join `wake`).
    pub(super) fn runtime_gone(&mut self, wake: &mut Vec<Waker>) {
        self.gone = true;
        for slot in self.calls.values_mut() {
            match slot {
                Slot::Waiting { waker, .. } => wake.extend(waker.take()),
                // An answer stays for its call to take.
                Slot::Answered(held) if held.is_answer() => continue,
                Slot::Answered(_) | Slot::Taken => {}
            }
            *slot = Slot::Answered(Incoming::Gone);
        }
    }

    /// Sets when call `call_id`, on runtime `runtime`, is woken with [`Incoming::Timeout`] if
    /// no answer came (its slot waiting again if its last wait ended; an answer left in it is
    /// left alone, and a closed slot stays closed).
    pub(super) fn arm(&mut self, call_id: u32, at: Instant, runtime: RuntimeId) -> Arm {
        let timer = &mut self.timer;
        let spawn = match timer.running_on {
            Some(id) if id != runtime => return Arm::Elsewhere,
            Some(_) => false,
            None => true,
        };
        let Some(slot) = self.calls.get_mut(&call_id) else {
            return Arm::Nothing;
        };
        match slot {
            Slot::Waiting { due, .. } => *due = Some(at),
            Slot::Taken if self.gone => {
                *slot = Slot::Answered(Incoming::Gone);
                return Arm::Nothing;
            }
            Slot::Taken => {
                *slot = Slot::Waiting {
                    waker: None,
                    due: Some(at),
                }
            }
            Slot::Answered(_) => return Arm::Nothing,
        }
        if spawn {
            timer.running_on = Some(runtime);
            timer.armed = Some(at);
            return Arm::Spawn;
        }
        if timer.armed.is_some_and(|armed| armed <= at) {
            return Arm::Nothing;
        }
        timer.armed = Some(at);
        timer.waker.take().map_or(Arm::Nothing, Arm::Wake)
    }

    /// The timer task's turn: registers its waker, and says until when it sleeps.
    pub(super) fn timer_wait(&mut self, waker: &Waker) -> Option<Instant> {
        match &self.timer.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.timer.waker = Some(waker.clone()),
        }
        self.timer.armed
    }

    /// The timer went off at `now`: every waiting call due by then gets [`Incoming::Timeout`]
    /// (its waker joins `wake`), and the timer is armed for the soonest due time left.
    pub(super) fn expire(&mut self, now: Instant, wake: &mut Vec<Waker>) {
        let mut soonest: Option<Instant> = None;
        for slot in self.calls.values_mut() {
            let Slot::Waiting {
                waker,
                due: Some(due),
            } = slot
            else {
                continue;
            };
            if *due > now {
                soonest = Some(soonest.map_or(*due, |s| s.min(*due)));
                continue;
            }
            wake.extend(waker.take());
            *slot = Slot::Answered(Incoming::Timeout);
        }
        self.timer.armed = soonest;
    }

    /// The timer task ended: its runtime shut down (and with it the calls that counted on it),
    /// or the client is gone. The next call to arm starts another, on its own runtime.
    pub(super) fn timer_gone(&mut self) {
        self.timer = Timer::default();
    }

    /// The timer task's waker, taken: to wake it when the client is dropped.
    pub(super) fn timer_take_waker(&mut self) -> Option<Waker> {
        self.timer.waker.take()
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
            Slot::Waiting { waker, .. } => {
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
            Some(slot @ Slot::Waiting { .. }) => {
                match std::mem::replace(slot, Slot::Answered(incoming)) {
                    Slot::Waiting { waker, .. } => Ok(waker),
                    _ => Ok(None),
                }
            }
            // What the client itself left (a hurry, a timeout) is no answer: an answer takes
            // its place, and a timeout a hurry's (it retransmits too, and counts the loss).
            Some(Slot::Answered(held)) if !held.is_answer() && held.rank() < incoming.rank() => {
                *held = incoming;
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

    /// Closes call `call_id`'s slot; its request buffer is kept for the next call. Returns
    /// whether the slot held an answer from the server that the call never took: a late
    /// answer to a call that ended, or a duplicate of the answer the call read itself
    /// (`inbox.rs`).
    pub(super) fn close(&mut self, call_id: u32, mut buf: BytesMut) -> bool {
        let left = matches!(
            self.calls.remove(&call_id),
            Some(Slot::Answered(incoming)) if incoming.is_answer()
        );
        if self.spare.len() < MAX_SPARE && (1..=MAX_SPARE_CAPACITY).contains(&buf.capacity()) {
            buf.clear();
            self.spare.push(buf);
        }
        left
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
    fn the_runtime_gone_wakes_waiting_calls_and_every_later_wait_ends_at_once() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let mut slots = Slots::default();
        slots.open(1);
        slots.open(2);
        assert!(slots.poll_take(1, &mut cx).is_pending());
        // Call 2's answer came before the end: it stays for the call.
        assert!(slots.deliver(2, truncated()).is_ok());
        let mut wake = Vec::new();
        slots.runtime_gone(&mut wake);
        wake.into_iter().for_each(Waker::wake);
        assert_eq!(count.count(), 1, "the waiting call is woken");
        let gone = |got: Poll<Option<Incoming>>| matches!(got, Poll::Ready(Some(Incoming::Gone)));
        assert!(gone(slots.poll_take(1, &mut cx)));
        assert!(matches!(
            slots.poll_take(2, &mut cx),
            Poll::Ready(Some(Incoming::Truncated { .. }))
        ));
        // A call that waits again, or opens now, does not wait.
        slots.rearm(1);
        assert!(gone(slots.poll_take(1, &mut cx)));
        slots.open(3);
        assert!(gone(slots.poll_take(3, &mut cx)));
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

    #[tokio::test]
    async fn the_timer_sleeps_until_the_soonest_due_call_and_wakes_only_those_due() {
        let (count, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (timer_count, timer_waker) = counting_waker();
        let start = Instant::now();
        let at = |ms| start + std::time::Duration::from_millis(ms);
        let rt = tokio::runtime::Handle::current().id();
        let mut slots = Slots::default();
        let _ = slots.open(1);
        let _ = slots.open(2);
        assert!(matches!(slots.arm(1, at(100), rt), Arm::Spawn));
        assert_eq!(slots.timer_wait(&timer_waker), Some(at(100)));
        // Later than the timer sleeps: nothing to wake.
        assert!(matches!(slots.arm(2, at(300), rt), Arm::Nothing));
        assert!(slots.poll_take(1, &mut cx).is_pending());
        assert!(slots.poll_take(2, &mut cx).is_pending());
        let mut wake = Vec::new();
        slots.expire(at(150), &mut wake);
        assert_eq!(wake.len(), 1, "only call 1 was due");
        wake.drain(..).for_each(Waker::wake);
        assert_eq!(count.count(), 1);
        assert!(matches!(
            slots.poll_take(1, &mut cx),
            Poll::Ready(Some(Incoming::Timeout))
        ));
        assert!(slots.poll_take(2, &mut cx).is_pending());
        assert_eq!(
            slots.timer_wait(&timer_waker),
            Some(at(300)),
            "call 2 is next"
        );
        // Sooner than the timer sleeps: the call wakes it.
        match slots.arm(1, at(200), rt) {
            Arm::Wake(w) => w.wake(),
            _ => panic!("a sooner due time must wake the timer task"),
        }
        assert_eq!(timer_count.count(), 1);
        assert_eq!(slots.timer_wait(&timer_waker), Some(at(200)));
        // An answer that came takes the timeout's place; one left alone is not armed over.
        slots.expire(at(250), &mut wake);
        assert!(slots.deliver(1, truncated()).is_ok());
        assert!(matches!(slots.arm(1, at(400), rt), Arm::Nothing));
        assert!(matches!(
            slots.poll_take(1, &mut cx),
            Poll::Ready(Some(Incoming::Truncated { .. }))
        ));
        assert!(!slots.close(1, BytesMut::new()), "its answer was taken");
        assert!(!slots.close(2, BytesMut::new()), "it still waited");
        // A timeout left in a slot is no answer; an answer left in one is.
        let _ = slots.open(3);
        let _ = slots.arm(3, at(260), rt);
        slots.expire(at(270), &mut wake);
        assert!(!slots.close(3, BytesMut::new()), "a timeout");
        wake.clear();
        let _ = slots.open(3);
        assert!(slots.deliver(3, truncated()).is_ok());
        assert!(slots.close(3, BytesMut::new()), "an answer left untaken");
        slots.expire(at(1000), &mut wake);
        assert!(wake.is_empty());
        assert_eq!(
            slots.timer_wait(&timer_waker),
            None,
            "nothing left to wait for"
        );
    }

    #[test]
    fn a_call_on_another_runtime_than_the_timers_keeps_its_own_timer() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        };
        let (first, second) = (runtime(), runtime());
        let (one, two) = (first.handle().id(), second.handle().id());
        let start = first.block_on(async { Instant::now() });
        let mut slots = Slots::default();
        let _ = slots.open(1);
        let _ = slots.open(2);
        assert!(matches!(slots.arm(1, start, one), Arm::Spawn));
        assert!(matches!(slots.arm(2, start, two), Arm::Elsewhere));
        let mut wake = Vec::new();
        slots.expire(start, &mut wake);
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            slots.poll_take(2, &mut cx).is_pending(),
            "the other runtime's call is not the timer's to wake"
        );
        // The task ended (its runtime shut down): the next call starts one on its own.
        slots.timer_gone();
        assert!(matches!(slots.arm(2, start, two), Arm::Spawn));
        // An answer outranks a timeout, a timeout a hurry.
        assert!(
            slots.deliver(1, Incoming::Hurry).is_err(),
            "call 1 timed out"
        );
        assert!(slots.deliver(1, truncated()).is_ok());
        assert!(slots.deliver(1, Incoming::Timeout).is_err());
        assert!(slots.deliver(2, Incoming::Hurry).is_ok());
        assert!(slots.deliver(2, Incoming::Timeout).is_ok());
        assert!(slots.deliver(2, Incoming::Hurry).is_err());
        slots.close(1, BytesMut::new());
        assert!(
            matches!(slots.arm(1, start, two), Arm::Nothing),
            "a closed slot stays closed"
        );
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
