//! `Totals`: calls answered per endpoint key since a balanced channel was made, kept after an
//! endpoint leaves ([`Balanced::answered`](super::Balanced::answered)), with a bound on what
//! departed keys keep.
//!
//! Why a bound: discovery can churn without end — pods replaced under fresh addresses, each a
//! key of its own — and a count kept for every key ever seen grows with the process's age, not
//! with its endpoints. A departed key's count is kept while fewer than twice
//! [`DEPARTED_KEPT`] are; past that, the keys that left longest ago are forgotten, down to
//! `DEPARTED_KEPT` (one scan per `DEPARTED_KEPT` arrivals, not one per arrival). Each key is
//! stamped when it arrives and when discovery removes it, so "longest ago" is by departure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How many departed endpoint keys a balanced channel keeps counts for at least: between this
/// and twice this, the most recent ones.
pub const DEPARTED_KEPT: usize = 1024;

/// One key's count and when it last arrived or left.
#[derive(Debug)]
struct Entry {
    answered: Arc<AtomicU64>,
    /// The arrival or departure it was last stamped at: departed keys are forgotten in the
    /// order they left.
    seen: u64,
}

impl Entry {
    /// No member holds the count any more: its endpoint left.
    fn departed(&self) -> bool {
        Arc::strong_count(&self.answered) == 1
    }
}

/// Counts per key; see the module docs.
#[derive(Debug, Default)]
pub(super) struct Totals {
    keys: BTreeMap<String, Entry>,
    /// Arrivals and departures so far: the stamps.
    events: u64,
}

impl Totals {
    /// The count for an endpoint arriving under `key` (its earlier count, if it came before),
    /// while `live` endpoints are current: what its member adds to.
    pub(super) fn arrive(&mut self, key: String, live: usize) -> Arc<AtomicU64> {
        self.events += 1;
        let entry = self.keys.entry(key).or_insert_with(|| Entry {
            answered: Arc::default(),
            seen: 0,
        });
        entry.seen = self.events;
        let answered = Arc::clone(&entry.answered);
        if self.keys.len() > live + 1 + 2 * DEPARTED_KEPT {
            self.forget_oldest();
        }
        answered
    }

    /// Discovery removed `key`: its place in the order departed keys are forgotten in is now.
    pub(super) fn depart(&mut self, key: &str) {
        self.events += 1;
        if let Some(entry) = self.keys.get_mut(key) {
            entry.seen = self.events;
        }
    }

    /// Forgets departed keys, those that left longest ago first, down to [`DEPARTED_KEPT`].
    fn forget_oldest(&mut self) {
        let mut departed: Vec<(u64, String)> = self
            .keys
            .iter()
            .filter(|(_, entry)| entry.departed())
            .map(|(key, entry)| (entry.seen, key.clone()))
            .collect();
        let Some(excess) = departed.len().checked_sub(DEPARTED_KEPT) else {
            return;
        };
        departed.sort_unstable();
        for (_, key) in departed.into_iter().take(excess) {
            self.keys.remove(&key);
        }
    }

    /// Each key's count now.
    pub(super) fn snapshot(&self) -> BTreeMap<String, u64> {
        self.keys
            .iter()
            .map(|(key, entry)| (key.clone(), entry.answered.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departed_keys_are_forgotten_oldest_first_and_current_ones_never() {
        let mut totals = Totals::default();
        let current = totals.arrive("current".into(), 0);
        current.fetch_add(7, Ordering::Relaxed);
        for i in 0..3 * DEPARTED_KEPT {
            // Arrives and leaves at once: its member drops the count.
            drop(totals.arrive(format!("gone-{i:05}"), 1));
        }
        let kept = totals.snapshot();
        assert!(kept.len() <= 2 * DEPARTED_KEPT + 2, "{}", kept.len());
        assert_eq!(kept.get("current"), Some(&7));
        assert!(!kept.contains_key("gone-00000"), "the oldest went first");
        let last = format!("gone-{:05}", 3 * DEPARTED_KEPT - 1);
        assert!(kept.contains_key(&last), "the latest stays");
    }

    #[test]
    fn a_long_lived_key_that_just_left_outlives_keys_that_left_before_it() {
        let mut totals = Totals::default();
        let stable = totals.arrive("stable".into(), 0);
        stable.fetch_add(1_000_000, Ordering::Relaxed);
        // Pods come and go while it serves, up to the last arrival before a scan.
        let mut pods = 0;
        while totals.keys.len() < 2 * DEPARTED_KEPT + 2 {
            let key = format!("pod-{pods:05}");
            drop(totals.arrive(key.clone(), 1));
            totals.depart(&key);
            pods += 1;
        }
        // It leaves; the next arrival scans.
        totals.depart("stable");
        drop(stable);
        drop(totals.arrive("next".into(), 0));
        let kept = totals.snapshot();
        assert_eq!(kept.get("stable"), Some(&1_000_000), "{} kept", kept.len());
        assert!(
            !kept.contains_key("pod-00000"),
            "a pod that left before it went"
        );
    }

    #[test]
    fn a_key_that_comes_back_keeps_its_count() {
        let mut totals = Totals::default();
        totals.arrive("a".into(), 0).fetch_add(2, Ordering::Relaxed);
        totals.arrive("a".into(), 0).fetch_add(3, Ordering::Relaxed);
        assert_eq!(totals.snapshot().get("a"), Some(&5));
    }
}
