//! A consistent hash ring: a call's key (a metadata entry, or what a function of the call
//! returns) maps to the first endpoint clockwise from the key's hash.
//!
//! ```text
//!            key hash ─┐
//!   0 ──●A────●C──●B───▼──●A──●C────●B──●A── 2^64
//!                         └─ first point after it: A (then C, then B on fail-over)
//! ```
//!
//! Each endpoint owns `virtual_nodes × weight` points (hashes of `KEY#i`), so adding one of n
//! endpoints moves only about 1/(n+1) of the keys and removing one moves only its own keys.
//! When the owner may not take the call (unhealthy, ejected, not connected) the call fails over
//! to the next *distinct* endpoint clockwise, so every key still has a stable second choice.
//! A call without a key goes to a random usable endpoint.

use super::member::Members;
use super::picker::{random_below, usable_indices, Picker};
use crate::Call;
use std::sync::{Arc, Mutex};

/// Points per unit of weight: enough that shares stay within a few percent of even.
pub const DEFAULT_VIRTUAL_NODES: u32 = 160;

/// The most points one endpoint gets, whatever its weight (bounds the ring's memory).
const MAX_POINTS_PER_ENDPOINT: u64 = 16 * 1024;

/// A function giving a call's hash key.
pub type KeyFn = Arc<dyn Fn(&Call) -> Option<Vec<u8>> + Send + Sync>;

/// Where a call's hash key comes from.
#[derive(Clone)]
pub enum HashKey {
    /// The value of this request metadata entry (text or `-bin`).
    Metadata(String),
    /// What this function returns for the call.
    Function(KeyFn),
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::Metadata(name) => f.debug_tuple("Metadata").field(name).finish(),
            HashKey::Function(_) => f.write_str("Function(..)"),
        }
    }
}

/// 64-bit FNV-1a, then a splitmix64 finaliser for spread: stable across processes, platforms
/// and Rust versions, so every client maps a key to the same endpoint.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The ring for one version of the endpoint set: sorted (point, member index).
#[derive(Debug)]
struct Ring {
    generation: u64,
    points: Vec<(u64, usize)>,
}

impl Ring {
    fn build(members: &Members, virtual_nodes: u32) -> Ring {
        let mut points = Vec::new();
        for (index, member) in members.list().iter().enumerate() {
            let count = (u64::from(virtual_nodes.max(1)) * u64::from(member.weight()))
                .min(MAX_POINTS_PER_ENDPOINT);
            for i in 0..count {
                points.push((
                    stable_hash(format!("{}#{i}", member.key()).as_bytes()),
                    index,
                ));
            }
        }
        points.sort_unstable();
        Ring {
            generation: members.generation(),
            points,
        }
    }

    /// Distinct members clockwise from `hash`, nearest first.
    fn walk(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let start = self.points.partition_point(|(p, _)| *p < hash);
        let n = self.points.len();
        let mut seen = Vec::new();
        (0..n).filter_map(move |k| {
            let index = self.points[(start + k) % n].1;
            if seen.contains(&index) {
                None
            } else {
                seen.push(index);
                Some(index)
            }
        })
    }
}

/// The consistent-hash picker.
#[derive(Debug)]
pub struct HashRing {
    key: HashKey,
    virtual_nodes: u32,
    ring: Mutex<Option<Arc<Ring>>>,
}

impl HashRing {
    /// A ring keyed by `key`, with [`DEFAULT_VIRTUAL_NODES`] points per unit of weight.
    pub fn new(key: HashKey) -> HashRing {
        HashRing {
            key,
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
            ring: Mutex::new(None),
        }
    }

    /// A ring keyed by the request metadata entry `name`.
    pub fn by_metadata(name: impl Into<String>) -> HashRing {
        HashRing::new(HashKey::Metadata(name.into()))
    }

    /// Points per unit of weight.
    pub fn virtual_nodes(mut self, n: u32) -> HashRing {
        self.virtual_nodes = n.max(1);
        self
    }

