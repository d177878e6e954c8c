//! The client's retransmission timer: one task per client wakes the calls whose time is up,
//! instead of a tokio timer per call.
//!
//! ```text
//!  call sends ─▶ arm(slot, due) ─ due sooner than the task sleeps? ─yes─▶ wake the task
//!  timer task: sleep until `armed` ─▶ every waiting slot with due ≤ now: Timeout, wake its call
//!              ─▶ armed = the soonest due left ⟲
//!  task dropped (its runtime shut down) ─▶ waiting calls get Rearm: they arm again, and the
//!                                          first one starts a task on its own runtime
//! ```
//!
//! Why: a timer per call registered an entry in tokio's timer wheel as the call first waited and
//! removed it as the call ended, under the time driver's lock both times, and wrapped the call's
//! whole wait in a `Timeout` future. At one call in flight that was about 600 instructions of a
//! UDP call's 8,200 on the client, for a timer that almost never fires (a loopback answer comes
//! in tens of microseconds, the first timeout after 25 ms). Here a call writes its due time into
//! the answer slot it already locks; the task sleeps until the soonest one it was told of and,
//! when it wakes, looks at every call in flight (at most the client's window) and sleeps again.
//! Due times only ever get later as calls follow each other, so the task is woken by a call only
//! when it had nothing to wait for, or when the RTO fell.
//!
//! The task holds the client weakly: it ends when the client is dropped (whose `Drop` wakes it).
//! It runs on the runtime the client was made in, whose reactor drives the client's socket (a
//! client used from other runtimes depends on that one already), or, made outside any, on the
//! runtime of the call that needs it first. A task cannot outlive its runtime: when it ends, the
//! calls waiting on it get [`Incoming::Rearm`](super::super::inbox::Incoming::Rearm) and arm
//! again, which starts another (on the caller's own runtime, if the first one never got to run).

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
/// starts one.
pub(super) fn after_arm(shared: &Arc<Shared>, arm: Arm) {
    match arm {
        Arm::Nothing => {}
        Arm::Wake(waker) => waker.wake(),
        Arm::Spawn { on_caller } => {
            let task = run(Gone {
                client: Arc::downgrade(shared),
                ran: false,
            });
            match &shared.runtime {
                Some(runtime) if !on_caller => drop(runtime.spawn(task)),
                _ => drop(tokio::spawn(task)),
            }
        }
    }
}

/// Wakes the timer task so that it sees the client is gone and ends.
pub(super) fn client_dropped(shared: &Shared) {
    if let Some(waker) = lock(&shared.pending).timer_take_waker() {
        waker.wake();
    }
}

/// Marks the client's timer as gone when the task ends for any reason (dropped unpolled
/// included: its runtime was shut down), so the next call starts another; the calls that were
/// waiting on it arm again.
struct Gone {
    client: Weak<Shared>,
    /// The task was polled: its runtime ran it.
    ran: bool,
}

impl Drop for Gone {
    fn drop(&mut self) {
        let Some(shared) = self.client.upgrade() else {
            return;
        };
        let mut wake = Vec::new();
        lock(&shared.pending).timer_gone(self.ran, &mut wake);
        drop(shared);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// The timer task of the client behind `weak`.
async fn run(mut gone: Gone) {
    gone.ran = true;
    let weak = gone.client.clone();
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
}
