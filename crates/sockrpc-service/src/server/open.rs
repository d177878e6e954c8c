//! Calls opened and waiting for their request message.

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
}

/// Calls opened whose request message has not arrived yet.
///
/// A unary call's OPEN and MESSAGE nearly always arrive in the same read, back to back, so the
/// most recent OPEN is kept aside and a MESSAGE that follows it never touches the map.
#[derive(Default)]
pub(super) struct OpenCalls {
    last: Option<(u32, Opened)>,
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
}
