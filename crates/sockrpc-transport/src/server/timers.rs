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
