//! `Extensions`: typed values that travel with a request inside one process, never on the wire.
//!
//! Middleware uses them to hand a handler what it learned about a call — the principal an
//! authentication interceptor accepted, a trace span, a tenant — without encoding it into
//! metadata (which a peer could forge) and without a global. One value per type, as in `http`'s
//! extensions.
//!
//! Why a list and not a hash map: a request carries a handful of extensions at most, so a
//! linear scan over a few `TypeId`s beats hashing. An empty map is a null pointer, allocating
//! nothing — most calls carry none, and the hot path must not pay for the feature.

use std::any::{Any, TypeId};
use std::fmt;

/// A value that can live in [`Extensions`]: any `Clone + Send + Sync + 'static` type.
trait Extension: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn Extension>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + Sync + 'static> Extension for T {
    fn clone_box(&self) -> Box<dyn Extension> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A map from type to one value of that type. Empty, it costs no allocation.
#[derive(Default)]
pub struct Extensions {
    /// `None` until the first value: most requests and responses carry none. Boxed, an empty
    /// map is one null pointer, 8 bytes of every request and response moved through the layers
    /// (an `Option<Vec>` was 24), and dropping it is a compare in place, where an `Option<Vec>`
    /// was a call into its drop glue (a unary call drops three: `docs/PERFORMANCE-AMD.md`).
    entries: Option<Box<Entries>>,
}

/// One value and its type.
type Entry = (TypeId, Box<dyn Extension>);

/// The values of a map that holds any: the first in the box itself, so that a map of one value
/// takes one allocation besides the value's, as the vector before it did.
struct Entries {
    first: Entry,
    rest: Vec<Entry>,
}

impl Extensions {
    /// An empty map; does not allocate.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .flat_map(|entries| std::iter::once(&entries.first).chain(&entries.rest))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.iter_mut().flat_map(|entries| {
            let Entries { first, rest } = &mut **entries;
            std::iter::once(first).chain(rest)
        })
    }

    /// Adds a value of a type not stored yet.
    fn push(&mut self, entry: Entry) {
        match &mut self.entries {
            Some(entries) => entries.rest.push(entry),
            None => {
                self.entries = Some(Box::new(Entries {
                    first: entry,
                    rest: Vec::new(),
                }))
            }
        }
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        for (key, slot) in self.iter_mut() {
            if *key == id {
                let old = std::mem::replace(slot, Box::new(value));
                return old.into_any().downcast::<T>().ok().map(|old| *old);
            }
        }
        self.push((id, Box::new(value)));
        None
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.as_ref().as_any().downcast_ref::<T>())
    }

    /// The value of type `T`, to change.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.iter_mut()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.as_mut().as_any_mut().downcast_mut::<T>())
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let entries = self.entries.as_mut()?;
        let value = if entries.first.0 == id {
            match entries.rest.pop() {
                Some(last) => std::mem::replace(&mut entries.first, last).1,
                // The only value: the map is empty again.
                None => self.entries.take()?.first.1,
            }
        } else {
            let at = entries.rest.iter().position(|(key, _)| *key == id)?;
            entries.rest.swap_remove(at).1
        };
        value.into_any().downcast::<T>().ok().map(|value| *value)
    }

    /// Whether a value of type `T` is stored.
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.get::<T>().is_some()
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.entries
            .as_ref()
            .map_or(0, |entries| 1 + entries.rest.len())
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_none()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.entries = None;
    }

    /// Moves every value of `other` in, replacing values of the same types.
    pub fn extend(&mut self, other: Extensions) {
        let Some(entries) = other.entries else {
            return;
        };
        let Entries { first, rest } = *entries;
        for (id, value) in std::iter::once(first).chain(rest) {
            if let Some((_, slot)) = self.iter_mut().find(|(key, _)| *key == id) {
                *slot = value;
                continue;
            }
            self.push((id, value));
        }
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Extensions {
        let clone = |(id, value): &Entry| (*id, value.as_ref().clone_box());
        Extensions {
            entries: self.entries.as_ref().map(|entries| {
                Box::new(Entries {
                    first: clone(&entries.first),
                    rest: entries.rest.iter().map(clone).collect(),
                })
            }),
        }
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct Principal(&'static str);

    #[test]
    fn one_value_per_type() {
        let mut ext = Extensions::new();
        assert!(ext.is_empty());
        assert_eq!(ext.insert(Principal("alice")), None);
        assert_eq!(ext.insert(7u32), None);
        assert_eq!(ext.insert(Principal("bob")), Some(Principal("alice")));
        assert_eq!(ext.get::<Principal>(), Some(&Principal("bob")));
        *ext.get_mut::<u32>().expect("stored") += 1;
        let copy = ext.clone();
        assert_eq!(ext.remove::<u32>(), Some(8));
        assert_eq!(ext.get::<u32>(), None);
        assert_eq!(copy.get::<u32>(), Some(&8));
        let mut other = Extensions::new();
        other.insert(Principal("carol"));
        other.insert("x");
        ext.extend(other);
        assert_eq!(ext.len(), 2);
        assert_eq!(ext.get::<Principal>(), Some(&Principal("carol")));
    }

    #[test]
    fn empty_costs_nothing() {
        let ext = Extensions::new();
        assert!(ext.entries.is_none());
        assert!(ext.clone().entries.is_none());
        // Emptied, it holds nothing again.
        let mut ext = Extensions::new();
        ext.insert(1u8);
        ext.clear();
        assert!(ext.entries.is_none() && ext.is_empty());
    }

    #[test]
    fn removing_the_first_keeps_the_rest() {
        let mut ext = Extensions::new();
        ext.insert(1u8);
        ext.insert(2u16);
        ext.insert(3u32);
        assert_eq!(ext.remove::<u8>(), Some(1));
        assert_eq!(
            (ext.len(), ext.get::<u16>(), ext.get::<u32>()),
            (2, Some(&2), Some(&3))
        );
        assert_eq!(ext.remove::<u8>(), None);
        assert_eq!(ext.remove::<u16>(), Some(2));
        assert_eq!(ext.remove::<u32>(), Some(3));
        // The last value gone, the map is empty again: no allocation kept.
        assert!(ext.entries.is_none() && ext.is_empty());
    }
}
