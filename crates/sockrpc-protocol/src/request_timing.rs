//! `Timing`: a request's timeout and fixed deadline, packed into 20 bytes.
//!
//! Why packed: every move of a request, a `Call` or a call's future through the client's layers
//! copies the request (docs/PERFORMANCE.md), and `Option<Duration>` beside `Option<Instant>` took
//! 32 bytes, 16 of them niche and padding, making `Request<Bytes>` 128 bytes where 112 will do.
//! Both values are kept exactly, as nanosecond counts wider than 64 bits: the timeout as it is
//! (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), 69 bits), the deadline as its distance from a
//! process-wide base instant set well before the first deadline (now plus `MAX_TIMEOUT` from it
//! is about 70 bits). Each count's low 64 bits have their own word; the high bits of both, and
//! whether each is set, share a third.

use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// How far before the first deadline fixed in the process the base lies (2^32 s, about 136
/// years): any deadline a caller hands in is after it (a deadline further back is kept as the
/// base, passed either way).
const BASE_MARGIN: Duration = Duration::from_secs(1 << 32);

/// Bits of each count kept above its low 64 (79 bits: about 19 million years, past any timeout
/// or deadline a request can hold; a longer distance is kept as the longest).
const HIGH_BITS: u32 = 15;
const HIGH_MASK: u32 = (1 << HIGH_BITS) - 1;
const DEADLINE_SHIFT: u32 = HIGH_BITS;
const HAS_TIMEOUT: u32 = 1 << 31;
const HAS_DEADLINE: u32 = 1 << 30;
const MAX_COUNT: u128 = (1 << (64 + HIGH_BITS)) - 1;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A request's timeout and fixed deadline (see the module docs). Aligned to 4 bytes, so the
/// request puts its 4-byte fields beside it rather than padding it out to 24.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(Rust, packed(4))]
pub(crate) struct Timing {
    /// The timeout's nanoseconds, low 64 bits.
    timeout: u64,
    /// The deadline's nanoseconds since [`base`], low 64 bits.
    deadline: u64,
    /// [`HAS_TIMEOUT`], [`HAS_DEADLINE`], then each count's high bits.
    high: u32,
}

/// The process-wide instant deadlines count from.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(|| {
        let now = Instant::now();
        now.checked_sub(BASE_MARGIN).unwrap_or(now)
    })
}

fn split(count: u128) -> (u64, u32) {
    let count = count.min(MAX_COUNT);
    (count as u64, (count >> 64) as u32 & HIGH_MASK)
}

fn join(low: u64, high: u32) -> Duration {
    if high & HIGH_MASK == 0 {
        // Under 2^64 ns (584 years), as nearly every count is: no 128-bit division.
        return Duration::from_nanos(low);
    }
    let count = u128::from(low) | (u128::from(high & HIGH_MASK) << 64);
    // At most 2^79 ns: the seconds fit a u64 with room to spare.
    Duration::new(
        (count / NANOS_PER_SEC) as u64,
        (count % NANOS_PER_SEC) as u32,
    )
}

impl Timing {
    /// The timeout, if set.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        let high = self.high;
        (high & HAS_TIMEOUT != 0).then(|| join(self.timeout, high))
    }

    /// Sets or clears the timeout, leaving the deadline.
    pub(crate) fn set_timeout(&mut self, timeout: Option<Duration>) {
        let mut high = self.high & !(HAS_TIMEOUT | HIGH_MASK);
        let mut low = 0;
        if let Some(timeout) = timeout {
            let (l, h) = split(timeout.as_nanos());
            low = l;
            high |= HAS_TIMEOUT | h;
        }
        self.timeout = low;
        self.high = high;
    }

    /// The deadline, if fixed.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let high = self.high;
        (high & HAS_DEADLINE != 0).then(|| {
            let since = join(self.deadline, high >> DEADLINE_SHIFT);
            let base = base();
            // Kept only from an instant at or after the base: the sum is that instant or
            // earlier, which the clock holds.
            base.checked_add(since).unwrap_or(base)
        })
    }

    /// Fixes the deadline, leaving the timeout.
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        let since = deadline.saturating_duration_since(base());
        let (low, h) = split(since.as_nanos());
        let high = self.high & !(HAS_DEADLINE | (HIGH_MASK << DEADLINE_SHIFT));
        self.deadline = low;
        self.high = high | HAS_DEADLINE | (h << DEADLINE_SHIFT);
    }
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timing")
            .field("timeout", &self.timeout())
            .field("deadline", &self.deadline())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_both_exactly_and_apart() {
        let mut timing = Timing::default();
        assert_eq!((timing.timeout(), timing.deadline()), (None, None));
        for timeout in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(12, 345_678_901),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(999_999_999),
            crate::MAX_TIMEOUT,
            crate::MAX_TIMEOUT - Duration::from_nanos(1),
        ] {
            timing.set_timeout(Some(timeout));
            assert_eq!(timing.timeout(), Some(timeout));
            assert_eq!(timing.deadline(), None);
        }
        let now = Instant::now();
        for deadline in [
            now,
            now + Duration::new(3, 7),
            now + crate::MAX_TIMEOUT,
            now - Duration::from_secs(3600),
        ] {
            timing.set_deadline(deadline);
            assert_eq!(timing.deadline(), Some(deadline));
            assert_eq!(
                timing.timeout(),
                Some(crate::MAX_TIMEOUT - Duration::from_nanos(1))
            );
        }
        timing.set_timeout(None);
        assert_eq!(timing.timeout(), None);
        assert_eq!(timing.deadline(), Some(now - Duration::from_secs(3600)));
    }

    #[test]
    fn a_deadline_before_the_base_is_kept_as_the_base() {
        let mut timing = Timing::default();
        if let Some(long_ago) = base().checked_sub(Duration::from_secs(1)) {
            timing.set_deadline(long_ago);
            assert_eq!(timing.deadline(), Some(base()));
        }
    }

    #[test]
    fn is_twenty_bytes_aligned_to_four() {
        assert_eq!(std::mem::size_of::<Timing>(), 20);
        assert_eq!(std::mem::align_of::<Timing>(), 4);
    }
}
