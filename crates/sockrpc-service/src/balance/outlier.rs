//! Outlier ejection: an endpoint whose calls keep failing is taken out of rotation for a while.
//!
//! After [`OutlierConfig::consecutive_failures`] failures in a row (`Unavailable`: the
//! connection broke under the call, or the server is going away) the endpoint is ejected for
//! `base_ejection × 2^(ejections so far)`, capped at `max_ejection`; when the time is up it is
//! tried again, and one success resets both counts. Ejection never empties the rotation: when
//! every endpoint is ejected the balancer uses them anyway rather than fail every call.
//!
//! A call that never reached the server counts neither way (`member::Outcome::NotSent`): one
//! this side refused, or one never written to a connection (`Status::is_never_sent`). It tells
//! of the connection, which reconnecting handles, not of how the server answers calls.

use std::time::Duration;
use tokio::time::Instant;

/// When to eject an endpoint and for how long.
#[derive(Debug, Clone, Copy)]
pub struct OutlierConfig {
    /// Failures in a row that eject an endpoint.
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one doubles it.
    pub base_ejection: Duration,
    /// The longest ejection.
    pub max_ejection: Duration,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_millis(500),
            max_ejection: Duration::from_secs(30),
        }
    }
}

/// One endpoint's failure record.
#[derive(Debug, Default)]
pub(crate) struct OutlierState {
    failures: u32,
    ejections: u32,
    until: Option<Instant>,
}

impl OutlierState {
    /// A call succeeded (the server answered, whatever the status).
    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.ejections = 0;
        self.until = None;
    }

    /// A call failed for the endpoint's sake; returns whether this ejected it.
    pub(crate) fn failure(&mut self, config: &OutlierConfig, now: Instant) -> bool {
        self.failures += 1;
        if self.failures < config.consecutive_failures.max(1) || self.is_ejected(now) {
            return false;
        }
        let factor = 1u32 << self.ejections.min(16);
        let length = config
            .base_ejection
            .saturating_mul(factor)
            .min(config.max_ejection);
        self.ejections += 1;
        self.failures = 0;
        self.until = Some(now + length);
        true
    }

    /// Whether the endpoint is out of rotation at `now`.
    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ejects_after_consecutive_failures_with_backoff() {
        let config = OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(3),
        };
        let mut s = OutlierState::default();
        let now = Instant::now();
        assert!(!s.failure(&config, now));
        assert!(!s.failure(&config, now));
        assert!(s.failure(&config, now), "third failure in a row ejects");
        assert!(s.is_ejected(now + Duration::from_millis(999)));
        assert!(!s.is_ejected(now + Duration::from_secs(1)));
        let later = now + Duration::from_secs(1);
        for _ in 0..2 {
            s.failure(&config, later);
        }
        assert!(s.failure(&config, later));
        assert!(s.is_ejected(later + Duration::from_millis(1999)), "doubled");
        for _ in 0..10 {
            let t = later + Duration::from_secs(100);
            s.failure(&config, t);
        }
        s.success();
        assert!(!s.is_ejected(later));
    }
}
