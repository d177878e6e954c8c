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
//!
//! Sources that have not proved their address with a cookie are no sources at all here: a
//! spoofer picks any address, so a share per forged address is a share per guess, and eight
//! /32s (or the 4,096 the rate limit tracks) used to fill the cache for everyone. So unverified
//! calls hold entries from one small pool of their own ([`Owner::Unverified`]), and only from
//! it, as DNS cookies (RFC 7873 §5.2.3) and QUIC address validation (RFC 9000 §8) bound what
//! an unvalidated address may cost: a flood of them fills that pool and no more, and a verified
//! client's calls still find room, whatever address the flood claims (the verified client's own
//! included).

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

/// Who an entry is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A source that proved its address (a valid cookie): its own share, keyed by its address
    /// (see [`Quotas::source`]).
    Verified(IpAddr),
    /// A source without a valid cookie, perhaps forged: the one pool all such sources share.
    Unverified,
}

impl Owner {
    /// The owner of a call from `ip`, verified or not.
    pub(crate) fn of(ip: IpAddr, verified: bool) -> Owner {
        match verified {
            true => Owner::Verified(ip),
            false => Owner::Unverified,
        }
    }
}

impl From<IpAddr> for Owner {
    /// A verified source's calls.
    fn from(ip: IpAddr) -> Owner {
        Owner::Verified(ip)
    }
}

/// Entries and bytes held per source, against the shares of
/// [`ReplyCacheConfig`](super::ReplyCacheConfig), and by all unverified sources together,
/// against their pool. Holds a record for each verified source that holds an entry, bounded by
/// the cache's own bound, and for at most 256 that hold none.
#[derive(Debug)]
pub(super) struct Quotas {
    usage: HashMap<IpAddr, Usage>,
    max_entries: usize,
    max_bytes: usize,
    /// What unverified sources hold, all together.
    unverified: Usage,
    /// Their pool: (entries, bytes).
    max_unverified: (usize, usize),
}

impl Quotas {
    /// Shares of at most `max_entries` entries and `max_bytes` bytes per verified source, and
    /// a pool of `max_unverified` (entries, bytes) for all unverified sources together.
    pub(super) fn new(
        max_entries: usize,
        max_bytes: usize,
        max_unverified: (usize, usize),
    ) -> Quotas {
        Quotas {
            usage: HashMap::default(),
            max_entries,
            max_bytes,
            unverified: Usage::default(),
            max_unverified,
        }
    }

    /// The owner `owner` is counted as: a verified source under its key.
    pub(super) fn owner(owner: Owner) -> Owner {
        match owner {
            Owner::Verified(ip) => Owner::Verified(Quotas::source(ip)),
            Owner::Unverified => Owner::Unverified,
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
    /// An unverified call is counted in the unverified pool, under the same rule.
    pub(super) fn admit(&mut self, owner: Owner) -> bool {
        let source = match owner {
            Owner::Verified(source) => source,
            Owner::Unverified => {
                let (entries, bytes) = self.max_unverified;
                let pool = &mut self.unverified;
                let room = pool.entries < entries && pool.bytes < bytes;
                pool.entries += usize::from(room);
                return room;
            }
        };
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

    /// A call of `owner` finished, its answer kept: `size` bytes.
    pub(super) fn add_bytes(&mut self, owner: &Owner, size: usize) {
        let source = match owner {
            Owner::Verified(source) => source,
            Owner::Unverified => {
                self.unverified.bytes += size;
                return;
            }
        };
        if let Some(usage) = self.usage.get_mut(source) {
            usage.bytes += size;
        }
    }

    /// An entry of `owner` went, with the `size` bytes it held (0 for a call still running).
    pub(super) fn remove(&mut self, owner: &Owner, size: usize) {
        let source = match owner {
            Owner::Verified(source) => source,
            Owner::Unverified => {
                let pool = &mut self.unverified;
                pool.entries = pool.entries.saturating_sub(1);
                pool.bytes = pool.bytes.saturating_sub(size);
                return;
            }
        };
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
        let mut quotas = Quotas::new(2, 100, (8, 800));
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(quotas.admit(a.into()));
        assert!(quotas.admit(a.into()));
        assert!(!quotas.admit(a.into()), "two entries: at its share");
        assert!(quotas.admit(b.into()));
        quotas.remove(&a.into(), 0);
        quotas.remove(&b.into(), 0);
        // Bytes: a source holding its share of bytes is refused, whatever its entries.
        quotas.add_bytes(&a.into(), 100);
        assert!(!quotas.admit(a.into()), "at its share of bytes");
        quotas.remove(&a.into(), 100);
        assert!(quotas.admit(a.into()), "its bytes went with its entry");
        quotas.remove(&a.into(), 0);
        // A share of 0 admits nothing, and keeps no more than KEPT_IDLE records.
        let mut none = Quotas::new(0, 100, (8, 800));
        for n in 0..1_000u32 {
            assert!(!none.admit(Owner::from(IpAddr::V4(Ipv4Addr::from(n)))));
        }
        assert!(none.sources() <= KEPT_IDLE + 1);
    }

    #[test]
    fn unverified_sources_share_one_pool_apart_from_every_verified_share() {
        let mut quotas = Quotas::new(2, 100, (3, 300));
        let a = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
        for _ in 0..3 {
            assert!(quotas.admit(Owner::of(a, false)));
        }
        assert!(!quotas.admit(Owner::Unverified), "the pool is full");
        // A verified source's share is untouched by calls claiming its address unverified.
        assert!(quotas.admit(a.into()));
        assert!(quotas.admit(a.into()));
        assert!(!quotas.admit(a.into()));
        // The pool empties as its entries go, bytes and all.
        quotas.add_bytes(&Owner::Unverified, 300);
        quotas.remove(&Owner::Unverified, 0);
        assert!(!quotas.admit(Owner::Unverified), "at the pool's bytes");
        quotas.remove(&Owner::Unverified, 300);
        assert!(quotas.admit(Owner::Unverified));
        assert_eq!(quotas.sources(), 1, "no record per unverified address");
    }

    #[test]
    fn records_of_idle_sources_are_bounded() {
        let mut quotas = Quotas::new(4, 100, (8, 800));
        let ip = |n: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        // Each source makes one call and ends it: at most KEPT_IDLE records stay.
        for n in 0..1_000 {
            assert!(quotas.admit(ip(n).into()));
            quotas.remove(&ip(n).into(), 0);
        }
        assert!(quotas.sources() <= KEPT_IDLE + 1, "{}", quotas.sources());
        // A busy source's record is never dropped while it holds entries.
        assert!(quotas.admit(ip(5_000).into()));
        for n in 1_000..2_000 {
            assert!(quotas.admit(ip(n).into()));
            quotas.remove(&ip(n).into(), 0);
        }
        assert!(quotas.admit(ip(5_000).into()));
        assert!(quotas.admit(ip(5_000).into()));
        assert!(quotas.admit(ip(5_000).into()));
        assert!(
            !quotas.admit(ip(5_000).into()),
            "its four entries were kept"
        );
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
