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
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use tokio::time::{Instant, Sleep};

/// Request buffers kept for the next calls. A buffer holds at most the client's largest
/// datagram (a request that does not fit is never encoded), so this bounds what is kept to a
/// few tens of KiB while the calls in flight at once stay under it; past it, buffers are freed.
const MAX_SPARE: usize = 64;

/// Where one call's answer is.
enum Slot {
    /// No answer yet; the call's waker, once it waited, and when it stops waiting (its
    /// retransmission timer, or its deadline), once it said.
    Waiting {
        waker: Option<Waker>,
        wake_at: Option<Instant>,
    },
    /// The answer came and the call has not taken it yet.
    Answered(Incoming),
    /// The call took its answer: anything more for it is a duplicate.
    Taken,
    /// Its time to wait passed with no answer; the call is told at its next poll.
    TimedOut,
}

/// What a waiting call gets from its slot.
pub(super) enum Answer {
    /// Its answer.
    Came(Incoming),
    /// Its time passed with no answer (it reads what is in the socket before it retransmits).
    TimedOut,
    /// It has no slot waiting (closed, or its answer taken already).
    Gone,
}

/// The answer slots of a client's calls in flight, their one timer, and spare request buffers.
///
/// The timer: each call used to wait for its answer under a `timeout_at` of its own, a timer
/// entry put into the runtime's wheel and taken out again on every call. Here one timer serves
/// every call, armed for the soonest time one of them stops waiting, and moved only when a call
/// needs it sooner or when it fires (then the calls whose time passed are woken, and it is
/// armed for the next). It wakes the call that last polled it (`owner`); a call polls it only
/// when it is the owner, or there is none, or it moved. When the owner ends, another waiting
/// call is woken to take the timer over.
#[derive(Default)]
pub(super) struct Slots {
    calls: HashMap<u32, Slot>,
    spare: Vec<BytesMut>,
    timer: Option<Pin<Box<Sleep>>>,
    /// What the timer is set for, while some call waits on it.
    armed: Option<Instant>,
    /// The call whose task the timer wakes.
    owner: Option<u32>,
}

impl Slots {
    /// Opens call `call_id`'s slot; returns an empty request buffer for it and whether other
    /// calls are in flight.
    pub(super) fn open(&mut self, call_id: u32) -> (BytesMut, bool) {
        self.calls.insert(
            call_id,
            Slot::Waiting {
                waker: None,
                wake_at: None,
            },
        );
        (self.spare.pop().unwrap_or_default(), self.calls.len() > 1)
    }

    /// Waits again, for a second answer (after a TRUNCATED that a cookie would have avoided).
    pub(super) fn rearm(&mut self, call_id: u32) {
        self.calls.insert(
            call_id,
            Slot::Waiting {
                waker: None,
                wake_at: None,
            },
        );
    }

    /// The call's answer once it came, or `TimedOut` once `wake_at` passed without it.
    pub(super) fn poll_answer(
        &mut self,
        call_id: u32,
        wake_at: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Answer> {
        let Some(slot) = self.calls.get_mut(&call_id) else {
            return Poll::Ready(Answer::Gone);
        };
        let fresh = match slot {
            Slot::Waiting { waker, wake_at: at } => {
                *at = Some(wake_at);
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => false,
                    _ => {
                        *waker = Some(cx.waker().clone());
                        true
                    }
                }
            }
            Slot::Answered(_) => {
                return match std::mem::replace(slot, Slot::Taken) {
                    Slot::Answered(incoming) => Poll::Ready(Answer::Came(incoming)),
                    _ => Poll::Ready(Answer::Gone),
                }
            }
            Slot::Taken => return Poll::Ready(Answer::Gone),
            Slot::TimedOut => return Poll::Ready(self.timed_out(call_id)),
        };
        if self.watch(call_id, wake_at, fresh, cx) {
            return Poll::Ready(self.timed_out(call_id));
        }
        Poll::Pending
    }

