//! `ConnTimer`: one `Sleep` for a connection task, re-armed to whatever it waits for next.
//!
//! Both ends keep their deadlines per connection, not per call: the server's connection (the
//! handshake, a half-read frame, idleness, keepalive; `server/timers.rs`) and the client's
//! driver (its unary calls' deadlines; `client/driver.rs`). One timer entry per connection
//! costs tokio's timer wheel nothing per call, where a `Sleep` per call is registered and
//! removed again for every call (about 700 instructions on the client).
//!
//! Why a flag: the task wakes for every read batch, and polling a `Sleep` each time (register
//! the waker, check the entry) costs about 200 instructions. The `Sleep` is polled with a waker
//! of our own ([`Fired`]) that records that the timer went off before it wakes the task; a
//! wake-up for anything else then costs one atomic load.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex},
    task::{Context, Poll, Wake, Waker},
};
use tokio::time::{Instant, Sleep};

/// The waker the `Sleep` is polled with: notes that the timer went off, then wakes the task.
#[derive(Default)]
struct Fired {
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        let task = match self.task.lock() {
            Ok(task) => task.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// A connection task's one timer. See the module docs.
pub(crate) struct ConnTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    /// Shared with the `Sleep`'s registration: set when it fires.
    fired: Arc<Fired>,
    /// `fired` as a waker, made once.
    fired_waker: Waker,
    /// The task waker `fired` wakes (kept here too, to compare without the lock).
    task: Option<Waker>,
    /// The `Sleep` was found elapsed and has not been reset since: poll it again.
    elapsed: bool,
}

impl ConnTimer {
    /// A timer armed for nothing.
    pub(crate) fn new() -> ConnTimer {
        let fired = Arc::new(Fired::default());
        ConnTimer {
            sleep: None,
            armed: None,
            fired_waker: Waker::from(Arc::clone(&fired)),
            fired,
            task: None,
            elapsed: false,
        }
    }

    /// The instant the timer is armed for.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Arms the timer for `at` (`None`: for nothing) and polls it: `Ready` once `at` has
    /// passed. Cheap when `at` is what it was and the timer has not gone off.
    #[inline]
    pub(crate) fn poll_at(&mut self, at: Option<Instant>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(at) = at else {
            self.armed = None;
            return Poll::Pending;
        };
        let same_task = self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if self.armed == Some(at)
            && same_task
            && !self.elapsed
            && !self.fired.fired.load(Ordering::Acquire)
        {
            // Armed, registered for this task, and not gone off: nothing to look at.
            return Poll::Pending;
        }
        self.arm_and_poll(at, same_task, cx)
    }

    /// The rest of [`poll_at`](Self::poll_at), kept out of line so the check above inlines.
    #[inline(never)]
    fn arm_and_poll(&mut self, at: Instant, same_task: bool, cx: &mut Context<'_>) -> Poll<()> {
        if !same_task {
            let task = cx.waker().clone();
            match self.fired.task.lock() {
                Ok(mut slot) => *slot = Some(task.clone()),
                Err(poisoned) => *poisoned.into_inner() = Some(task.clone()),
            }
            self.task = Some(task);
        }
        if self.armed != Some(at) {
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = Some(at);
            self.elapsed = false;
        }
        // Cleared before the poll: a firing from here on sets it again.
        self.fired.fired.store(false, Ordering::Release);
        let polled = match &mut self.sleep {
            Some(sleep) => sleep
                .as_mut()
                .poll(&mut Context::from_waker(&self.fired_waker)),
            None => Poll::Pending,
        };
        self.elapsed = polled.is_ready();
        polled
    }
}
