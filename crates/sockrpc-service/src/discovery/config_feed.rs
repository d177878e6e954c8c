//! [`ServiceConfigFeed`]: a service config that a discovery source (DNS TXT records, see
//! `docs/DNS.md`) hands to the layers of the channel it feeds, changing while they run.
//!
//! Why a feed of its own: discovery lives in this crate, but the service config is read and
//! applied by `sockrpc-middleware`'s layers. The feed carries the config's JSON text between
//! them, and a generation number that the layers compare on each call: one atomic load, no
//! lock, while nothing changes (the mutex is taken once per change, by whoever sees it first).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A service config published by discovery (JSON text; `None`: the source has none, the user's
/// default applies) and read by the channel's layers. Clones share the same config.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfigFeed {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Raised after each change of `config`.
    generation: AtomicU64,
    config: Mutex<Option<Arc<str>>>,
}

impl ServiceConfigFeed {
    /// An empty feed: no config published (generation 0).
    pub fn new() -> ServiceConfigFeed {
        ServiceConfigFeed::default()
    }

    /// Publishes `config` (the JSON of a service config; `None`: there is none). Publishing the
    /// config already there changes nothing; otherwise the generation goes up, so the layers
    /// reading the feed take the new one for their next calls.
    pub fn publish(&self, config: Option<&str>) {
        let mut current = self.inner.config.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() == config {
            return;
        }
        *current = config.map(Arc::from);
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// How many times the config changed: a reader that saw this number has nothing new to
    /// read until it moves (one atomic load).
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The config published last, and the generation it belongs to.
    pub fn current(&self) -> (u64, Option<Arc<str>>) {
        let current = self.inner.config.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock that `publish` raises it under: the pair matches.
        (self.generation(), current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_raises_the_generation_and_a_repeat_does_not() {
        let feed = ServiceConfigFeed::new();
        assert_eq!(feed.current(), (0, None));
        feed.publish(Some("{}"));
        assert_eq!(feed.generation(), 1);
        feed.publish(Some("{}"));
        assert_eq!(feed.generation(), 1);
        feed.publish(None);
        let (generation, config) = feed.clone().current();
        assert_eq!((generation, config), (2, None));
    }
}