    /// Tells a call its time passed: its slot waits again, for the time it names next.
    fn timed_out(&mut self, call_id: u32) -> Answer {
        self.calls.insert(
            call_id,
            Slot::Waiting {
                waker: None,
                wake_at: None,
            },
        );
        Answer::TimedOut
    }

    /// Keeps the timer armed for `wake_at` at the latest, and polled by a waiting task; runs
    /// it when it fired. Returns whether call `call_id`'s own time has passed.
    fn watch(&mut self, call_id: u32, wake_at: Instant, fresh: bool, cx: &mut Context<'_>) -> bool {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(wake_at)));
        if self.armed.is_none_or(|armed| wake_at < armed) {
            timer.as_mut().reset(wake_at);
            self.armed = Some(wake_at);
            self.owner = None;
        }
        let polled = self.owner.is_none_or(|owner| owner == call_id);
        if !polled || (!fresh && self.owner == Some(call_id) && !timer.is_elapsed()) {
            // Another waiting call gets the timer's wake-up; or this one does, and it has not
            // fired.
            return false;
        }
        if timer.as_mut().poll(cx).is_pending() {
            self.owner = Some(call_id);
            return false;
        }
        self.fire(call_id, cx);
        matches!(self.calls.get(&call_id), Some(Slot::TimedOut))
    }

    /// The timer went off: every call whose time passed is woken to hear it (`me`, polling,
    /// hears it now); the timer is armed for the soonest left, and polled by this task.
    fn fire(&mut self, me: u32, cx: &mut Context<'_>) {
        let now = Instant::now();
        let mut soonest: Option<Instant> = None;
        for (id, slot) in self.calls.iter_mut() {
            let Slot::Waiting {
                waker,
                wake_at: Some(at),
            } = slot
            else {
                continue;
            };
            if *at <= now {
                // Woken under the lock: the task runs later, and takes the lock then.
                if let Some(waker) = waker.take().filter(|_| *id != me) {
                    waker.wake();
                }
                *slot = Slot::TimedOut;
            } else if soonest.is_none_or(|s| *at < s) {
                soonest = Some(*at);
            }
        }
        self.armed = soonest;
        self.owner = None;
        if let (Some(next), Some(timer)) = (soonest, self.timer.as_mut()) {
            timer.as_mut().reset(next);
            // Reset to a time still ahead: this registers this task, and does not fire.
            if timer.as_mut().poll(cx).is_pending() {
                self.owner = Some(me);
            }
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
            Some(slot @ (Slot::Waiting { .. } | Slot::TimedOut)) => {
                match std::mem::replace(slot, Slot::Answered(incoming)) {
                    Slot::Waiting { waker, .. } => Ok(waker),
                    _ => Ok(None),
                }
            }
            _ => Err(incoming),
        }
    }

    /// Closes call `call_id`'s slot; its request buffer is kept for the next call. Returns the
    /// waker of a call to wake, when the one closed was the timer's owner and others wait on
    /// the timer: it takes the timer over.
    pub(super) fn close(&mut self, call_id: u32, mut buf: BytesMut) -> Option<Waker> {
        self.calls.remove(&call_id);
        if self.spare.len() < MAX_SPARE && buf.capacity() > 0 {
            buf.clear();
            self.spare.push(buf);
        }
        if self.owner != Some(call_id) {
            return None;
        }
        self.owner = None;
        self.armed?;
        self.calls.values().find_map(|slot| match slot {
            Slot::Waiting {
                waker: Some(waker),
                wake_at: Some(_),
            } => Some(waker.clone()),
            _ => None,
        })
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
    use std::future::poll_fn;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn truncated() -> Incoming {
        Incoming::Truncated { fits: false }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_wakes_its_call_once_and_a_second_is_a_duplicate() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut slots = Slots::default();
        let (_, together) = slots.open(7);
        assert!(!together);
        assert!(slots.poll_answer(7, later(), &mut cx).is_pending());
        let woken = slots.deliver(7, truncated());
        woken
            .ok()
            .flatten()
            .expect("the waiting call's waker")
            .wake();
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
        assert!(slots.deliver(7, truncated()).is_err(), "second answer");
        let got = slots.poll_answer(7, later(), &mut cx);
        assert!(matches!(got, Poll::Ready(Answer::Came(_))));
        assert!(slots.deliver(7, truncated()).is_err(), "answer after take");
        let got = slots.poll_answer(7, later(), &mut cx);
        assert!(matches!(got, Poll::Ready(Answer::Gone)));
        assert!(slots.deliver(8, truncated()).is_err(), "no such call");
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
            assert!(slots.close(id, buf).is_none(), "no timer in use");
        }
        assert_eq!(slots.len(), 0);
        assert_eq!(slots.spare.len(), MAX_SPARE);
        let (buf, _) = slots.open(1);
        assert!(buf.is_empty(), "a reused buffer starts empty");
        assert!(buf.capacity() >= 7, "and keeps its room");
    }

