//! `ConnTimer`: one `Sleep` for a connection task, re-armed to whatever it waits for next.
//!
//! Both ends keep their deadlines per connection, not per call: the server's connection (the
//! handshake, a half-read frame, idleness, keepalive; `server/timers.rs`) and the client's
//! driver (its unary calls' deadlines; `client/driver.rs`). One timer entry per connection
//! costs tokio's timer wheel nothing per call, where a `Sleep` per call is registered and
//! removed again for every call (about 700 instructions on the client).
//!
//! Why a flag: the task wakes for every read batch, and polling a `Sleep` each time (register
//! the waker, check the entry) costs about 200 instructions. The `Sleep` is polled through a
//! [`Notice`] (`notice.rs`), which records that the timer went off before it wakes the task; a
//! wake-up for anything else then costs one atomic load.

use crate::notice::Notice;
use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// About 30 years: the instant "never" stands for (tokio's own, for `sleep(Duration::MAX)`).
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `now + after`, or an instant about 30 years on when the sum does not fit an `Instant`.
///
/// Every duration a user sets (a timeout, a keepalive interval, an age, a rate's window) is
/// added to the clock somewhere; tonic takes `Duration::MAX` as "never", and the plain `+`
/// panicked the task that made the addition (a connection's, the caller's).
#[inline]
pub fn deadline_after(now: Instant, after: Duration) -> Instant {
    match now.checked_add(after) {
        Some(at) => at,
        None => now.checked_add(FAR).unwrap_or(now),
    }
}

/// A connection task's one timer. See the module docs.
pub(crate) struct ConnTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed: Option<Instant>,
    /// What the `Sleep` is polled through: notes that it went off.
    notice: Notice,
    /// The `Sleep` was found elapsed and has not been reset since: poll it again.
    elapsed: bool,
}

impl ConnTimer {
    /// A timer armed for nothing.
    pub(crate) fn new() -> ConnTimer {
        ConnTimer {
            sleep: None,
            armed: None,
            notice: Notice::new(),
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
        if self.armed == Some(at) && !self.elapsed && !self.notice.needs_poll(cx) {
            // Armed, registered for this task, and not gone off: nothing to look at.
            return Poll::Pending;
        }
        self.arm_and_poll(at, cx)
    }

    /// The rest of [`poll_at`](Self::poll_at), kept out of line so the check above inlines.
    #[inline(never)]
    fn arm_and_poll(&mut self, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed != Some(at) {
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = Some(at);
            self.elapsed = false;
        }
        let polled = match &mut self.sleep {
            Some(sleep) => self.notice.poll(sleep.as_mut(), cx),
            None => Poll::Pending,
        };
        self.elapsed = polled.is_ready();
        polled
    }
}
