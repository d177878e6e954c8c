//! `CallTable`: a connection's calls in flight, found by call id without hashing.
//!
//! The client picks its call ids, in increasing order (the server refuses one that goes back).
//! So instead of hashing an id, the table keeps calls in a ring indexed by `id % capacity`, and
//! when a new id's position is still taken by an older call (a long stream, say), the client
//! skips that id and takes the next one: ids stay increasing, they just need not be dense.
//! Every lookup is then one index and one compare, and a call's slot is written once, in place.
//!
//! ```text
//!   ids 17 18 19 20 (capacity 8)      ring: [ .  17 18 19 20  .  .  . ]   positions 1..4
//!   id 25 would land on 1 (17's):     skipped, 26 goes to 2 if 18 has ended
//! ```
//!
//! The ring doubles when half of it is in use, so a skip is rare and a search for a free
//! position is short; it never shrinks (a `HashMap` does not either), so it holds what the
//! connection's busiest moment needed: a couple of slots per call that was in flight at once.

use super::Slot;

/// The smallest ring allocated (on the first call).
const MIN_CAPACITY: usize = 8;

/// Calls in flight by id. See the module docs.
#[derive(Default)]
pub(super) struct CallTable {
    /// `None` where no call is; a call at `ring[id & mask]` keeps its id in the pair.
    ring: Vec<Option<(u32, Slot)>>,
    len: usize,
}

impl CallTable {
    fn mask(&self) -> usize {
        self.ring.len().wrapping_sub(1)
    }

    fn position(&self, id: u32) -> usize {
        // u32 → usize never truncates on the targets tokio supports (32 and 64 bits).
        id as usize & self.mask()
    }

    /// Calls in the table.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Whether no call is in flight.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first id at or after `next` whose position is free, growing the ring first when it
    /// is half full; `None` once the ids would pass `u32::MAX`.
    pub(super) fn vacant_id(&mut self, next: u32) -> Option<u32> {
        if (self.len + 1) * 2 > self.ring.len() {
            self.grow();
        }
        let mut id = next;
        // At most half the ring is taken, so a free position is at most `len` steps away.
        loop {
            if self.ring[self.position(id)].is_none() {
                return Some(id);
            }
            id = id.checked_add(1)?;
        }
    }

    /// Puts an empty slot at `id`, which [`vacant_id`](Self::vacant_id) just returned, and
    /// hands it back to be filled in place (a slot is a couple of hundred bytes: built
    /// elsewhere and moved in, it would be copied more than once).
    pub(super) fn insert(&mut self, id: u32) -> &mut Slot {
        let position = self.position(id);
        debug_assert!(self.ring[position].is_none(), "call id {id} is not vacant");
        self.len += 1;
        &mut self.ring[position].insert((id, Slot::default())).1
    }

    /// The call `id`, if it is in flight.
    pub(super) fn get(&self, id: u32) -> Option<&Slot> {
        match self.ring.get(self.position(id))? {
            Some((at, slot)) if *at == id => Some(slot),
            _ => None,
        }
    }

    /// The call `id`, to change.
    pub(super) fn get_mut(&mut self, id: u32) -> Option<&mut Slot> {
        let position = self.position(id);
        match self.ring.get_mut(position)? {
            Some((at, slot)) if *at == id => Some(slot),
            _ => None,
        }
    }

    /// Takes the call `id` out.
    pub(super) fn remove(&mut self, id: u32) -> Option<Slot> {
        let position = self.position(id);
        let entry = self.ring.get_mut(position)?;
        if entry.as_ref().is_some_and(|(at, _)| *at == id) {
            self.len -= 1;
            return entry.take().map(|(_, slot)| slot);
        }
        None
    }

    /// Drops the call `id` where it lies, if it is there.
    pub(super) fn discard(&mut self, id: u32) -> bool {
        let position = self.position(id);
        match self.ring.get_mut(position) {
            Some(entry) if entry.as_ref().is_some_and(|(at, _)| *at == id) => {
                *entry = None;
                self.len -= 1;
                true
            }
            _ => false,
        }
    }