    /// Waits as a call does, on its own task, until its answer or its time; then ends, as a
    /// call does, closing its slot (and handing the timer on).
    async fn wait(slots: Arc<Mutex<Slots>>, id: u32, wake_at: Instant) -> &'static str {
        let answer = poll_fn(|cx| {
            let mut slots = slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.poll_answer(id, wake_at, cx)
        })
        .await;
        let heir = slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .close(id, BytesMut::new());
        if let Some(waker) = heir {
            waker.wake();
        }
        match answer {
            Answer::Came(_) => "came",
            Answer::TimedOut => "timed out",
            Answer::Gone => "gone",
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_timer_times_out_each_call_at_its_own_time() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let start = Instant::now();
        let ids = [1u32, 2, 3];
        let mut tasks = tokio::task::JoinSet::new();
        for (n, id) in ids.into_iter().enumerate() {
            let _ = slots.lock().expect("lock").open(id);
            let wake_at = start + Duration::from_millis(10 * (n as u64 + 1));
            let slots = Arc::clone(&slots);
            tasks.spawn(async move { (id, wait(slots, id, wake_at).await, Instant::now()) });
        }
        let mut ended = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            ended.push(joined.expect("task"));
        }
        ended.sort_by_key(|(id, _, _)| *id);
        for (n, (id, how, at)) in ended.into_iter().enumerate() {
            assert_eq!(how, "timed out", "call {id}");
            assert_eq!(
                at - start,
                Duration::from_millis(10 * (n as u64 + 1)),
                "call {id}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_passes_on_when_its_owner_ends() {
        let slots = Arc::new(Mutex::new(Slots::default()));
        let start = Instant::now();
        let _ = slots.lock().expect("lock").open(1);
        let _ = slots.lock().expect("lock").open(2);
        // Call 1 arms the timer first, for sooner, and owns it; call 2 waits on it too.
        let first = tokio::spawn(wait(
            Arc::clone(&slots),
            1,
            start + Duration::from_millis(50),
        ));
        tokio::task::yield_now().await;
        let second = tokio::spawn(wait(
            Arc::clone(&slots),
            2,
            start + Duration::from_millis(80),
        ));
        tokio::task::yield_now().await;
        // Call 1 ends (answered, say) before its time: its task is gone.
        first.abort();
        let waker = slots
            .lock()
            .expect("lock")
            .close(1, BytesMut::new())
            .expect("the other waiting call, to take the timer over");
        waker.wake();
        assert_eq!(second.await.expect("task"), "timed out");
        assert_eq!(Instant::now() - start, Duration::from_millis(80));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_after_the_time_passed_is_still_taken() {
        let mut slots = Slots::default();
        let _ = slots.open(5);
        let wake_at = Instant::now() + Duration::from_millis(5);
        let got = wait_once(&mut slots, 5, wake_at).await;
        assert!(matches!(got, Answer::TimedOut));
        // Between the timeout and the call's look at the socket, its answer comes.
        assert!(slots.deliver(5, truncated()).is_ok());
        assert!(slots.try_take(5).is_some());
    }

    async fn wait_once(slots: &mut Slots, id: u32, wake_at: Instant) -> Answer {
        poll_fn(|cx| slots.poll_answer(id, wake_at, cx)).await
    }
}
