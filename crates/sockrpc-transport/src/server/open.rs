//! Calls opened and waiting for their request message.
//!
//! A unary call's OPEN and MESSAGE nearly always arrive in the same read, back to back, so the
//! most recent OPEN is kept aside and a MESSAGE that follows it never touches the map. An OPEN
//! whose MESSAGE does not come is not held forever: each waits at most until its deadline or
//! the connection's frame timeout, whichever is sooner, and is then answered and forgotten.

use foldhash::HashMap;
use sockrpc_protocol::{EncodingFields, MetadataMap, MethodPath};
use std::time::Duration;
use tokio::time::Instant;

/// A call whose OPEN arrived and whose request message has not.
pub(super) struct Opened {
    pub(super) path: MethodPath,
    pub(super) metadata: MetadataMap,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
    /// The UDP call this re-issues (the OPEN's `FLAG_REISSUE` field).
    pub(super) reissue: Option<(u64, u32)>,
    /// The OPEN's encoding fields (`FLAG_ENCODING`), handed up with the request.
    pub(super) encoding: Option<EncodingFields>,
    /// The request MESSAGE carried `FLAG_COMPRESSED` (set when it arrives).
    pub(super) compressed: bool,
    /// The OPEN's `FLAG_FOLD_END`: an OK answer may fold its END into its MESSAGE.
    pub(super) fold_end: bool,
    /// When the wait for the request message ends; set once the call is still waiting at the
    /// end of a read batch (most never are: their MESSAGE arrives in the same read).
    expires: Option<Instant>,
    /// Path and metadata no longer share the connection's read buffer.
    unshared: bool,
}

impl Opened {
    pub(super) fn new(
        path: MethodPath,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        reissue: Option<(u64, u32)>,
    ) -> Opened {
        Opened {
            path,
            metadata,
            deadline: timeout.map(|t| Instant::now() + t),
            timeout,
            reissue,
            encoding: None,
            compressed: false,
            fold_end: false,
            expires: None,
            unshared: false,
        }
    }

    /// The call will wait across reads: copies path and metadata out of the read buffer (a
    /// 50-byte OPEN must not keep a multi-megabyte buffer alive while it waits), and fixes when
    /// the wait ends. Returns that instant.
    fn settle(&mut self, now: Instant, frame_timeout: Duration) -> Instant {
        if !self.unshared {
            self.path = self.path.unshared();
            self.metadata.unshare();
            self.unshared = true;
        }
        *self.expires.get_or_insert_with(|| {
            let patience = now + frame_timeout;
            self.deadline.map_or(patience, |d| d.min(patience))
        })
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }
}

/// Calls opened whose request message has not arrived yet.
#[derive(Default)]
pub(super) struct OpenCalls {
    last: Option<(u32, Opened)>,
    /// Keyed by the peer's call ids: a seeded hash, so a client cannot choose colliding ids.
    rest: HashMap<u32, Opened>,
}

impl OpenCalls {
    pub(super) fn insert(&mut self, id: u32, opened: Opened) {
        if let Some((previous, earlier)) = self.last.replace((id, opened)) {
            self.rest.insert(previous, earlier);
        }
    }

    pub(super) fn remove(&mut self, id: &u32) -> Option<Opened> {
        match &self.last {
            Some((last, _)) if last == id => self.last.take().map(|(_, opened)| opened),
            _ => self.rest.remove(id),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.rest.len() + usize::from(self.last.is_some())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.last.is_none() && self.rest.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.last = None;
        self.rest.clear();
    }

    /// Called after each read batch while calls still wait: they will be held across reads
    /// (see [`Opened::settle`]). Returns the soonest expiry.
    pub(super) fn settle(&mut self, now: Instant, frame_timeout: Duration) -> Option<Instant> {
        let last = self.last.iter_mut().map(|(_, opened)| opened);
        last.chain(self.rest.values_mut())
            .map(|opened| opened.settle(now, frame_timeout))
            .min()
    }

    /// Removes and returns every call whose wait has ended by `now`.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<(u32, Opened)> {
        let mut expired = Vec::new();
        if self.last.as_ref().is_some_and(|(_, o)| o.expired(now)) {
            expired.extend(self.last.take());
        }
        let ids: Vec<u32> = self
            .rest
            .iter()
            .filter(|(_, o)| o.expired(now))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(opened) = self.rest.remove(&id) {
                expired.push((id, opened));
            }
        }
        expired
    }
}
