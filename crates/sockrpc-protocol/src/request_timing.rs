//! `Timing`: a request's timeout and fixed deadline (or, before one is fixed, the instant its
//! call started), packed into 20 bytes.
//!
//! Why packed: every move of a request, a `Call` or a call's future through the client's layers
//! copies the request (docs/PERFORMANCE.md), and `Option<Duration>` beside `Option<Instant>` took
//! 32 bytes, 16 of them niche and padding, making `Request<Bytes>` 128 bytes where 112 will do.
//! Both values are kept exactly, as nanosecond counts wider than 64 bits: the timeout as it is
//! (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), 69 bits), the deadline as its distance from a
//! process-wide base instant set well before the first deadline (now plus `MAX_TIMEOUT` from it
//! is about 70 bits). Each count's low 64 bits have their own word; the high bits of both, and
//! whether each is set, share a third.
//!
//! The deadline's word holds the call's start instead while no deadline is fixed: a generated
//! client's method notes when it began a call that has no timeout yet but may get one below
//! (a `grpc-timeout` entry, the channel's default), so that one counts from there too. A
//! deadline fixed later replaces the start, which then has served its use.
//!
//! It is public as the third of a request's parts ([`Request::into_parts`](crate::Request::into_parts)),
//! so a layer that takes a request apart and builds it again keeps the deadline.

use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// How far before the first deadline fixed in the process the base lies (2^32 s, about 136
/// years): any deadline a caller hands in is after it (a deadline further back is kept as the
/// base, passed either way).
const BASE_MARGIN: Duration = Duration::from_secs(1 << 32);

/// Bits of each count kept above its low 64 (78 bits: about 9.5 million years, past any timeout
/// or deadline a request can hold; a longer distance is kept as the longest).
const HIGH_BITS: u32 = 14;
const HIGH_MASK: u32 = (1 << HIGH_BITS) - 1;
const DEADLINE_SHIFT: u32 = HIGH_BITS;
const HAS_TIMEOUT: u32 = 1 << 31;
const HAS_DEADLINE: u32 = 1 << 30;
/// The deadline's word holds the call's start (never with [`HAS_DEADLINE`]).
const HAS_START: u32 = 1 << 29;
const MAX_COUNT: u128 = (1 << (64 + HIGH_BITS)) - 1;
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A request's timeout and, on a client, its fixed deadline: the third of a request's parts
/// ([`Request::into_parts`](crate::Request::into_parts), [`Request::from_parts`](crate::Request::from_parts)).
/// Made from a bare timeout (`Option<Duration>`, `Duration`), it has no deadline, which is then
/// fixed when the request is next timed. Packed into 20 bytes (see the module docs); aligned to
/// 4 bytes, so the request puts its 4-byte fields beside it rather than padding it out to 24.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(Rust, packed(4))]
pub struct Timing {
    /// The timeout's nanoseconds, low 64 bits.
    timeout: u64,
    /// The deadline's nanoseconds since [`base`], low 64 bits.
    deadline: u64,
    /// [`HAS_TIMEOUT`], [`HAS_DEADLINE`] or [`HAS_START`], then each count's high bits.
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
    // At most 2^78 ns: the seconds fit a u64 with room to spare.
    Duration::new(
        (count / NANOS_PER_SEC) as u64,
        (count % NANOS_PER_SEC) as u32,
    )
}

impl Timing {
    /// The timeout, if set.
    pub fn timeout(&self) -> Option<Duration> {
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

    /// The deadline, if fixed (on a client; a server's request has only its timeout).
    pub fn deadline(&self) -> Option<Instant> {
        (self.high & HAS_DEADLINE != 0).then(|| self.instant())
    }

    /// When the call started, if noted and no deadline is fixed yet.
    pub fn started(&self) -> Option<Instant> {
        (self.high & HAS_START != 0).then(|| self.instant())
    }

    /// The instant the deadline's word holds.
    fn instant(&self) -> Instant {
        let since = join(self.deadline, self.high >> DEADLINE_SHIFT);
        let base = base();
        // Kept only from an instant at or after the base: the sum is that instant or
        // earlier, which the clock holds.
        base.checked_add(since).unwrap_or(base)
    }

    /// Puts `at` in the deadline's word with `flag`, leaving the timeout.
    fn set_instant(&mut self, at: Instant, flag: u32) {
        let since = at.saturating_duration_since(base());
        let (low, h) = split(since.as_nanos());
        let high = self.high & !(HAS_DEADLINE | HAS_START | (HIGH_MASK << DEADLINE_SHIFT));
        self.deadline = low;
        self.high = high | flag | (h << DEADLINE_SHIFT);
    }

    /// Fixes the deadline, leaving the timeout (a start noted before is dropped).
    pub(crate) fn set_deadline(&mut self, deadline: Instant) {
        self.set_instant(deadline, HAS_DEADLINE);
    }

    /// Notes when the call started; nothing if a deadline is fixed.
    pub(crate) fn set_started(&mut self, at: Instant) {
        if self.high & HAS_DEADLINE == 0 {
            self.set_instant(at, HAS_START);
        }
    }
}

impl From<Option<Duration>> for Timing {
    /// A timeout (at most [`MAX_TIMEOUT`](crate::MAX_TIMEOUT), longer is taken as that) and no
    /// deadline.
    fn from(timeout: Option<Duration>) -> Timing {
        let mut timing = Timing::default();
        timing.set_timeout(timeout.map(|t| t.min(crate::MAX_TIMEOUT)));
        timing
    }
}

impl From<Duration> for Timing {
    /// As `Some(timeout)`.
    fn from(timeout: Duration) -> Timing {
        Timing::from(Some(timeout))
    }
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timing")
            .field("timeout", &self.timeout())
            .field("deadline", &self.deadline())
            .field("started", &self.started())
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
    fn a_start_is_kept_until_a_deadline_replaces_it() {
        let mut timing = Timing::from(Duration::from_secs(2));
        let now = Instant::now();
        timing.set_started(now);
        assert_eq!(timing.started(), Some(now));
        assert_eq!(timing.deadline(), None);
        assert_eq!(timing.timeout(), Some(Duration::from_secs(2)));
        timing.set_deadline(now + Duration::from_secs(2));
        assert_eq!(timing.started(), None);
        assert_eq!(timing.deadline(), Some(now + Duration::from_secs(2)));
        // A start noted once the deadline is fixed changes nothing.
        timing.set_started(now + Duration::from_secs(1));
        assert_eq!(timing.deadline(), Some(now + Duration::from_secs(2)));
        assert_eq!(timing.started(), None);
    }

    #[test]
    fn is_twenty_bytes_aligned_to_four() {
        assert_eq!(std::mem::size_of::<Timing>(), 20);
        assert_eq!(std::mem::align_of::<Timing>(), 4);
    }
}
