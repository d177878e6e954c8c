//! Round robin: each usable endpoint in turn, whatever its load (weights are not used).
//!
//! The turn moves past the endpoint picked, not by one per call: with one step per call, every
//! unusable endpoint's turn fell to the next usable one, which then took twice the calls of the
//! others (k unusable in a row: k + 1 times). grpc-go's picker rotates over the ready endpoints
//! only, and so does this one.

use super::member::Members;
use super::picker::Picker;
use crate::Call;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sends calls to the usable endpoints in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// A round-robin picker.
    pub fn new() -> RoundRobin {
        RoundRobin::default()
    }
}

/// How many times a pick retries when another call took the turn meanwhile; then it takes the
/// next turn as it comes, which only concurrent picks can make uneven.
const RACES: usize = 4;

impl Picker for RoundRobin {
    fn pick(
        &self,
        members: &Members,
        _call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = members.list().len();
        let first_usable = |start: usize| (0..n).map(|k| (start + k) % n).find(|&i| usable(i));
        let mut start = self.next.load(Ordering::Relaxed);
        for _ in 0..RACES {
            let chosen = first_usable(start)?;
            match self.next.compare_exchange(
                start,
                chosen + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(chosen),
                Err(now) => start = now,
            }
        }
        first_usable(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::member::test_set::{call, weighted};

    fn members(n: usize) -> Members {
        weighted(&vec![1; n])
    }

    /// How many of 600 picks each of `n` members gets, `usable` deciding which may.
    fn shares(n: usize, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let members = members(n);
        let call = call();
        let picker = RoundRobin::new();
        let mut counts = vec![0; n];
        for _ in 0..600 {
            let picked = picker
                .pick(&members, &call, usable)
                .expect("a usable member");
            counts[picked] += 1;
        }
        counts
    }

    #[test]
    fn unusable_endpoints_do_not_double_the_next_ones_share() {
        assert_eq!(shares(3, &|_| true), [200, 200, 200]);
        // The second of three unusable: the other two split evenly (it was 200 and 400).
        assert_eq!(shares(3, &|i| i != 1), [300, 0, 300]);
        // Two unusable in a row of five.
        assert_eq!(shares(5, &|i| i != 1 && i != 2), [200, 0, 0, 200, 200]);
        assert_eq!(shares(5, &|i| i == 4), [0, 0, 0, 0, 600]);
    }

    #[test]
    fn no_usable_endpoint_is_no_pick() {
        let picker = RoundRobin::new();
        assert_eq!(picker.pick(&members(3), &call(), &|_| false), None);
        assert_eq!(picker.pick(&members(0), &call(), &|_| true), None);
    }
}
