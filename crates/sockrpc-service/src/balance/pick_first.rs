//! Pick first: every call to one endpoint, the first in discovery's order that connects, kept
//! until it cannot take calls (grpc-go's default policy, `pick_first`).
//!
//! Why a picker of its own: a client that wants one connection's ordering and warm caches (or a
//! primary with standbys listed after it) wants every call on the same server, and moving only
//! when that server fails. Like grpc-go's, the channel connects to the endpoints one at a time,
//! in order, and holds a connection only to the one in use (`in_order.rs`); when that one's
//! connection goes, it tries them in order again. So it is sticky: once it moved to the second
//! endpoint, it stays there when the first comes back (it holds no connection to the first to
//! notice), until the second fails in turn.

use super::member::Members;
use super::picker::Picker;
use crate::Call;
use std::sync::Mutex;

/// Sends every call to one endpoint: the current one while it is usable, else the first usable
/// one in list order, which becomes the current one. The channel holds a connection only to
/// that one ([`Picker::connects_in_order`]); with health checking, one that says `NOT_SERVING`
/// takes no calls and is not left for another while connected (grpc-go's `pick_first` does no
/// health checking of its own).
#[derive(Debug, Default)]
pub struct PickFirst {
    /// The key of the endpoint calls go to now.
    current: Mutex<Option<String>>,
}

impl PickFirst {
    /// A pick-first picker.
    pub fn new() -> PickFirst {
        PickFirst::default()
    }
}

impl Picker for PickFirst {
    fn pick(
        &self,
        members: &Members,
        _call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let list = members.list();
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = current.as_deref() {
            if let Some(i) = list.iter().position(|m| m.key() == key) {
                if usable(i) {
                    return Some(i);
                }
            }
        }
        let first = (0..list.len()).find(|&i| usable(i))?;
        *current = Some(list[first].key().to_owned());
        Some(first)
    }

    fn connects_in_order(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::member::Member;
    use crate::Body;
    use bytes::Bytes;
    use sockrpc_protocol::{MethodPath, Request};
    use sockrpc_transport::endpoint::Endpoint;
    use std::sync::Arc;
    use std::time::Duration;

    fn members(generation: u64, keys: &[&str]) -> Members {
        let list = keys
            .iter()
            .map(|key| {
                let endpoint = Endpoint::from_uri(&format!("tcp://{key}")).expect("endpoint");
                Arc::new(Member::new(
                    (*key).to_owned(),
                    endpoint,
                    1,
                    Duration::from_secs(1),
                ))
            })
            .collect();
        Members::new(generation, list)
    }

    fn call() -> Call {
        Call::new(
            MethodPath::from_static("/a.B/C"),
            Request::new(Body::once(Bytes::from_static(b"x"))),
        )
    }

    #[test]
    fn stays_on_the_first_usable_endpoint_until_it_fails() {
        let picker = PickFirst::new();
        let set = members(1, &["127.0.0.1:1", "127.0.0.2:1", "127.0.0.3:1"]);
        let pick = |usable: &[bool]| picker.pick(&set, &call(), &|i| usable[i]);
        assert_eq!(pick(&[true, true, true]), Some(0));
        assert_eq!(pick(&[true, true, true]), Some(0));
        // The first fails: the next in order, which it keeps when the first comes back.
        assert_eq!(pick(&[false, true, true]), Some(1));
        assert_eq!(pick(&[true, true, true]), Some(1));
        // That one fails too: the first usable in order again.
        assert_eq!(pick(&[true, false, true]), Some(0));
        assert_eq!(pick(&[false, false, false]), None);
        assert_eq!(pick(&[false, false, true]), Some(2));
    }

    #[test]
    fn a_removed_endpoint_gives_way_to_the_first_usable() {
        let picker = PickFirst::new();
        let before = members(1, &["127.0.0.1:1", "127.0.0.2:1"]);
        assert_eq!(picker.pick(&before, &call(), &|i| i == 1), Some(1));
        // The set changed: the current endpoint is found by key, not by index.
        let moved = members(2, &["127.0.0.3:1", "127.0.0.2:1"]);
        assert_eq!(picker.pick(&moved, &call(), &|_| true), Some(1));
        let gone = members(3, &["127.0.0.3:1", "127.0.0.4:1"]);
        assert_eq!(picker.pick(&gone, &call(), &|_| true), Some(0));
    }
}
