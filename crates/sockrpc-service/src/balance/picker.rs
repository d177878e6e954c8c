//! `Picker`: which endpoint of a balanced channel takes the next call.
//!
//! The balanced channel owns the endpoint set and each endpoint's state (load, health,
//! ejection); a picker only chooses, among the endpoints the channel says may take the call
//! now. Four ship: [`P2c`](super::P2c) (least load of two random choices, the default),
//! [`RoundRobin`](super::RoundRobin), [`PickFirst`](super::PickFirst) (grpc-go's default) and
//! [`HashRing`](super::HashRing) (consistent hashing).

use super::member::Members;
use crate::Call;

/// Chooses the endpoint for one call.
pub trait Picker: Send + Sync + 'static {
    /// The index into `members.list()` of the endpoint to take `call`, choosing only among those
    /// for which `usable(index)` holds; `None` when none is.
    fn pick(&self, members: &Members, call: &Call, usable: &dyn Fn(usize) -> bool)
        -> Option<usize>;

    /// Whether the channel connects to one endpoint at a time, in discovery's order, and keeps
    /// a connection only to the first that connects (and to the one being tried), as grpc-go's
    /// `pick_first` does; `pick` then chooses among at most that one. False (the default): the
    /// channel keeps every endpoint connected, for `pick` to choose among.
    fn connects_in_order(&self) -> bool {
        false
    }
}

/// A random number below `n` (`n > 0`), from a per-thread xorshift generator seeded by the
/// standard library's random hasher keys. Balancing needs spread, not secrecy.
pub(crate) fn random_below(n: usize) -> usize {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % n.max(1) as u64) as usize
    })
}

/// The indices `usable` admits.
pub(crate) fn usable_indices(members: &Members, usable: &dyn Fn(usize) -> bool) -> Vec<usize> {
    (0..members.list().len()).filter(|&i| usable(i)).collect()
}
