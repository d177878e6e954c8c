//! Method paths the cache keeps: one shared copy per method, so that no entry keeps its request
//! datagram alive, and the bytes of a copy of its own counted when there is no room to share.

use bytes::Bytes;
use foldhash::HashSet;

/// Distinct method paths kept for sharing; past it each entry gets a copy of its own. A server
/// has a few dozen methods; a client naming others only makes its own entries cost a copy.
pub(super) const MAX_PATHS: usize = 1024;

/// The path an entry keeps: never a slice of the request it came in (a `Bytes` slice keeps its
/// whole datagram alive, and entries live up to `ttl`), but one shared copy per method, kept in
/// `paths`.
/// `last` is the path interned last: calls of one method in a row (the common case) compare
/// bytes with it instead of hashing the path.
pub(super) fn intern(paths: &mut HashSet<Bytes>, last: &mut Bytes, path: &[u8]) -> Bytes {
    if last.as_ref() == path {
        return last.clone();
    }
    let kept = match paths.get(path) {
        Some(kept) => kept.clone(),
        None => {
            let copy = Bytes::copy_from_slice(path);
            if paths.len() < MAX_PATHS {
                paths.insert(copy.clone());
            }
            copy
        }
    };
    *last = kept.clone();
    kept
}

/// Bytes of `path` an entry counts: none for one of the shared copies in `paths` (a few dozen
/// methods, at most [`MAX_PATHS`]), its length for a copy of its own. Without it, entries naming
/// a new method each held a path of up to a datagram uncounted, behind an answer counted at
/// ~200 bytes: six times the byte bound (`tests/udp/paths.rs`). While `paths` has room every
/// path is shared, so the set is looked at only once it is full.
pub(super) fn own_path_size(paths: &HashSet<Bytes>, path: &Bytes) -> usize {
    if paths.len() < MAX_PATHS || paths.contains(path) {
        0
    } else {
        path.len()
    }
}
