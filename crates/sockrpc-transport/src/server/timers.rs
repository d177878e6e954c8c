//! One timer per connection for everything that must not wait forever on the peer.
//!
//! ```text
//!  before the preface:  handshake_timeout since accept
//!  a frame half-read:   frame_timeout since its first byte arrived    (slowloris)
//!  a split message:     frame_timeout, plus its length so far at min_message_rate, since
//!                       its assembly was first seen open (folded into the frame deadline)
//!  no call in flight:   idle_timeout since the last one ended          (MAX_CONNECTION_IDLE)
//!  OPEN, no MESSAGE:    the call's deadline, or frame_timeout since the OPEN, the last
//!                       piece of a split message or the server's pause (see open.rs)
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
use std::time::Duration;
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

/// The split message in assembly, as the connection first saw it open after a read batch.
///
/// Each piece restarts the frame clock, so the frame deadline alone let pieces of 16 KiB, one
/// per frame timeout, hold a 4 MiB assembly for 256 frame timeouts; the message as a whole
/// must also arrive at `ServerConfig::min_message_rate` ([`due`](Self::due)). Kept apart from
/// [`Deadlines`] and folded into its `frame` (the sooner of the two), so the timer's fast path
/// compares no more fields, and only a batch that ends mid-assembly computes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Assembly {
    /// Its serial number on the connection (`FrameReader::assembly`): a message begun after
    /// another ended in the same batch is a new one.
    pub(super) serial: u64,
    /// When it was first seen open.
    pub(super) since: Instant,
    /// The frame deadline alone, before the floor was folded in: a piece begun (its length
    /// announced, its bytes not all read) moves the floor later but does not restart the frame
    /// clock, which must then go on from here, not from the old fold.
    pub(super) frame: Option<Instant>,
}

impl Assembly {
    /// Notes the split message `seen` (serial number, bytes announced so far; `None` when
    /// none is open) after a read batch, and returns by when it must be whole: `grace` (the
    /// frame timeout) after it was first seen, plus `length` at `rate` bytes per second.
    /// `now` is read only when a new message is first seen. `None` when no message is open, or
    /// `rate` is 0 (no floor).
    pub(super) fn note(
        assembly: &mut Option<Assembly>,
        seen: Option<(u64, u64)>,
        now: impl FnOnce() -> Instant,
        rate: u64,
        grace: Duration,
    ) -> Option<Instant> {
        let Some((serial, length)) = seen else {
            *assembly = None;
            return None;
        };
        let noted = match assembly {
            Some(noted) if noted.serial == serial => *noted,
            _ => *assembly.insert(Assembly {
                serial,
                since: now(),
                frame: None,
            }),
        };
        noted.due(length, rate, grace)
    }

    /// By when the message must be whole, having announced `length` bytes so far: `grace`
    /// after it was first seen, plus `length` at `rate` bytes per second (`None`: no floor, or
    /// a time past what the clock can hold).
    pub(super) fn due(&self, length: u64, rate: u64, grace: Duration) -> Option<Instant> {
        if rate == 0 {
            return None;
        }
        let nanos = u128::from(length) * 1_000_000_000 / u128::from(rate);
        let allowed = Duration::from_nanos(u64::try_from(nanos).ok()?);
        self.since.checked_add(grace)?.checked_add(allowed)
    }
}

/// The connection's one timer.
pub(super) struct Timers {
    pub(super) due: Deadlines,
    /// The split message in assembly, if one was open after the last read batch.
    pub(super) assembly: Option<Assembly>,
    /// When the connection stopped reading (its write buffer past the high-water mark, or
    /// its streams over their budget) with a split message in assembly: that time is the
    /// server's, and moves the message's floor on when reading resumes.
    paused_at: Option<Instant>,
    /// The connection stopped reading and has not read since: when it does, the calls waiting
    /// for their request message are excused the pause (`OpenCalls::excuse`).
    paused: bool,
    timer: ConnTimer,
}

impl Timers {
    pub(super) fn new(due: Deadlines) -> Timers {
        Timers {
            due,
            assembly: None,
            paused_at: None,
            paused: false,
            timer: ConnTimer::new(),
        }
    }

    /// The connection stops reading: with a split message in assembly, notes when (the clock
    /// is read once per pause, and only then).
    pub(super) fn pause(&mut self) {
        self.paused = true;
        if self.assembly.is_some() && self.paused_at.is_none() {
            self.paused_at = Some(Instant::now());
        }
    }

    /// The connection stopped reading at `now` and restarted the message's floor from then:
    /// the pause counts from `now`.
    pub(super) fn pause_from(&mut self, now: Instant) {
        self.paused = true;
        if self.assembly.is_some() {
            self.paused_at = Some(now);
        }
    }

    /// The connection reads again: the split message in assembly had the time it did not
    /// added to its floor (`since` moves on by it). Whether it was paused (the caller then
    /// excuses the calls waiting for their request message). One branch when it was not.
    #[inline]
    pub(super) fn resume(&mut self) -> bool {
        if !self.paused {
            return false;
        }
        self.paused = false;
        if let Some(at) = self.paused_at.take() {
            if let Some(assembly) = &mut self.assembly {
                assembly.since += Instant::now().saturating_duration_since(at);
            }
        }
        true
    }

    /// Whether the connection stopped reading and has not read since (the pause itself may
    /// have ended: it is excused when the next read begins, [`resume`](Self::resume)).
    pub(super) fn paused(&self) -> bool {
        self.paused
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

    #[test]
    fn a_split_message_is_due_a_grace_plus_its_length_at_the_floor_after_it_was_first_seen() {
        let base = Instant::now();
        let grace = Duration::from_secs(30);
        let mut noted = None;
        let clock = |ms: u64| move || base + Duration::from_millis(ms);
        // First seen at 0 with 64 KiB announced, at 32 KiB/s: 30 s + 2 s.
        let due = Assembly::note(&mut noted, Some((1, 64 << 10)), clock(0), 32 << 10, grace);
        assert_eq!(due, Some(base + Duration::from_secs(32)));
        // The same message later, at 4 MiB: counted from when it was first seen, not now.
        let due = Assembly::note(
            &mut noted,
            Some((1, 4 << 20)),
            clock(9_000),
            32 << 10,
            grace,
        );
        assert_eq!(due, Some(base + Duration::from_secs(30 + 128)));
        // The next message (begun in the same batch as the last one ended): counted afresh.
        let due = Assembly::note(
            &mut noted,
            Some((2, 16 << 10)),
            clock(9_000),
            32 << 10,
            grace,
        );
        assert_eq!(
            due,
            Some(base + Duration::from_millis(9_000 + 30_000 + 500))
        );
        // No floor; then no message open.
        assert_eq!(
            Assembly::note(&mut noted, Some((2, 1)), clock(0), 0, grace),
            None
        );
        assert_eq!(Assembly::note(&mut noted, None, clock(0), 1, grace), None);
        assert!(noted.is_none());
        // A length no clock can hold: no deadline rather than a panic.
        let far = Assembly::note(&mut noted, Some((3, u64::MAX)), clock(0), 1, grace);
        assert_eq!(far, None);
    }

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
