//! The client's retransmission timer: one task per client wakes the calls whose time is up,
//! instead of a tokio timer per call.
//!
//! ```text
//!  call sends ─▶ arm(slot, due) ─ due sooner than the task sleeps? ─yes─▶ wake the task
//!  timer task: sleep until `armed` ─▶ every waiting slot with due ≤ now: Timeout, wake its call
//!              ─▶ armed = the soonest due left ⟲
//! ```
//!
//! Why: a timer per call registered an entry in tokio's timer wheel as the call first waited and
//! removed it as the call ended, under the time driver's lock both times, and wrapped the call's
//! whole wait in a `Timeout` future. At one call in flight that was about 600 instructions of a
//! UDP call's 8,200 on the client, for a timer that almost never fires (a loopback answer comes
//! in tens of microseconds, the first timeout after 25 ms). Here a call writes its due time into
//! the answer slot it already locks; the task sleeps until the soonest one it was told of and,
//! when it wakes, looks at every call in flight (at most the client's window) and sleeps again.
//! While calls follow each other within an RTO, due times only get later, so a call wakes the
//! task only when it had nothing to wait for (the first call after a quiet spell), or when the
//! RTO fell.
//!
//! The task runs on the runtime of the call that started it, and serves the calls of that
//! runtime only: a call polled on another runtime (a client shared between runtimes) cannot
//! count on that one being driven, so it keeps a `timeout_at` of its own, as every call did
//! before. The task holds the client weakly and ends with it (the client's `Drop` wakes it), or
//! with its runtime, whose calls end with it; the next call to arm then starts another.

use super::super::slots::Arm;
use super::{lock, Shared};
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Poll, Waker};
use tokio::time::Instant;

/// Most times one poll of the task sleeps and fires before it yields: a burst of due times a
/// tick apart is taken a few at a time, not in one unbounded loop.
const FIRES_PER_POLL: usize = 8;

/// Acts on what [`Slots::arm`](super::super::slots::Slots::arm) said: wakes the timer task, or
/// starts one. `false`: the call must keep a timer of its own (the task runs elsewhere, or
/// could not start: this runtime is shutting down).
pub(super) fn after_arm(shared: &Arc<Shared>, arm: Arm) -> bool {
    match arm {
        Arm::Nothing => true,
        Arm::Wake(waker) => {
            waker.wake();
            true
        }
        Arm::Elsewhere => false,
        Arm::Spawn => {
            let task = tokio::spawn(run(Gone(Arc::downgrade(shared))));
            // A runtime that is shutting down drops what it is given at once (and `Gone` has
            // said so).
            !task.is_finished()
        }
    }
}

/// Wakes the timer task so that it sees the client is gone and ends.
pub(super) fn client_dropped(shared: &Shared) {
    let waker = lock(&shared.pending).timer_take_waker();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Marks the client's timer as gone when the task ends for any reason (dropped unpolled
/// included), so that the next call to arm starts another.
struct Gone(Weak<Shared>);

impl Drop for Gone {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            lock(&shared.pending).timer_gone();
        }
    }
}

/// The timer task of the client behind `gone`.
async fn run(gone: Gone) {
    let weak = gone.0.clone();
    let mut sleep = pin!(tokio::time::sleep_until(Instant::now()));
    let mut wake = Vec::new();
    std::future::poll_fn(|cx| {
        for _ in 0..FIRES_PER_POLL {
            let Some(shared) = weak.upgrade() else {
                return Poll::Ready(());
            };
            let armed = lock(&shared.pending).timer_wait(cx.waker());
            drop(shared);
            let Some(at) = armed else {
                return Poll::Pending;
            };
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            ready!(sleep.as_mut().poll(cx));
            let Some(shared) = weak.upgrade() else {
                return Poll::Ready(());
            };
            lock(&shared.pending).expire(Instant::now(), &mut wake);
            drop(shared);
            wake.drain(..).for_each(Waker::wake);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
    drop(gone);
}
