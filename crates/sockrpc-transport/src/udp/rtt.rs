//! Retransmission timeout from a smoothed round-trip time (RFC 6298), with backoff and jitter.
//!
//! ```text
//! first sample R:   srtt = R            rttvar = R / 2
//! later samples R:  rttvar = ¾·rttvar + ¼·|srtt − R|      srtt = ⅞·srtt + ⅛·R
//! rto = clamp(srtt + 4·rttvar, min_rto, max_rto)
//! attempt n waits   min(rto · 2ⁿ, max_rto) · (1 + U[0, ¼))
//! ```
//!
//! Samples come only from calls answered without a retransmission (Karn's algorithm): an answer
//! to a retransmitted call cannot say which transmission it answers. The jitter keeps many
//! clients that lost packets at the same moment from retransmitting in lockstep; the client
//! draws it once for all first transmissions (`client.rs`, `first_jitter`), so that its calls'
//! timers are set in order.

use std::time::Duration;

/// Bounds for the estimator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RttBounds {
    pub(crate) initial: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

/// Smoothed RTT and the RTO derived from it, kept in nanoseconds: the same arithmetic as on
/// `Duration`s (whose divisions and multiplications normalise seconds and nanoseconds each
/// time), at a few instructions per step, since every call takes a sample and a backoff.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    min: u64,
    max: u64,
    srtt: Option<u64>,
    rttvar: u64,
    rto: u64,
}

/// A duration in nanoseconds, saturating (584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    /// An estimator within `bounds`; a maximum below the minimum is taken as the minimum (a
    /// configuration mistake must not panic the client).
    pub(crate) fn new(bounds: RttBounds) -> RttEstimator {
        let min = nanos(bounds.min);
        let max = nanos(bounds.max).max(min);
        RttEstimator {
            min,
            max,
            srtt: None,
            rttvar: 0,
            rto: nanos(bounds.initial).clamp(min, max),
        }
    }

    /// Feeds one round-trip sample.
    pub(crate) fn sample(&mut self, rtt: Duration) {
        let rtt = nanos(rtt);
        let srtt = match self.srtt {
            None => {
                self.rttvar = rtt / 2;
                rtt
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = self.rttvar.saturating_mul(3).saturating_add(delta) / 4;
                srtt.saturating_mul(7).saturating_add(rtt) / 8
            }
        };
        self.srtt = Some(srtt);
        self.rto = srtt
            .saturating_add(self.rttvar.saturating_mul(4))
            .clamp(self.min, self.max);
    }

    /// The current RTO.
    #[cfg(test)]
    fn rto(&self) -> Duration {
        Duration::from_nanos(self.rto)
    }

    /// The smoothed RTT, once there is a sample.
    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt.map(Duration::from_nanos)
    }

    /// How long attempt `attempt` (0 = first transmission) waits for an answer; `random` is any
    /// random u64, turned into up to 25 % extra.
    pub(crate) fn backoff(&self, attempt: u32, random: u64) -> Duration {
        let base = self
            .rto
            .checked_mul(1u64 << attempt.min(20))
            .unwrap_or(self.max)
            .min(self.max);
        // Up to a quarter more: base × (random's top 30 bits / 2^32), in integers.
        let extra = (u128::from(base) * u128::from(random >> 34)) >> 32;
        Duration::from_nanos(base.saturating_add(u64::try_from(extra).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> RttBounds {
        RttBounds {
            initial: Duration::from_millis(100),
            min: Duration::from_millis(2),
            max: Duration::from_secs(1),
        }
    }

    #[test]
    fn follows_rfc_6298() {
        let mut est = RttEstimator::new(bounds());
        assert_eq!(est.rto(), Duration::from_millis(100));
        est.sample(Duration::from_millis(10));
        // srtt 10, rttvar 5: rto 30.
        assert_eq!(est.rto(), Duration::from_millis(30));
        for _ in 0..100 {
            est.sample(Duration::from_micros(100));
        }
        assert_eq!(
            est.rto(),
            Duration::from_millis(2),
            "clamped at the minimum"
        );
        assert!(est.srtt().is_some_and(|s| s < Duration::from_millis(1)));
        est.sample(Duration::from_secs(10));
        assert_eq!(est.rto(), Duration::from_secs(1), "clamped at the maximum");
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let mut est = RttEstimator::new(bounds());
        est.sample(Duration::from_millis(10));
        assert_eq!(est.backoff(0, 0), Duration::from_millis(30));
        assert_eq!(est.backoff(2, 0), Duration::from_millis(120));
        assert!(est.backoff(2, u64::MAX) <= Duration::from_millis(150));
        assert!(
            est.backoff(2, u64::MAX) > Duration::from_millis(149),
            "a quarter at most"
        );
        assert!(
            est.backoff(2, 1 << 63) > Duration::from_millis(134),
            "an eighth halfway"
        );
        assert_eq!(est.backoff(40, 0), Duration::from_secs(1));
    }

    #[test]
    fn a_maximum_below_the_minimum_is_the_minimum() {
        let mut est = RttEstimator::new(RttBounds {
            initial: Duration::from_millis(100),
            min: Duration::from_millis(500),
            max: Duration::from_millis(50),
        });
        assert_eq!(est.rto(), Duration::from_millis(500));
        est.sample(Duration::from_secs(10));
        assert_eq!(est.rto(), Duration::from_millis(500));
        assert_eq!(est.backoff(3, 0), Duration::from_millis(500));
    }
}
