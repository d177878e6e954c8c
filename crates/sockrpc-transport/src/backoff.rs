//! Reconnect backoff, as gRPC's `connection-backoff.md` specifies.
//!
//! ```text
//!  attempt 1 ──fail──▶ wait until 1 s after it began ──▶ attempt 2 ──fail──▶ wait 1.6 s ± 20 % ...
//!  each wait = min(previous × 1.6, 120 s) ± 20 % jitter; each attempt may take
//!  max(time to the next attempt, 20 s) to connect; only a completed handshake resets it.
//! ```

use std::time::Duration;

/// Backoff between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// The first wait. gRPC: 1 s.
    pub initial: Duration,
    /// Growth per failed attempt. gRPC: 1.6.
    pub multiplier: f64,
    /// Random spread, as a fraction of the wait. gRPC: 0.2.
    pub jitter: f64,
    /// The longest wait. gRPC: 120 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            jitter: 0.2,
            max: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    /// A backoff starting at `initial`, with gRPC's growth, jitter and cap.
    pub fn starting_at(initial: Duration) -> Backoff {
        Backoff {
            initial,
            ..Backoff::default()
        }
    }

    /// Sets the cap.
    pub fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }
}

/// Where a sequence of attempts stands: the wait before the next one, grown and jittered after
/// each failure (a pool's reconnects, a balanced channel's per endpoint).
#[derive(Debug, Clone)]
pub struct BackoffState {
    config: Backoff,
    /// The wait without jitter; grows by the multiplier.
    base: Duration,
    /// The wait with jitter, for the next attempt.
    current: Duration,
    rng: u64,
}

impl BackoffState {
    /// The state before any attempt failed: the next wait is `config.initial`.
    pub fn new(config: Backoff) -> BackoffState {
        // Seeded per pool from the std hasher's random keys, so many clients restarted together
        // do not retry in lockstep.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(config.initial.as_nanos() as u64);
        BackoffState {
            config,
            base: config.initial,
            current: config.initial,
            rng: hasher.finish() | 1,
        }
    }

    /// The wait before the next attempt, measured from the start of the one that just failed.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// After a failed attempt: the next wait grows and gets its jitter.
    pub fn fail(&mut self) {
        let grown = self.base.as_secs_f64() * self.config.multiplier;
        let capped = grown.min(self.config.max.as_secs_f64());
        self.base = seconds(capped);
        let spread = capped * self.config.jitter * (self.unit() * 2.0 - 1.0);
        self.current = seconds(capped + spread);
    }

    /// After a successful handshake: start over.
    pub fn reset(&mut self) {
        self.base = self.config.initial;
        self.current = self.config.initial;
    }

    /// A uniform number in [0, 1) from xorshift64.
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `secs` as a duration, saturating: `Duration::MAX` (a user's "never") grown, jittered or
/// capped at itself is past what a `Duration` holds, and `from_secs_f64` panicked there; a
/// negative or NaN wait (a multiplier below zero) is none.
pub(crate) fn seconds(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_to_the_cap_and_resets() {
        let mut state = BackoffState::new(Backoff::default());
        assert_eq!(state.current(), Duration::from_secs(1));
        state.fail();
        let second = state.current().as_secs_f64();
        assert!((1.6 * 0.8..=1.6 * 1.2).contains(&second), "{second}");
        for _ in 0..50 {
            state.fail();
            let wait = state.current().as_secs_f64();
            assert!(wait <= 120.0 * 1.2 + 1e-9, "{wait}");
        }
        assert!(state.current().as_secs_f64() >= 120.0 * 0.8 - 1e-9);
        state.reset();
        assert_eq!(state.current(), Duration::from_secs(1));
    }

    /// `Duration::MAX` as the first wait or the cap ("never again", "no cap") grows and
    /// jitters at it: `from_secs_f64` panicked past what a `Duration` holds. A multiplier below
    /// zero waits nothing instead of panicking.
    #[test]
    fn waits_of_duration_max_or_below_zero_saturate() {
        let never = Backoff {
            initial: Duration::MAX,
            max: Duration::MAX,
            ..Backoff::default()
        };
        let mut state = BackoffState::new(never);
        for _ in 0..3 {
            state.fail();
            assert!(
                state.current() > Duration::from_secs(1 << 62),
                "{:?}",
                state.current()
            );
        }
        let shrinking = Backoff {
            multiplier: -1.0,
            ..Backoff::default()
        };
        let mut state = BackoffState::new(shrinking);
        state.fail();
        assert_eq!(state.current(), Duration::ZERO);
    }
}
