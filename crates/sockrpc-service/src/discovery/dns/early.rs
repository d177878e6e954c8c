//! How soon a failed connection may wake a DNS lookup before the TTL runs out. Apart from the
//! follow loop (`mod.rs`) so its rules can be tested on their own, with made-up instants.
//!
//! The first early lookup comes `min_ttl` after the last lookup (a server that moved is found at
//! once). While early lookups find nothing new (a server down, not moved), each further one
//! waits 1.6 times longer (± 20 %), never more than [`EARLY_CAP`], grpc-go's shortest time
//! between resolutions: connections that keep failing do not ask DNS every `min_ttl`. Any change
//! to the set (found by an early lookup or at the TTL) starts over, and so does a failure after
//! [`EARLY_CAP`] without one (a new outage, not the same one going on).

use sockrpc_transport::backoff::{Backoff, BackoffState};
use std::time::Duration;
use tokio::time::Instant;

/// The longest wait from a lookup to an early one while early lookups keep finding nothing new:
/// grpc-go's shortest time between two resolutions (`MinResolutionRate`), so that connections
/// that keep failing (a server down, a partition) ask DNS no more often than grpc-go does.
pub(super) const EARLY_CAP: Duration = Duration::from_secs(30);

/// The shortest wait from a lookup to an early one, and what moves it.
#[derive(Debug)]
pub(super) struct Early {
    /// From `min_ttl`, ×1.6 ± 20 % after each early lookup that changed nothing.
    gap: BackoffState,
    /// The floor of every gap.
    min_ttl: Duration,
    /// When a connection last failed (as the follow loop heard it).
    last_poke: Option<Instant>,
}

impl Early {
    /// Before any connection failed: the first early lookup may come `min_ttl` after a lookup.
    pub(super) fn new(min_ttl: Duration) -> Early {
        Early {
            gap: BackoffState::new(Backoff::starting_at(min_ttl).max(EARLY_CAP)),
            min_ttl,
            last_poke: None,
        }
    }

    /// A connection failed at `now`: how long after the last lookup the early one may come
    /// (`min_ttl` to [`EARLY_CAP`]; `min_ttl` when that is longer).
    pub(super) fn poked(&mut self, now: Instant) -> Duration {
        if self
            .last_poke
            .is_none_or(|at| now.saturating_duration_since(at) >= EARLY_CAP)
        {
            self.gap.reset();
        }
        self.last_poke = Some(now);
        self.gap.current().min(EARLY_CAP).max(self.min_ttl)
    }

    /// A lookup ended: `early`, it was woken by a failed connection; `changed`, the set changed.
    pub(super) fn looked(&mut self, early: bool, changed: bool) {
        if changed {
            self.gap.reset();
        } else if early {
            self.gap.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_TTL: Duration = Duration::from_secs(1);

    /// `lookups` early lookups from `start` that find nothing, each woken as soon as it may
    /// come, a connection failing every second: the gaps they are given, and when the last came.
    fn outage(early: &mut Early, start: Instant, lookups: u32) -> (Vec<Duration>, Instant) {
        let mut at = start;
        let gaps = (0..lookups)
            .map(|_| {
                let gap = early.poked(at);
                for second in 1..gap.as_secs() {
                    assert_eq!(early.poked(at + Duration::from_secs(second)), gap);
                }
                early.looked(true, false);
                at += gap;
                gap
            })
            .collect();
        (gaps, at)
    }

    #[test]
    fn the_gap_grows_from_min_ttl_and_never_passes_grpc_go_s_30_s() {
        for _ in 0..20 {
            let mut early = Early::new(MIN_TTL);
            let (gaps, _) = outage(&mut early, Instant::now(), 40);
            assert_eq!(gaps[0], MIN_TTL);
            assert!(gaps[1] > MIN_TTL, "{gaps:?}");
            assert!(gaps.iter().all(|gap| *gap <= EARLY_CAP), "{gaps:?}");
            assert!(gaps[39] >= EARLY_CAP.mul_f64(0.8), "{gaps:?}");
        }
    }

    #[test]
    fn a_change_found_at_the_ttl_starts_over() {
        let mut early = Early::new(MIN_TTL);
        let (_, end) = outage(&mut early, Instant::now(), 10);
        // A lookup at the TTL (not woken early) finds the set changed.
        early.looked(false, true);
        assert_eq!(early.poked(end), MIN_TTL);
        // One at the TTL that changed nothing leaves the gap as it is.
        let mut early = Early::new(MIN_TTL);
        let (_, end) = outage(&mut early, Instant::now(), 10);
        early.looked(false, false);
        assert!(early.poked(end) > MIN_TTL);
    }

    #[test]
    fn failures_that_go_on_while_ttl_lookups_come_first_do_not_start_over() {
        let mut early = Early::new(MIN_TTL);
        let (_, start) = outage(&mut early, Instant::now(), 10);
        let grown = early.poked(start);
        // A TTL of 10 s, shorter than the gap: the lookups at the TTL come first, nothing
        // changes, while a connection fails every second for two minutes.
        for second in 1..120 {
            let gap = early.poked(start + Duration::from_secs(second));
            if second % 10 == 0 {
                early.looked(false, false);
            }
            assert!(gap >= grown, "{second} s: {gap:?} < {grown:?}");
        }
        // No failure for 30 s: the next one is a new outage.
        assert_eq!(early.poked(start + Duration::from_secs(150)), MIN_TTL);
    }

    #[test]
    fn a_min_ttl_above_30_s_is_kept() {
        let mut early = Early::new(Duration::from_secs(45));
        let (gaps, _) = outage(&mut early, Instant::now(), 5);
        assert!(
            gaps.iter().all(|gap| *gap == Duration::from_secs(45)),
            "{gaps:?}"
        );
    }
}
