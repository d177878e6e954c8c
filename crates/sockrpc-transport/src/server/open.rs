//! Calls opened and waiting for their request message.
//!
//! A unary call's OPEN and MESSAGE nearly always arrive in the same read, back to back, so the
//! most recent OPEN is kept aside and a MESSAGE that follows it never touches the map. An OPEN
//! whose MESSAGE does not come is not held forever: each waits at most until its deadline or
//! the connection's frame timeout, whichever is sooner, and is then answered and forgotten.

use sockrpc_protocol::{MetadataMap, MethodPath};
use std::collections::HashMap;
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
    /// When the wait for the request message ends.
    pub(super) expires: Instant,
    /// Path and metadata no longer share the connection's read buffer.
    unshared: bool,
}

impl Opened {
    pub(super) fn new(
        path: MethodPath,
        metadata: MetadataMap,
        timeout: Option<Duration>,
        reissue: Option<(u64, u32)>,
        now: Instant,
        frame_timeout: Duration,
    ) -> Opened {
        let deadline = timeout.map(|t| now + t);
        let patience = now + frame_timeout;
        Opened {
            path,
            metadata,
            deadline,
            timeout,
            reissue,
            expires: deadline.map_or(patience, |d| d.min(patience)),
            unshared: false,
        }
    }

    /// Copies path and metadata out of the read buffer: a 50-byte OPEN must not keep a
    /// multi-megabyte buffer alive while it waits.
    fn unshare(&mut self) {
        if !self.unshared {
            self.path = self.path.unshared();
            self.metadata.unshare();
            self.unshared = true;
        }
    }
}

/// Calls opened whose request message has not arrived yet.
#[derive(Default)]
pub(super) struct OpenCalls {
    last: Option<(u32, Opened)>,
    rest: HashMap<u32, Opened>,
}

impl OpenCalls {
    pub(super) fn insert(&mut self, id: u32, opened: Opened) {
        if let Some((previous, mut earlier)) = self.last.replace((id, opened)) {
            earlier.unshare();
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

    /// Called after each read batch while calls still wait: they will be held across reads, so
    /// their path and metadata are copied out of the read buffer. Returns the soonest expiry.
    pub(super) fn settle(&mut self) -> Option<Instant> {
        if let Some((_, last)) = &mut self.last {
            last.unshare();
        }
        let last = self.last.as_ref().map(|(_, opened)| opened.expires);
        let rest = self.rest.values().map(|opened| opened.expires).min();
        match (last, rest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes and returns every call whose wait has ended by `now`.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<(u32, Opened)> {
        let mut expired = Vec::new();
        if self.last.as_ref().is_some_and(|(_, o)| o.expires <= now) {
            expired.extend(self.last.take());
        }
        let ids: Vec<u32> = self
            .rest
            .iter()
            .filter(|(_, o)| o.expires <= now)
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
