//! Peak-EWMA latency: the load estimate p2c compares (Finagle's and linkerd's "peak EWMA").
//!
//! A latency sample above the estimate replaces it at once (the peak), one below pulls it down
//! with an exponential weight that depends on the time since the last sample, so a server that
//! turns slow is avoided after one slow answer and trusted again only gradually. The cost of
//! sending one more call is the estimate times (calls in flight + 1).
//!
//! Read without a new sample while no call is in flight on it, the estimate decays toward zero
//! with the same time constant (as tower's does): a server shunned after one slow answer gets
//! no samples, so without this it would stay shunned for good; with it, it is tried again within
//! a few decay periods, and its next answer sets the estimate. With calls in flight it does not
//! decay (tower's does): a server that stopped answering would otherwise look ever cheaper while
//! its calls pile up, and draw every call.

use std::time::Duration;
use tokio::time::Instant;

/// How long until an old sample's weight falls to 1/e (tower and linkerd use 10 s; shorter
/// reacts faster to a server that recovered).
pub const DEFAULT_DECAY: Duration = Duration::from_secs(5);

/// The estimate before the first sample: a new endpoint is neither favoured nor shunned much.
pub const DEFAULT_RTT: Duration = Duration::from_millis(1);

/// A peak-EWMA round-trip estimate.
#[derive(Debug, Clone, Copy)]
pub struct PeakEwma {
    rtt_ns: f64,
    stamp: Instant,
    decay_ns: f64,
}

impl PeakEwma {
    /// Starts at `initial`, decaying with time constant `decay`.
    pub fn new(initial: Duration, decay: Duration) -> PeakEwma {
        PeakEwma {
            rtt_ns: initial.as_nanos() as f64,
            stamp: Instant::now(),
            decay_ns: (decay.as_nanos() as f64).max(1.0),
        }
    }

    /// Folds in one observed round trip, seen at `now`.
    pub fn observe(&mut self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        if sample > self.rtt_ns {
            self.rtt_ns = sample;
        } else {
            let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
            let w = (-elapsed / self.decay_ns).exp();
            self.rtt_ns = self.rtt_ns * w + sample * (1.0 - w);
        }
        self.stamp = now;
    }

    /// The current estimate, in nanoseconds.
    pub fn rtt_ns(&self) -> f64 {
        self.rtt_ns
    }

    /// The estimate at `now`: the last one, decayed toward zero for the time since its sample.
    pub fn rtt_ns_at(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.stamp).as_nanos() as f64;
        self.rtt_ns * (-elapsed / self.decay_ns).exp()
    }

    /// The cost at `now` of one more call with `in_flight` already pending: the estimate
    /// decayed for the time since its sample when nothing is in flight, as it is otherwise.
    pub fn cost(&self, in_flight: usize, now: Instant) -> f64 {
        let rtt = if in_flight == 0 {
            self.rtt_ns_at(now)
        } else {
            self.rtt_ns
        };
        rtt * (in_flight as f64 + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn peaks_at_once_and_decays_with_time() {
        let mut e = PeakEwma::new(Duration::from_millis(1), DEFAULT_DECAY);
        e.observe(Duration::from_millis(20), Instant::now());
        assert!(
            (e.rtt_ns() - 20e6).abs() < 1.0,
            "a slow sample is the new peak"
        );
        // A fast sample right away barely moves it ...
        e.observe(Duration::from_millis(1), Instant::now());
        assert!(e.rtt_ns() > 19e6);
        // ... one after several decay periods nearly replaces it.
        tokio::time::advance(DEFAULT_DECAY * 5).await;
        e.observe(Duration::from_millis(1), Instant::now());
        assert!(e.rtt_ns() < 2e6, "{}", e.rtt_ns());
        let now = Instant::now();
        assert!(e.cost(3, now) > e.cost(0, now) * 3.9);
    }

    #[tokio::test(start_paused = true)]
    async fn an_estimate_without_samples_decays_toward_zero() {
        let mut e = PeakEwma::new(Duration::from_millis(1), DEFAULT_DECAY);
        e.observe(Duration::from_millis(20), Instant::now());
        assert!((e.cost(0, Instant::now()) - 20e6).abs() < 1.0);
        tokio::time::advance(DEFAULT_DECAY).await;
        let decayed = e.cost(0, Instant::now());
        assert!(
            (decayed - 20e6 / std::f64::consts::E).abs() < 1e3,
            "{decayed}"
        );
        tokio::time::advance(DEFAULT_DECAY * 5).await;
        assert!(e.cost(0, Instant::now()) < 0.2e6);
        // The last sample itself is kept until the next one.
        assert!((e.rtt_ns() - 20e6).abs() < 1.0);
        // With calls in flight it does not decay: a server that stopped answering must not look
        // cheaper as its calls pile up.
        assert!((e.cost(3, Instant::now()) - 4.0 * 20e6).abs() < 1.0);
    }
}
