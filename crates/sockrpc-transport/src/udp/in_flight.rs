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

use super::limiter::source_key;
use foldhash::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The status message of a call refused because its source holds its share.
pub(super) const REFUSED: &str =
    "this source has its share of calls running on the server; the call did not run";
/// Why a call did not run when the server had its limit of calls running.
pub(super) const FULL: &str = "the server has its limit of UDP calls running; the call did not run";

/// The calls each source has running on tasks of their own: a record only for a source that
/// has one, so at most `max_in_flight` records.
#[derive(Debug)]
pub(super) struct InFlight {
    running: Mutex<HashMap<IpAddr, usize>>,
    max_per_source: usize,
}

impl InFlight {
    /// Shares of `max_per_source` running calls per source.
    pub(super) fn new(max_per_source: usize) -> InFlight {
        InFlight {
            running: Mutex::new(HashMap::default()),
            max_per_source,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the source of `ip` holds its share: a new call of it must not run now.
    pub(super) fn at_share(&self, ip: IpAddr) -> bool {
        self.lock()
            .get(&source_key(ip))
            .is_some_and(|&n| n >= self.max_per_source)
    }

    /// Counts one more call of `ip`'s source running on a task, until the returned slot is
    /// dropped (the call answered, panicked or was aborted).
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr) -> Slot {
        let source = source_key(ip);
        *self.lock().entry(source).or_default() += 1;
        Slot {
            in_flight: Arc::clone(self),
            source,
        }
    }

    /// Sources with calls running.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().len()
    }
}

/// One running call of a source, counted in [`InFlight`] while it lives.
#[derive(Debug)]
pub(super) struct Slot {
    in_flight: Arc<InFlight>,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.in_flight.lock();
        if let Some(n) = running.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_at_its_share_is_refused_others_are_not() {
        let in_flight = Arc::new(InFlight::new(2));
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.1".parse().expect("ip");
        let first = in_flight.take(a);
        assert!(!in_flight.at_share(a));
        let second = in_flight.take(a);
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
        let _held = (in_flight.take(one), in_flight.take(one));
        assert!(in_flight.at_share(other));
    }
}