    /// Every call, with its id.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Slot)> {
        self.ring
            .iter_mut()
            .filter_map(|entry| entry.as_mut().map(|(id, slot)| (*id, slot)))
    }

    /// Every call's id.
    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ring
            .iter()
            .filter_map(|entry| entry.as_ref().map(|(id, _)| *id))
    }

    /// The ids of the calls in `after + 1 ..= up_to`: each id looked up when there are fewer
    /// of them than positions in the ring, else the ring walked; never more steps than
    /// [`steps_between`](Self::steps_between) says.
    pub(super) fn ids_between(&self, after: u32, up_to: u32) -> Vec<u32> {
        if after >= up_to {
            return Vec::new();
        }
        if ((up_to - after) as usize) <= self.ring.len() {
            (after + 1..=up_to)
                .filter(|id| self.get(*id).is_some())
                .collect()
        } else {
            self.ids()
                .filter(|id| (after + 1..=up_to).contains(id))
                .collect()
        }
    }

    /// What [`ids_between`](Self::ids_between) costs: the ids it looks up or the positions it
    /// walks.
    #[cfg(test)]
    pub(super) fn steps_between(&self, after: u32, up_to: u32) -> usize {
        (up_to.saturating_sub(after) as usize).min(self.ring.len())
    }

    /// Doubles the ring and puts every call at its new position (distinct, since two ids that
    /// differ modulo the old size differ modulo the new one too, and the old ring had no two
    /// calls at one position).
    fn grow(&mut self) {
        let capacity = (self.ring.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::take(&mut self.ring);
        self.ring.resize_with(capacity, || None);
        let mask = capacity - 1;
        for (id, slot) in old.into_iter().flatten() {
            self.ring[id as usize & mask] = Some((id, slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(table: &mut CallTable, next: &mut u32) -> u32 {
        let id = table.vacant_id(*next).expect("ids left");
        table.insert(id);
        *next = id.wrapping_add(1);
        id
    }

    #[test]
    fn ids_increase_and_are_found() {
        let mut table = CallTable::default();
        let mut next = 1;
        let ids: Vec<u32> = (0..100).map(|_| take(&mut table, &mut next)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(table.len(), 100);
        for id in &ids {
            assert!(table.get(*id).is_some(), "{id} is in flight");
        }
        assert!(table.get(1000).is_none());
        let mut seen: Vec<u32> = table.ids().collect();
        seen.sort_unstable();
        assert_eq!(seen, ids);
    }

    #[test]
    fn a_long_call_is_skipped_not_overwritten() {
        let mut table = CallTable::default();
        let mut next = 1;
        let long = take(&mut table, &mut next);
        table.get_mut(long).expect("in flight").compressed = true;
        // Many short calls come and go around the long one.
        for _ in 0..10_000 {
            let id = take(&mut table, &mut next);
            assert_ne!(id, long);
            assert!(table.remove(id).is_some());
        }
        assert_eq!(table.len(), 1);
        assert!(table.get(long).expect("still there").compressed);
        // One long call never makes the ring grow past its first size.
        assert_eq!(table.ring.len(), MIN_CAPACITY);
        assert!(next > 10_001, "ids were skipped: {next}");
    }

    #[test]
    fn remove_only_the_named_call() {
        let mut table = CallTable::default();
        let mut next = 3;
        let id = take(&mut table, &mut next);
        let other = id + table.ring.len() as u32;
        assert!(table.remove(other).is_none(), "same position, other id");
        assert!(table.get_mut(other).is_none());
        assert!(!table.discard(other));
        assert!(table.remove(id).is_some());
        assert!(table.remove(id).is_none());
        assert!(!table.discard(id));
        assert!(table.is_empty());
        let id = take(&mut table, &mut next);
        assert!(table.discard(id));
        assert!(table.get(id).is_none());
        assert!(table.is_empty());
    }

    #[test]
    fn grows_and_keeps_every_call() {
        let mut table = CallTable::default();
        let mut next = u32::MAX - 5000;
        let ids: Vec<u32> = (0..3000).map(|_| take(&mut table, &mut next)).collect();
        assert!(table.ring.len() >= 6000);
        for id in &ids {
            assert!(table.get(*id).is_some());
        }
        for id in ids.iter().step_by(2) {
            assert!(table.remove(*id).is_some());
        }
        assert_eq!(table.len(), 1500);
        assert_eq!(table.iter_mut().count(), 1500);
    }

    #[test]
    fn ids_between_by_lookup_or_by_walk_find_the_same_calls() {
        let mut table = CallTable::default();
        let mut next = 100;
        let ids: Vec<u32> = (0..50).map(|_| take(&mut table, &mut next)).collect();
        for (after, up_to) in [
            (0, u32::MAX),
            (120, 130),
            (99, 149),
            (149, 10),
            (u32::MAX, 0),
        ] {
            let mut found = table.ids_between(after, up_to);
            found.sort_unstable();
            let want: Vec<u32> = ids
                .iter()
                .copied()
                .filter(|id| *id > after && *id <= up_to)
                .collect();
            assert_eq!(found, want, "({after}, {up_to}]");
            let steps = table.steps_between(after, up_to);
            assert!(steps <= table.ring.len(), "{steps}");
        }
    }

    #[test]
    fn ids_run_out_at_the_top() {
        let mut table = CallTable::default();
        let mut next = u32::MAX;
        assert_eq!(take(&mut table, &mut next), u32::MAX);
        // The position of u32::MAX is taken; nothing above it.
        assert_eq!(table.vacant_id(u32::MAX), None);
    }
}
