//! One timer per connection for everything that must not wait forever on the peer.
//!
//! ```text
//!  before the preface:  handshake_timeout since accept
//!  a frame half-read:   frame_timeout since its first byte arrived    (slowloris)
//!  no call in flight:   idle_timeout since the last one ended          (MAX_CONNECTION_IDLE)
//!  OPEN, no MESSAGE:    the call's deadline, or frame_timeout since the OPEN or the
//!                       last piece of a split message                  (see open.rs)
//!  nothing received:    keepalive interval, then PING; no PONG within its timeout: closed
//!  since accept:        max_connection_age, then GOAWAY; its grace, then closed (age.rs)
//! ```
//!
//! Why one: these are all "the peer owes us something by then" (or, for the age, "time for a
//! new connection"); keeping a single `Sleep` reset
//! to the soonest of them costs one timer entry per connection, and nothing on a call's path
//! when none of them changes.
//!
//! The timer itself is a [`ConnTimer`] (`crate::timer`): polled with a waker that records that
//! it went off, so a wake-up for anything else costs one atomic load.

use crate::timer::ConnTimer;
use std::task::{Context, Poll};
use tokio::time::Instant;

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
    /// The connection reaches its maximum age (or, sent away for it, its grace ends).
    pub(super) age: Option<Instant>,
}

impl Deadlines {
    /// Read twice on every wake-up of the connection, so written as plain comparisons: the
    /// iterator it replaces (`flatten().min()` over the five) cost about 30 instructions more
    /// per call at one call in flight (callgrind, server side).
    fn soonest(&self) -> Option<Instant> {
        fn earlier(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
        earlier(
            earlier(earlier(self.handshake, self.frame), self.age),
            earlier(earlier(self.idle, self.open), self.keepalive),
        )
    }
}

/// The connection's one timer.
pub(super) struct Timers {
    pub(super) due: Deadlines,
    timer: ConnTimer,
}

impl Timers {
    pub(super) fn new(due: Deadlines) -> Timers {
        Timers {
            due,
            timer: ConnTimer::new(),
        }
    }

    /// Whether the deadlines changed since the timer was last armed (so it must be polled
    /// again to re-arm).
    pub(super) fn stale(&self) -> bool {
        self.timer.armed() != self.due.soonest()
    }

    /// Arms the timer for the soonest deadline and polls it: `Ready` when it has passed (the
    /// caller then checks which, with [`Deadlines`] and the clock).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.poll_at(self.due.soonest(), cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn soonest_is_the_earliest_set_deadline_for_every_combination() {
        let base = Instant::now();
        // Offsets out of order, so the earliest is not always the first field.
        let at = [30u64, 10, 50, 20, 40, 5].map(|ms| base + Duration::from_millis(ms));
        for mask in 0u32..64 {
            let pick = |i: usize| (mask & (1 << i) != 0).then_some(at[i]);
            let due = Deadlines {
                handshake: pick(0),
                frame: pick(1),
                idle: pick(2),
                open: pick(3),
                keepalive: pick(4),
                age: pick(5),
            };
            let expected = (0..6).filter_map(pick).min();
            assert_eq!(due.soonest(), expected, "fields set: {mask:06b}");
        }
    }
}
