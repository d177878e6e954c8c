//! Round robin: each usable endpoint in turn, whatever its load (weights are not used).

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

impl Picker for RoundRobin {
    fn pick(
        &self,
        members: &Members,
        _call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = members.list().len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
    }
}
