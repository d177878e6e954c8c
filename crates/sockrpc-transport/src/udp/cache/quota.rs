//! Each source's share of the reply cache, so that one client host cannot fill it for everyone.
//!
//! The cache's own bounds (`max_entries`, `max_bytes`) keep memory bounded, but without a share
//! per source one verified sender could hold all of it: a flood of calls under fresh client
//! instances, each answer kept for the `ttl`, and every other client's UDP calls refused (and
//! carried over TCP) until those entries age out. A source here is an IPv4 address or an IPv6
//! /64, as for the rate limit of unverified sources (`limiter.rs`): a host can pick any address
//! of its /64, not another network's.
//!
//! A source at its share has its new calls refused unrun, as a full cache refuses them (the
//! client carries them over TCP); other sources are untouched. Our own clients tell the server
//! which answers they are done with (`watermark.rs`), so one holds about its calls in flight,
//! far below its share.

use super::super::limiter::source_key;
use foldhash::HashMap;
use std::net::IpAddr;

/// Records of sources that hold nothing kept (see [`Quotas::remove`]).
const KEPT_IDLE: usize = 256;

/// What one source holds.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    /// Entries, running or finished.
    entries: usize,
    /// Bytes of finished answers (the cache's accounting).
    bytes: usize,
}

/// Entries and bytes held per source, against the shares of
/// [`ReplyCacheConfig`](super::ReplyCacheConfig). Holds a record for each source that holds
/// an entry, bounded by the cache's own bound, and for at most 256 that hold none.
#[derive(Debug)]
pub(super) struct Quotas {
    usage: HashMap<IpAddr, Usage>,
    max_entries: usize,
    max_bytes: usize,
}

impl Quotas {
    /// Shares of at most `max_entries` entries and `max_bytes` bytes per source.
    pub(super) fn new(max_entries: usize, max_bytes: usize) -> Quotas {
        Quotas {
            usage: HashMap::default(),
            max_entries,
            max_bytes,
        }
    }

    /// The key `ip` is counted under.
    pub(super) fn source(ip: IpAddr) -> IpAddr {
        source_key(ip)
    }

    /// Counts one more call of `source` when it holds fewer entries than its share, and fewer
    /// bytes; `false` (nothing counted) when it is at its share. Only admission is refused: an
    /// answer of a call already admitted is kept whole even when it takes its source past its
    /// bytes (the cache's own `max_bytes` bounds memory), because a TRUNCATED call's client
    /// fetches that answer over TCP.
    pub(super) fn admit(&mut self, source: IpAddr) -> bool {
        let usage = self.usage.entry(source).or_default();
        if usage.entries < self.max_entries && usage.bytes < self.max_bytes {
            usage.entries += 1;
            return true;
        }
        // Refused while holding nothing (a share of 0): the record just made goes too.
        if usage.entries == 0 && self.usage.len() > KEPT_IDLE {
            self.usage.remove(&source);
        }
        false
    }

    /// A call of `source` finished, its answer kept: `size` bytes.
    pub(super) fn add_bytes(&mut self, source: &IpAddr, size: usize) {
        if let Some(usage) = self.usage.get_mut(source) {
            usage.bytes += size;
        }
    }

    /// An entry of `source` went, with the `size` bytes it held (0 for a call still running).
    pub(super) fn remove(&mut self, source: &IpAddr, size: usize) {
        let Some(usage) = self.usage.get_mut(source) else {
            return;
        };
        usage.entries = usage.entries.saturating_sub(1);
        usage.bytes = usage.bytes.saturating_sub(size);
        // A source's record stays while it holds nothing, so that a client with one call at a
        // time does not insert and remove it on every call, unless there are many records: at
        // most `KEPT_IDLE` records of sources holding nothing, beside those holding entries
        // (bounded by the cache's own bound).
        if usage.entries == 0 && self.usage.len() > KEPT_IDLE {
            self.usage.remove(source);
        }
    }

    /// Sources holding entries.
    #[cfg(test)]
    pub(super) fn sources(&self) -> usize {
        self.usage.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn a_source_at_its_share_is_refused_others_are_not() {
        let mut quotas = Quotas::new(2, 100);
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(quotas.admit(a));
        assert!(quotas.admit(a));
        assert!(!quotas.admit(a), "two entries: at its share");
        assert!(quotas.admit(b));
        quotas.remove(&a, 0);
        quotas.remove(&b, 0);
        // Bytes: a source holding its share of bytes is refused, whatever its entries.
        quotas.add_bytes(&a, 100);
        assert!(!quotas.admit(a), "at its share of bytes");
        quotas.remove(&a, 100);
        assert!(quotas.admit(a), "its bytes went with its entry");
        quotas.remove(&a, 0);
        // A share of 0 admits nothing, and keeps no more than KEPT_IDLE records.
        let mut none = Quotas::new(0, 100);
        for n in 0..1_000u32 {
            assert!(!none.admit(IpAddr::V4(Ipv4Addr::from(n))));
        }
        assert!(none.sources() <= KEPT_IDLE + 1);
    }

    #[test]
    fn records_of_idle_sources_are_bounded() {
        let mut quotas = Quotas::new(4, 100);
        let ip = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        // Each source makes one call and ends it: at most KEPT_IDLE records stay.
        for n in 0..1_000 {
            assert!(quotas.admit(ip(n)));
            quotas.remove(&ip(n), 0);
        }
        assert!(quotas.sources() <= KEPT_IDLE + 1, "{}", quotas.sources());
        // A busy source's record is never dropped while it holds entries.
        assert!(quotas.admit(ip(5_000)));
        for n in 1_000..2_000 {
            assert!(quotas.admit(ip(n)));
            quotas.remove(&ip(n), 0);
        }
        assert!(quotas.admit(ip(5_000)));
        assert!(quotas.admit(ip(5_000)));
        assert!(quotas.admit(ip(5_000)));
        assert!(!quotas.admit(ip(5_000)), "its four entries were kept");
    }

    #[test]
    fn an_ipv6_host_s_addresses_share_its_slash_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().expect("v6").into();
        let other: IpAddr = "2001:db8:1:2:ffff::9"
            .parse::<Ipv6Addr>()
            .expect("v6")
            .into();
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse::<Ipv6Addr>().expect("v6").into();
        assert_eq!(Quotas::source(one), Quotas::source(other));
        assert_ne!(Quotas::source(one), Quotas::source(elsewhere));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse::<Ipv6Addr>().expect("v6").into();
        assert_eq!(
            Quotas::source(mapped),
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))
        );
    }
}
