//! At most [`DnsDiscovery::max_endpoints`](super::DnsDiscovery::max_endpoints) endpoints from
//! one answer: a subset of its addresses, the best priorities first, the same one at every
//! lookup of this client and a different one on each client.
//!
//! A DNS answer over TCP holds up to about 4,000 addresses (64 KiB), and SRV multiplies that by
//! its targets. Every endpoint of a balanced channel is a pool that connects, so an answer that
//! size opened 4,000 connections and 8,000 tasks on one client, and with a low descriptor
//! limit took every file descriptor of the process. The subset is chosen by a hash of each
//! address under a seed of this discovery's own: stable while the answer is (a re-resolution
//! moves no endpoint), spread across clients (each client's seed differs, so together they
//! cover the whole answer, as gRPC's subsetting does).

use super::lookup::Place;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::net::SocketAddr;

/// The default of [`DnsDiscovery::max_endpoints`](super::DnsDiscovery::max_endpoints).
pub(super) const DEFAULT_MAX_ENDPOINTS: usize = 100;

/// Chooses the subset; one per running discovery.
#[derive(Debug)]
pub(super) struct Subset {
    max: usize,
    seed: foldhash::fast::RandomState,
    /// How many addresses the last answer left out, so a change is logged once.
    left_out: usize,
}

impl Subset {
    /// At most `max` endpoints (at least 1).
    pub(super) fn new(max: usize) -> Subset {
        Subset {
            max: max.max(1),
            seed: foldhash::fast::RandomState::default(),
            left_out: 0,
        }
    }

    /// `addrs`, or the `max` of them with the best priority, then the lowest hash.
    pub(super) fn take(
        &mut self,
        addrs: BTreeMap<SocketAddr, Place>,
        query: &dyn std::fmt::Debug,
    ) -> BTreeMap<SocketAddr, Place> {
        let total = addrs.len();
        let left_out = total.saturating_sub(self.max);
        if left_out != self.left_out {
            self.left_out = left_out;
            if left_out > 0 {
                tracing::warn!(
                    ?query,
                    total,
                    kept = self.max,
                    "DNS answered more addresses than max_endpoints: a subset is used"
                );
            }
        }
        if left_out == 0 {
            return addrs;
        }
        let mut ranked: Vec<(u32, u64, SocketAddr, Place)> = addrs
            .into_iter()
            .map(|(addr, place)| (place.priority, self.seed.hash_one(addr), addr, place))
            .collect();
        ranked.sort_unstable_by_key(|&(priority, hash, addr, _)| (priority, hash, addr));
        ranked
            .into_iter()
            .take(self.max)
            .map(|(_, _, addr, place)| (addr, place))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn answer(count: u32, priority: u32) -> BTreeMap<SocketAddr, Place> {
        (0..count)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i + priority * 0x10000));
                (
                    SocketAddr::new(ip, 443),
                    Place {
                        weight: 1,
                        priority,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_large_answer_gives_a_stable_subset_of_the_best_priority_first() {
        let mut subset = Subset::new(100);
        let small = answer(100, 0);
        assert_eq!(
            subset.take(small.clone(), &"q"),
            small,
            "within the bound: all"
        );

        let mut big = answer(4000, 1);
        big.extend(answer(30, 0));
        let first = subset.take(big.clone(), &"q");
        assert_eq!(first.len(), 100);
        assert_eq!(first.values().filter(|p| p.priority == 0).count(), 30);
        assert_eq!(
            subset.take(big.clone(), &"q"),
            first,
            "stable across lookups"
        );
        // Another client (another seed) takes another subset of the same answer.
        let other = Subset::new(100).take(big, &"q");
        assert_ne!(other, first);
    }
}
