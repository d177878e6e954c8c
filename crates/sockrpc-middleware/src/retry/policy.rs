//! `RetryPolicy`: how many attempts, how long between them, and which failures are worth
//! another — gRFC A6's `retryPolicy`.
//!
//! ```text
//!  attempt 1 ─fail─▶ wait random(0, initial) ─▶ attempt 2 ─fail─▶ wait random(0, initial×m) ─▶ …
//!  wait n = random(0, min(initial × multiplier^(n-1), max_backoff))   ("full jitter")
//! ```
//!
//! Full jitter (anywhere from zero to the cap) rather than the ±20 % of connection backoff:
//! calls that failed together — a server restart fails them all at once — then come back
//! spread over the whole window instead of in a slightly blurred wave.

use crate::attempts::AttemptPolicy;
use sockrpc_protocol::Code;
use std::time::Duration;

/// A retry policy for a method (gRFC A6's `retryPolicy`).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) multiplier: f64,
    pub(crate) retryable: CodeSet,
}

impl Default for RetryPolicy {
    /// gRFC A6's example: 4 attempts, backoff from 100 ms doubling up to 1 s, on `UNAVAILABLE`.
    /// What `NO_SIDE_EFFECTS` and `IDEMPOTENT` methods get without configuration.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            retryable: CodeSet::of([Code::Unavailable]),
        }
    }
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts (the first included) with the default backoff and
    /// `UNAVAILABLE` as the retryable code. The layer caps attempts at 5 unless told otherwise.
    pub fn new(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..RetryPolicy::default()
        }
    }

    /// What a method of unknown idempotency gets without configuration: no status code is
    /// retryable, so only calls the server marks not processed (it refused them before running
    /// anything: a draining server, a GOAWAY race) are sent again — never one that may have run.
    pub fn not_processed_only() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            retryable: CodeSet::default(),
            ..RetryPolicy::default()
        }
    }

    /// Sets the exponential backoff: the first retry waits up to `initial`, each next one up to
    /// `multiplier` times longer, never more than `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration, multiplier: f64) -> RetryPolicy {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self.multiplier = if multiplier.is_finite() && multiplier > 0.0 {
            multiplier
        } else {
            1.0
        };
        self
    }

    /// Sets the status codes worth another attempt. Pick only codes that mean the server did
    /// not do the work, unless the method is safe to run twice (gRFC A6).
    pub fn retryable(mut self, codes: impl IntoIterator<Item = Code>) -> RetryPolicy {
        self.retryable = CodeSet::of(codes);
        self
    }

    /// The most attempts, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a failure with `code` may be retried.
    pub fn is_retryable(&self, code: Code) -> bool {
        self.retryable.contains(code)
    }

    /// The cap of the wait before retry number `retry` (1 for the first retry).
    pub(crate) fn backoff_cap(&self, retry: u32) -> Duration {
        let exp = self.multiplier.powi(retry.saturating_sub(1).min(64) as i32);
        let cap = self.initial_backoff.as_secs_f64() * exp;
        if cap.is_finite() && cap < self.max_backoff.as_secs_f64() {
            Duration::from_secs_f64(cap)
        } else {
            self.max_backoff
        }
    }
}

impl AttemptPolicy for RetryPolicy {
    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
}

/// A set of status codes, as a bit mask (17 codes fit a `u32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct CodeSet(u32);

impl CodeSet {
    pub(crate) fn of(codes: impl IntoIterator<Item = Code>) -> CodeSet {
        CodeSet(
            codes
                .into_iter()
                .fold(0, |set, code| set | (1 << code.as_u32().min(31))),
        )
    }

    pub(crate) fn contains(self, code: Code) -> bool {
        self.0 & (1 << code.as_u32().min(31)) != 0
    }
}

/// A small random number source for jitter: seeded from the standard library's per-process
/// random keys, so clients started together do not retry in lockstep; no dependency, no lock.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        Jitter(hasher.finish() | 1)
    }

    /// Uniform in `[0, cap)`.
    pub(crate) fn below(&mut self, cap: Duration) -> Duration {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let unit = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        cap.mul_f64(unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_jitter_stays_under_it() {
        let policy = RetryPolicy::new(5).backoff(
            Duration::from_millis(100),
            Duration::from_millis(350),
            2.0,
        );
        let caps: Vec<u128> = (1..=4).map(|n| policy.backoff_cap(n).as_millis()).collect();
        assert_eq!(caps, [100, 200, 350, 350]);
        let mut jitter = Jitter::new();
        let draws: Vec<Duration> = (0..1000)
            .map(|_| jitter.below(Duration::from_millis(100)))
            .collect();
        assert!(draws.iter().all(|d| *d < Duration::from_millis(100)));
        let mean = draws.iter().sum::<Duration>() / 1000;
        assert!(
            (35..65).contains(&mean.as_millis()),
            "full jitter averages half the cap: {mean:?}"
        );
    }

    #[test]
    fn codes() {
        let policy = RetryPolicy::default().retryable([Code::Unavailable, Code::Aborted]);
        assert!(policy.is_retryable(Code::Aborted));
        assert!(!policy.is_retryable(Code::Internal));
        assert!(!RetryPolicy::not_processed_only().is_retryable(Code::Unavailable));
    }
}
