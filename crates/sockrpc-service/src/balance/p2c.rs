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
                Some(if list[a].load() <= list[b].load() {
                    a
                } else {
                    b
                })
            }
        }
    }
}
