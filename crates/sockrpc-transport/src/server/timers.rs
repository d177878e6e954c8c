//! One timer per connection for everything that must not wait forever on the peer.
//!
//! ```text
//!  before the preface:  handshake_timeout since accept
//!  a frame half-read:   frame_timeout since its first byte arrived    (slowloris)
//!  no call in flight:   idle_timeout since the last one ended          (MAX_CONNECTION_IDLE)
//!  OPEN, no MESSAGE:    the call's deadline, or frame_timeout          (see open.rs)
//!  nothing received:    keepalive interval, then PING; no PONG within its timeout: closed
//! ```
//!
//! Why one: these are all "the peer owes us something by then"; keeping a single `Sleep` reset
//! to the soonest of them costs one timer entry per connection, and nothing on a call's path
//! when none of them changes.
//!
//! Why a flag: the connection wakes for every read batch, and polling a `Sleep` each time
//! (register the waker, check the entry) cost about 200 instructions per call. The `Sleep` is
//! polled with a waker of our own ([`Fired`]) that records that the timer went off before it
//! wakes the connection; a wake-up for anything else then costs one atomic load.

use std::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex},
    task::{Context, Poll, Wake, Waker},
};
use tokio::time::{Instant, Sleep};

/// What the connection is waiting for, each with the instant it gives up.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Deadlines {
    /// The preface is due.
    pub(super) handshake: Option<Instant>,
    /// A frame started arriving and must finish.
    pub(super) frame: Option<Instant>,
    /// The connection has been idle and will be closed.
    pub(super) idle: Option<Instant>,
    /// The soonest OPEN still waiting for its MESSAGE expires.
    pub(super) open: Option<Instant>,
    /// Keepalive: a PING is due (or, one being unanswered, the PONG is overdue).
    pub(super) keepalive: Option<Instant>,
}

impl Deadlines {
    fn soonest(&self) -> Option<Instant> {
        [
            self.handshake,
            self.frame,
            self.idle,
            self.open,
            self.keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The waker the `Sleep` is polled with: notes that the timer went off, then wakes the
/// connection's task.
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

/// The connection's one timer.
pub(super) struct Timers {
    pub(super) due: Deadlines,
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

impl Timers {
    pub(super) fn new(due: Deadlines) -> Timers {
        let fired = Arc::new(Fired::default());
        Timers {
            due,
            sleep: None,
            armed: None,
            fired_waker: Waker::from(Arc::clone(&fired)),
            fired,
            task: None,
            elapsed: false,
        }
    }

    /// Whether the deadlines changed since the timer was last armed (so it must be polled
    /// again to re-arm).
    pub(super) fn stale(&self) -> bool {
        self.armed != self.due.soonest()
    }

    /// Arms the timer for the soonest deadline and polls it: `Ready` when it has passed (the
    /// caller then checks which, with [`Deadlines`] and the clock).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(soonest) = self.due.soonest() else {
            self.armed = None;
            return Poll::Pending;
        };
        let same_task = self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if self.armed == Some(soonest)
            && same_task
            && !self.elapsed
            && !self.fired.fired.load(Ordering::Acquire)
        {
            // Armed, registered for this task, and not gone off: nothing to look at.
            return Poll::Pending;
        }
        if !same_task {
            let task = cx.waker().clone();
            match self.fired.task.lock() {
                Ok(mut slot) => *slot = Some(task.clone()),
                Err(poisoned) => *poisoned.into_inner() = Some(task.clone()),
            }
            self.task = Some(task);
        }
        if self.armed != Some(soonest) {
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(soonest),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(soonest))),
            }
            self.armed = Some(soonest);
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
