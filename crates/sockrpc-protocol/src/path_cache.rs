//! `PathCache`: the method paths a connection has read lately, checked once each.
//!
//! Calls on one connection (or one UDP socket) name the same few methods over and over. Checking each OPEN's path
//! afresh (UTF-8, the `/package.Service/Method` shape) costs more than comparing its bytes with
//! a path checked before, and a path sliced out of the read buffer keeps that whole buffer
//! alive for as long as the call holds it. So a connection's decoder (and the UDP server's
//! receive loop) keeps its last few paths in storage of their own and hands out clones (a
//! reference count).
//!
//! A peer that names a new path every call (hostile or not) costs one copy per miss, and the
//! cache never holds more than [`PathCache::ENTRIES`] paths of at most
//! [`PathCache::MAX_PATH`] bytes each: a longer path is checked and sliced as before, not kept.

use crate::method::{InvalidPath, MethodPath};
use bytes::Bytes;

/// The last few method paths read on one connection. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct PathCache {
    entries: [Option<MethodPath>; PathCache::ENTRIES],
    /// The entry the next miss replaces (round robin).
    next: usize,
}

impl PathCache {
    /// Paths kept.
    pub const ENTRIES: usize = 4;

    /// The longest path kept, in bytes.
    pub const MAX_PATH: usize = 256;

    /// The checked path whose bytes are `bytes` (a slice of `whole`): a clone of a kept one,
    /// or checked now and kept in place of the oldest. A path longer than
    /// [`MAX_PATH`](Self::MAX_PATH) is checked and sliced from `whole`, not kept.
    pub fn get(
        &mut self,
        whole: &Bytes,
        range: std::ops::Range<usize>,
    ) -> Result<MethodPath, InvalidPath> {
        let bytes = &whole[range.clone()];
        if bytes.len() > Self::MAX_PATH {
            return MethodPath::try_from_bytes(whole.slice(range));
        }
        for path in self.entries.iter().flatten() {
            if path.as_bytes().as_ref() == bytes {
                return Ok(path.clone());
            }
        }
        let path = MethodPath::try_from_bytes(Bytes::copy_from_slice(bytes))?;
        self.entries[self.next] = Some(path.clone());
        self.next = (self.next + 1) % Self::ENTRIES;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_path_is_shared_and_does_not_pin_the_input() {
        let mut cache = PathCache::default();
        let wire = Bytes::from_static(b"....../pkg.Svc/Call....");
        let first = cache.get(&wire, 6..19).expect("valid");
        assert_eq!(first.as_str(), "/pkg.Svc/Call");
        assert_eq!(first.service(), "pkg.Svc");
        assert_eq!(first.method(), "Call");
        let again = cache
            .get(&Bytes::from_static(b"/pkg.Svc/Call"), 0..13)
            .expect("valid");
        // The same storage: a clone, not a second copy.
        assert_eq!(
            first.as_bytes().as_ptr(),
            again.as_bytes().as_ptr(),
            "the kept path is handed out again"
        );
        assert_ne!(first.as_bytes().as_ptr(), wire[6..].as_ptr());
    }

    #[test]
    fn invalid_paths_are_refused_and_not_kept() {
        let mut cache = PathCache::default();
        assert!(cache.get(&Bytes::from_static(b"no-slash"), 0..8).is_err());
        let bad = Bytes::from_static(&[b'/', 0xff, b'/', b'm']);
        assert!(cache.get(&bad, 0..4).is_err());
        assert!(cache.entries.iter().all(Option::is_none));
    }

    #[test]
    fn holds_at_most_its_entries_and_keeps_answering_right() {
        let mut cache = PathCache::default();
        for round in 0..3 {
            for i in 0..10 {
                let text = format!("/pkg.S/M{i}");
                let wire = Bytes::from(text.clone());
                let path = cache.get(&wire, 0..wire.len()).expect("valid");
                assert_eq!(path.as_str(), text, "round {round}");
            }
        }
        assert_eq!(cache.entries.iter().flatten().count(), PathCache::ENTRIES);
    }

    #[test]
    fn a_long_path_is_sliced_not_kept() {
        let mut cache = PathCache::default();
        let text = format!("/pkg.S/{}", "m".repeat(PathCache::MAX_PATH));
        let wire = Bytes::from(text.clone());
        let path = cache.get(&wire, 0..wire.len()).expect("valid");
        assert_eq!(path.as_str(), text);
        assert_eq!(
            path.as_bytes().as_ptr(),
            wire.as_ptr(),
            "a slice of the input"
        );
        assert!(cache.entries.iter().all(Option::is_none));
    }
}
