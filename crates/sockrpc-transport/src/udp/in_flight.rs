//! Each source's share of a UDP server's calls in flight, so that one client host cannot hold
//! every one of them.
//!
//! A call whose handler does not answer on its first poll runs on a task of its own, and the
//! server runs at most `max_in_flight` such tasks; past that, requests are dropped unrun. Without
//! a share per source, one verified sender of calls that never end (or end only at a long
//! deadline) held all of them, and every other host's calls were dropped until their deadlines
//! passed. A source here is an IPv4 address or an IPv6 /64, as for the reply cache's shares
//! (`cache/quota.rs`) and the rate limit (`limiter.rs`). A source at its share has its new calls
//! refused unrun with `NOT_PROCESSED`, so its client may carry them over TCP at once; other
//! sources are untouched.
//!
//! Sources without a valid cookie have no share each (a spoofer picks any address: eight forged
//! /32s held every slot, and with them every verified client's calls were refused): they hold
//! slots from one small pool of their own, `max_unverified_in_flight`, and only from it, so a
//! verified client still finds a slot whatever a flood of them claims to come from.

use super::limiter::source_key;
use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The status message of a call refused because its source holds its share.
pub(super) const REFUSED: &str =
    "this source has its share of calls running on the server; the call did not run";
/// Why a call did not run when the server had its limit of calls running.
pub(super) const FULL: &str = "the server has its limit of UDP calls running; the call did not run";

/// Why a call from an unverified source did not run: such sources, all told, held their pool
/// of calls running or of the reply cache (`cache/quota.rs`).
pub(super) const UNVERIFIED_FULL: &str =
    "sources without a valid cookie hold their share of this server's UDP calls; the call did not run";

/// Why [`InFlight::refusal`] refuses a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its verified source has its share running ([`REFUSED`]).
    Share,
    /// It is unverified, and unverified sources have their pool running ([`UNVERIFIED_FULL`]).
    Unverified,
    /// The server has `max_in_flight` running ([`FULL`]).
    Full,
}

/// What runs: calls per verified source, and calls of unverified sources together.
#[derive(Debug, Default)]
struct Running {
    per_source: HashMap<IpAddr, usize>,
    unverified: usize,
}

/// The calls each source has running on tasks of their own: a record only for a verified source
/// that has one, so at most `max_in_flight` records, and one count for all unverified sources.
#[derive(Debug)]
pub(super) struct InFlight {
    running: Mutex<Running>,
    max_per_source: usize,
    max_unverified: usize,
}

impl InFlight {
    /// Shares of `max_per_source` running calls per verified source, and `max_unverified` for
    /// all unverified sources together.
    pub(super) fn new(max_per_source: usize, max_unverified: usize) -> InFlight {
        InFlight {
            running: Mutex::new(Running::default()),
            max_per_source,
            max_unverified,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the source of `ip` holds its share: a new call of it must not run now.
    pub(super) fn at_share(&self, ip: IpAddr) -> bool {
        self.lock()
            .per_source
            .get(&source_key(ip))
            .is_some_and(|&n| n >= self.max_per_source)
    }

    /// Whether unverified sources hold their pool: a new call of one must not run now.
    pub(super) fn unverified_full(&self) -> bool {
        self.lock().unverified >= self.max_unverified
    }

    /// Why a new call of `source` (`None`: an unverified source) must not run now, with
    /// `running` calls on tasks and a limit of `max_in_flight`: `None` when it may.
    pub(super) fn refusal(
        &self,
        running: usize,
        source: Option<IpAddr>,
        max_in_flight: usize,
    ) -> Option<Refusal> {
        // No source holds its share while fewer calls than a share run at all: no lock then.
        match source {
            Some(ip) if running >= self.max_per_source && self.at_share(ip) => Some(Refusal::Share),
            None if running >= self.max_unverified && self.unverified_full() => {
                Some(Refusal::Unverified)
            }
            _ => (running >= max_in_flight).then_some(Refusal::Full),
        }
    }

    /// Counts one more call of `ip`'s source (`None`: of an unverified source) running on a
    /// task, until the returned slot is dropped (the call answered, panicked or was aborted).
    pub(super) fn take(self: &Arc<Self>, ip: Option<IpAddr>) -> Slot {
        let source = ip.map(source_key);
        let mut running = self.lock();
        match source {
            Some(source) => *running.per_source.entry(source).or_default() += 1,
            None => running.unverified += 1,
        }
        drop(running);
        Slot {
            in_flight: Arc::clone(self),
            source,
        }
    }

    /// Verified sources with calls running.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().per_source.len()
    }
}

/// One running call of a source, counted in [`InFlight`] while it lives.
#[derive(Debug)]
pub(super) struct Slot {
    in_flight: Arc<InFlight>,
    /// `None`: a call of an unverified source.
    source: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.in_flight.lock();
        let Some(source) = self.source else {
            running.unverified = running.unverified.saturating_sub(1);
            return;
        };
        if let Some(n) = running.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                running.per_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_at_its_share_is_refused_others_are_not() {
        let in_flight = Arc::new(InFlight::new(2, 2));
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.1".parse().expect("ip");
        let first = in_flight.take(Some(a));
        assert!(!in_flight.at_share(a));
        let second = in_flight.take(Some(a));
        assert!(in_flight.at_share(a), "two running: at its share");
        assert!(!in_flight.at_share(b), "another source is untouched");
        drop(first);
        assert!(!in_flight.at_share(a), "a call ended: room again");
        drop(second);
        assert_eq!(
            in_flight.sources(),
            0,
            "no record kept for a source with nothing running"
        );
        // An IPv6 host's addresses share its /64.
        let one: IpAddr = "2001:db8::1".parse().expect("ip");
        let other: IpAddr = "2001:db8::ffff".parse().expect("ip");
        let _held = (in_flight.take(Some(one)), in_flight.take(Some(one)));
        assert!(in_flight.at_share(other));
    }

    #[test]
    fn unverified_sources_share_one_pool_apart_from_every_verified_share() {
        let in_flight = Arc::new(InFlight::new(2, 1));
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(!in_flight.unverified_full());
        let forged = in_flight.take(None);
        assert!(in_flight.unverified_full(), "one running: the pool is full");
        assert!(
            !in_flight.at_share(a),
            "no verified source's share is touched"
        );
        assert_eq!(in_flight.sources(), 0);
        drop(forged);
        assert!(!in_flight.unverified_full());
    }
}