    fn ring(&self, members: &Members) -> Arc<Ring> {
        let mut cached = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some(ring) if ring.generation == members.generation() => Arc::clone(ring),
            _ => {
                let ring = Arc::new(Ring::build(members, self.virtual_nodes));
                *cached = Some(Arc::clone(&ring));
                ring
            }
        }
    }

    /// The hash of `call`'s key, if it has one.
    pub fn call_hash(&self, call: &Call) -> Option<u64> {
        match &self.key {
            HashKey::Metadata(name) => call.request().metadata().get_raw(name).map(stable_hash),
            HashKey::Function(f) => f(call).map(|k| stable_hash(&k)),
        }
    }

    /// The member index owning `hash` among those `usable` admits (the owner, or the next
    /// distinct one clockwise).
    pub fn owner(
        &self,
        members: &Members,
        hash: u64,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        self.ring(members).walk(hash).find(|&i| usable(i))
    }
}

impl Picker for HashRing {
    fn pick(
        &self,
        members: &Members,
        call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        match self.call_hash(call) {
            Some(hash) => self.owner(members, hash, usable),
            None => {
                let candidates = usable_indices(members, usable);
                (!candidates.is_empty()).then(|| candidates[random_below(candidates.len())])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::member::Member;
    use super::*;
    use sockrpc_transport::endpoint::Endpoint;
    use std::time::Duration;

    fn members(generation: u64, keys: &[&str]) -> Members {
        let list = keys
            .iter()
            .map(|k| {
                Arc::new(Member::new(
                    (*k).to_owned(),
                    Endpoint::new("127.0.0.1", 1),
                    1,
                    Duration::from_secs(1),
                ))
            })
            .collect();
        Members::new(generation, list)
    }

    fn owners(ring: &HashRing, set: &Members) -> Vec<String> {
        (0..10_000u32)
            .map(|k| {
                let i = ring
                    .owner(set, stable_hash(format!("user-{k}").as_bytes()), &|_| true)
                    .expect("an owner");
                set.list()[i].key().to_owned()
            })
            .collect()
    }

    #[test]
    fn adding_moves_about_one_in_n_and_removing_moves_only_its_keys() {
        let ring = HashRing::by_metadata("k");
        let three = members(1, &["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"]);
        let four = members(2, &["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"]);
        let two = members(3, &["10.0.0.1:1", "10.0.0.3:1"]);
        let before = owners(&ring, &three);
        let added = owners(&ring, &four);
        let moved = before.iter().zip(&added).filter(|(a, b)| a != b).count();
        assert!((1500..=3500).contains(&moved), "{moved} of 10000 moved");
        assert!(added
            .iter()
            .zip(&before)
            .all(|(a, b)| a == b || a == "10.0.0.4:1"));
        let removed = owners(&ring, &two);
        for (b, r) in before.iter().zip(&removed) {
            if b != "10.0.0.2:1" {
                assert_eq!(b, r, "a key of a remaining endpoint moved");
            }
        }
        // Shares are near even (160 points each).
        for key in ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"] {
            let share = before.iter().filter(|o| *o == key).count();
            assert!((2500..=4200).contains(&share), "{key}: {share}");
        }
    }

    #[test]
    fn fails_over_to_the_next_distinct_endpoint_and_weights_count() {
        let ring = HashRing::by_metadata("k");
        let set = members(1, &["a:1", "b:1", "c:1"]);
        for k in 0..200u32 {
            let h = stable_hash(&k.to_le_bytes());
            let first = ring.owner(&set, h, &|_| true).expect("owner");
            let second = ring.owner(&set, h, &|i| i != first).expect("next");
            assert_ne!(first, second);
            // Stable: the same answer every time.
            assert_eq!(ring.owner(&set, h, &|i| i != first), Some(second));
        }
        set.list()[0].set_weight(3);
        // A new generation, so the ring is rebuilt with the new weight.
        let weighted = Members::new(2, set.list().to_vec());
        let share = owners(&ring, &weighted)
            .iter()
            .filter(|o| *o == "a:1")
            .count();
        assert!(share > 5000, "weight 3 of 5 should own ~60%: {share}");
    }
}
