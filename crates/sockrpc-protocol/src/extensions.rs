//! `Extensions`: typed values that travel with a request inside one process, never on the wire.
//!
//! Middleware uses them to hand a handler what it learned about a call — the principal an
//! authentication interceptor accepted, a trace span, a tenant — without encoding it into
//! metadata (which a peer could forge) and without a global. One value per type, as in `http`'s
//! extensions.
//!
//! Why a vector and not a hash map: a request carries a handful of extensions at most, so a
//! linear scan over a few `TypeId`s beats hashing, and an empty vector does not allocate — most
//! calls carry none, and the hot path must not pay for the feature.

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
    /// `None` until the first value: most requests and responses carry none, and dropping
    /// `None` is one comparison where an empty `Vec` is a call into its drop glue.
    entries: Option<Vec<(TypeId, Box<dyn Extension>)>>,
}

impl Extensions {
    /// An empty map; does not allocate.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    fn entries(&self) -> &[(TypeId, Box<dyn Extension>)] {
        self.entries.as_deref().unwrap_or(&[])
    }

    fn entries_mut(&mut self) -> &mut Vec<(TypeId, Box<dyn Extension>)> {
        self.entries.get_or_insert_with(Vec::new)
    }

    /// Stores `value`, returning the value of the same type it replaces.
    pub fn insert<T: Clone + Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        let id = TypeId::of::<T>();
        for (key, slot) in self.entries.iter_mut().flatten() {
            if *key == id {
                let old = std::mem::replace(slot, Box::new(value));
                return old.into_any().downcast::<T>().ok().map(|old| *old);
            }
        }
        self.entries_mut().push((id, Box::new(value)));
        None
    }

    /// The value of type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries()
            .iter()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.as_ref().as_any().downcast_ref::<T>())
    }

    /// The value of type `T`, to change.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter_mut()
            .flatten()
            .find(|(key, _)| *key == id)
            .and_then(|(_, value)| value.as_mut().as_any_mut().downcast_mut::<T>())
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let entries = self.entries.as_mut()?;
        let at = entries.iter().position(|(key, _)| *key == id)?;
        let (_, value) = entries.swap_remove(at);
        value.into_any().downcast::<T>().ok().map(|value| *value)
    }

    /// Whether a value of type `T` is stored.
    pub fn contains<T: Send + Sync + 'static>(&self) -> bool {
        self.get::<T>().is_some()
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.entries = None;
    }

    /// Moves every value of `other` in, replacing values of the same types.
    pub fn extend(&mut self, other: Extensions) {
        for (id, value) in other.entries.into_iter().flatten() {
            match self
                .entries
                .iter_mut()
                .flatten()
                .find(|(key, _)| *key == id)
            {
                Some((_, slot)) => *slot = value,
                None => self.entries_mut().push((id, value)),
            }
        }
    }
}

impl Clone for Extensions {
    fn clone(&self) -> Extensions {
        Extensions {
            entries: self.entries.as_ref().map(|entries| {
                entries
                    .iter()
                    .map(|(id, value)| (*id, value.as_ref().clone_box()))
                    .collect()
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
}
