//! Power of two choices on real load: pick two usable endpoints at random, send to the one
//! whose peak-EWMA latency × (calls in flight + 1), divided by its weight, is lower.
//!
//! Two random choices avoid the herd behaviour of "always the least loaded" (every client
//! piling onto the same idle server) while still steering away from slow or busy servers;
//! the latency term catches a server that is slow while not yet busy.

use super::member::Members;
use super::picker::{random_below, usable_indices, Picker};
use crate::Call;

/// The power-of-two-choices picker over peak-EWMA load (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct P2c;

impl P2c {
    /// A p2c picker.
    pub fn new() -> P2c {
        P2c
    }
}

impl Picker for P2c {
    fn pick(
        &self,
        members: &Members,
        _call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let candidates = usable_indices(members, usable);
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => {
                let a = random_below(n);
                let mut b = random_below(n - 1);
                if b >= a {
                    b += 1;
                }
                let (a, b) = (candidates[a], candidates[b]);
                let list = members.list();
                let now = tokio::time::Instant::now();
                Some(if list[a].load_at(now) <= list[b].load_at(now) {
                    a
                } else {
                    b
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::member::test_set::{call, weighted as set};
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn picks_the_less_loaded_of_two_and_weights_divide_load() {
        let members = set(&[1, 1]);
        // Three calls in flight on the first, for as long as the attempts are held.
        let _held: Vec<_> = (0..3).map(|_| members.list()[0].start()).collect();
        for _ in 0..50 {
            assert_eq!(P2c.pick(&members, &call(), &|_| true), Some(1));
        }
        assert_eq!(P2c.pick(&members, &call(), &|i| i == 0), Some(0));
        assert_eq!(P2c.pick(&members, &call(), &|_| false), None);
        let weighted = set(&[3, 1]);
        let _one = weighted.list()[0].start();
        // Cost 2 ÷ 3 beats 1 ÷ 1.
        for _ in 0..50 {
            assert_eq!(P2c.pick(&weighted, &call(), &|_| true), Some(0));
        }
    }

    /// One slow answer shuns a server; with no more samples it would stay shunned while the
    /// other answers fast. The estimate's decay brings it back.
    #[tokio::test(start_paused = true)]
    async fn a_server_shunned_after_one_slow_answer_is_tried_again() {
        use super::super::outlier::OutlierConfig;
        let members = set(&[1, 1]);
        let outlier = OutlierConfig::default();
        let slow = members.list()[0].start();
        tokio::time::advance(Duration::from_millis(200)).await;
        let _ = slow.finish(super::super::member::Outcome::Answered, &outlier);
        let fast = members.list()[1].start();
        tokio::time::advance(Duration::from_micros(100)).await;
        let _ = fast.finish(super::super::member::Outcome::Answered, &outlier);
        let picks = |members: &Members| {
            (0..50)
                .filter(|_| P2c.pick(members, &call(), &|_| true) == Some(0))
                .count()
        };
        assert_eq!(picks(&members), 0, "shunned after 200 ms against 100 µs");
        // The fast one keeps answering (its estimate fresh); the slow one has no samples.
        // 200 ms × e^(-60 s / 1 s decay) is far below 100 µs.
        for _ in 0..60 {
            tokio::time::advance(Duration::from_secs(1)).await;
            let fast = members.list()[1].start();
            tokio::time::advance(Duration::from_micros(100)).await;
            let _ = fast.finish(super::super::member::Outcome::Answered, &outlier);
        }
        assert_eq!(
            picks(&members),
            50,
            "tried again after 60 s without a sample"
        );
    }

    /// A server that stopped answering keeps its calls in flight: its estimate must not decay
    /// while they pile up, or it would look ever cheaper and draw every call.
    #[tokio::test(start_paused = true)]
    async fn a_server_with_calls_stuck_in_flight_stays_shunned() {
        use super::super::member::Outcome;
        use super::super::outlier::OutlierConfig;
        let members = set(&[1, 1]);
        let outlier = OutlierConfig::default();
        for i in 0..2 {
            let attempt = members.list()[i].start();
            tokio::time::advance(Duration::from_micros(100)).await;
            let _ = attempt.finish(Outcome::Answered, &outlier);
        }
        // Three calls on the first that never end.
        let _stuck: Vec<_> = (0..3).map(|_| members.list()[0].start()).collect();
        for _ in 0..60 {
            tokio::time::advance(Duration::from_secs(1)).await;
            let fast = members.list()[1].start();
            tokio::time::advance(Duration::from_micros(100)).await;
            let _ = fast.finish(Outcome::Answered, &outlier);
        }
        for _ in 0..50 {
            assert_eq!(P2c.pick(&members, &call(), &|_| true), Some(1));
        }
    }
}
