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

#[cfg(test)]
mod tests {
    use super::super::member::Member;
    use super::*;
    use crate::Body;
    use sockrpc_protocol::{MethodPath, Request};
    use sockrpc_transport::endpoint::Endpoint;
    use std::sync::Arc;
    use std::time::Duration;

    fn set(weights: &[u32]) -> Members {
        let list = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Arc::new(Member::new(
                    format!("10.0.0.{i}:1"),
                    Endpoint::new("127.0.0.1", 1),
                    *w,
                    Duration::from_secs(1),
                ))
            })
            .collect();
        Members::new(1, list)
    }

    fn call() -> Call {
        Call::new(
            MethodPath::from_static("/a.B/C"),
            Request::new(Body::once(bytes::Bytes::new())),
        )
    }

    #[tokio::test]
    async fn picks_the_less_loaded_of_two_and_weights_divide_load() {
        let members = set(&[1, 1]);
        // Three calls in flight on the first, for as long as the attempts are held.
        let _held: Vec<_> = (0..3).map(|_| members.list()[0].start()).collect();
        for _ in 0..50 {
            assert_eq!(P2c.pick(&members, &call(), &|_| true), Some(1));
        }
        assert_eq!(P2c.pick(&members, &call(), &|i| i == 0), Some(0));
        assert_eq!(P2c.pick(&members, &call(), &|_| false), None);
        let weighted = set(&[3, 1]);
        let _one = weighted.list()[0].start();
        // Cost 2 ÷ 3 beats 1 ÷ 1.
        for _ in 0..50 {
            assert_eq!(P2c.pick(&weighted, &call(), &|_| true), Some(0));
        }
    }
}
