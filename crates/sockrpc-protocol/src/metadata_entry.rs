//! tonic's entry API on a [`MetadataMap`]: [`entry`](MetadataMap::entry) and
//! [`entry_bin`](MetadataMap::entry_bin), the views they give ([`Entry`], [`VacantEntry`],
//! [`OccupiedEntry`]), and the iterators an occupied entry lends its values through
//! ([`ValueIter`], [`ValueIterMut`]) and gives removed ones back through ([`ValueDrain`]).
//!
//! Why apart from `metadata.rs`: a ported tonic program counts or fills in a key in one look
//! (`*map.entry("x-count")?.or_insert(v) = ..`), and the views are a small world of their own.
//! A key given as a string is checked as the setters check it; a bad one (of the other kind,
//! `sockrpc-`, or not a key at all) is tonic's [`InvalidMetadataKey`], never a panic, so a key
//! taken from a peer's input cannot bring a server down. The map is one ordered list in which
//! a key's values may lie among others': an entry is its key's values in their order, the first
//! being the one `get` reads, and `append` adds one at the end of the list.
//!
//! The views are written out once per kind (a macro), as the map keeps text and binary values
//! apart: an entry over a text key lends `MetadataValue<Ascii>`, over a `-bin` key
//! `MetadataValue<Binary>`.

use crate::metadata::Stored;
use crate::metadata_key::{AsMetadataKey, InvalidMetadataKey, MetadataKey};
use crate::metadata_value::{Ascii, Binary, MetadataValue, ValueEncoding};
use crate::MetadataMap;
use bytes::Bytes;
use std::fmt;
use std::marker::PhantomData;

/// The map's entries.
type Entries = Vec<(String, Stored)>;

/// A key's place in a [`MetadataMap`], with values or without, as tonic's `Entry`.
pub enum Entry<'a, VE: ValueEncoding> {
    /// The key has values.
    Occupied(OccupiedEntry<'a, VE>),
    /// The key has none.
    Vacant(VacantEntry<'a, VE>),
}

/// A key of a [`MetadataMap`] with no value, as tonic's `VacantEntry`.
pub struct VacantEntry<'a, VE: ValueEncoding> {
    entries: &'a mut Entries,
    key: MetadataKey<VE>,
}

/// A key of a [`MetadataMap`] and its values, as tonic's `OccupiedEntry`.
pub struct OccupiedEntry<'a, VE: ValueEncoding> {
    entries: &'a mut Entries,
    key: MetadataKey<VE>,
    /// Where its first value lies: always a value of its key, of its kind.
    first: usize,
}

/// Values taken out of a [`MetadataMap`], in their order, as tonic's `ValueDrain`.
pub struct ValueDrain<'a, VE: ValueEncoding> {
    values: std::vec::IntoIter<MetadataValue<VE>>,
    map: PhantomData<&'a mut MetadataMap>,
}

/// An entry's values, in their order, as tonic's `ValueIter`.
pub struct ValueIter<'a, VE: ValueEncoding> {
    entries: std::slice::Iter<'a, (String, Stored)>,
    key: String,
    kind: PhantomData<fn() -> VE>,
}

/// An entry's values, lent mutably, in their order, as tonic's `ValueIterMut`.
pub struct ValueIterMut<'a, VE: ValueEncoding> {
    entries: std::slice::IterMut<'a, (String, Stored)>,
    key: String,
    kind: PhantomData<fn() -> VE>,
}

impl MetadataMap {
    /// The place of a text `key`, to look at and change in place, as tonic's `entry`
    /// (`map.entry("x-count").unwrap().or_insert(v)`). A `-bin` key, or an invalid one, is an
    /// [`InvalidMetadataKey`] ([`entry_bin`](Self::entry_bin) takes binary keys).
    pub fn entry<K: AsMetadataKey<Ascii>>(
        &mut self,
        key: K,
    ) -> Result<Entry<'_, Ascii>, InvalidMetadataKey> {
        self.entry_of(key)
    }

    /// The place of a binary `key` (one ending in `-bin`), as tonic's `entry_bin`; a text key,
    /// or an invalid one, is an [`InvalidMetadataKey`].
    pub fn entry_bin<K: AsMetadataKey<Binary>>(
        &mut self,
        key: K,
    ) -> Result<Entry<'_, Binary>, InvalidMetadataKey> {
        self.entry_of(key)
    }

    fn entry_of<VE: Kind, K: AsMetadataKey<VE>>(
        &mut self,
        key: K,
    ) -> Result<Entry<'_, VE>, InvalidMetadataKey> {
        let key = key
            .into_stored_key()
            .map_err(|_| InvalidMetadataKey::new())?;
        let key = MetadataKey::checked(key);
        let entries = self.entries_mut();
        let first = entries
            .iter()
            .position(|(k, value)| *k == key.as_str() && VE::is(value));
        Ok(match first {
            Some(first) => Entry::Occupied(OccupiedEntry {
                entries,
                key,
                first,
            }),
            None => Entry::Vacant(VacantEntry { entries, key }),
        })
    }
}

/// How the map's stored values of one kind are told and taken out (`entry_views!`).
trait Kind: ValueEncoding + Sized {
    /// Whether `stored` is a value of this kind.
    fn is(stored: &Stored) -> bool;

    /// The value, if of this kind.
    fn take(stored: Stored) -> Option<MetadataValue<Self>>;
}

/// What an entry lends where its first value lies, were it ever not there. It always is: an
/// occupied entry is made over a value of its key and kind, and moves it only with it, and the
/// map stores each value as its key's kind. Rather than panic were that ever broken, an empty
/// value of its own is lent (leaked: a few bytes each time, which that invariant makes never).
fn stray<VE: ValueEncoding + 'static>() -> &'static mut MetadataValue<VE> {
    Box::leak(Box::new(MetadataValue::wrap(Bytes::new())))
}

impl<'a, VE: ValueEncoding> Entry<'a, VE> {
    /// The entry's key, as tonic's `Entry::key`.
    pub fn key(&self) -> &MetadataKey<VE> {
        match self {
            Entry::Occupied(entry) => &entry.key,
            Entry::Vacant(entry) => &entry.key,
        }
    }
}

impl<'a, VE: ValueEncoding> VacantEntry<'a, VE> {
    /// The entry's key.
    pub fn key(&self) -> &MetadataKey<VE> {
        &self.key
    }

    /// The entry's key, taken.
    pub fn into_key(self) -> MetadataKey<VE> {
        self.key
    }
}

impl<'a, VE: ValueEncoding> OccupiedEntry<'a, VE> {
    /// The entry's key.
    pub fn key(&self) -> &MetadataKey<VE> {
        &self.key
    }

    /// Takes every value of the key out of the map, in their order (the first among them).
    fn take_all(&mut self) -> Vec<Stored> {
        let key = self.key.as_str();
        let mut taken = Vec::new();
        let kept = std::mem::take(self.entries)
            .into_iter()
            .filter_map(|(k, value)| {
                if k == key {
                    taken.push(value);
                    None
                } else {
                    Some((k, value))
                }
            })
            .collect();
        *self.entries = kept;
        taken
    }

    /// Removes every value of the key after its first.
    fn drop_later(&mut self) -> Vec<Stored> {
        let first = self.first;
        let key = self.key.as_str();
        let mut dropped = Vec::new();
        let kept = std::mem::take(self.entries)
            .into_iter()
            .enumerate()
            .filter_map(|(at, (k, value))| {
                if at > first && k == key {
                    dropped.push(value);
                    None
                } else {
                    Some((k, value))
                }
            })
            .collect();
        *self.entries = kept;
        dropped
    }
}

impl<VE: ValueEncoding> ValueDrain<'_, VE> {
    fn of(values: Vec<MetadataValue<VE>>) -> Self {
        ValueDrain {
            values: values.into_iter(),
            map: PhantomData,
        }
    }
}

impl<VE: ValueEncoding> Iterator for ValueDrain<'_, VE> {
    type Item = MetadataValue<VE>;

    fn next(&mut self) -> Option<MetadataValue<VE>> {
        self.values.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.values.size_hint()
    }
}

/// The views, written once for each kind: `$kind` is both the encoding and the `Stored` variant
/// that holds its values.
macro_rules! entry_views {
    ($kind:ident) => {
        impl Kind for $kind {
            fn is(stored: &Stored) -> bool {
                matches!(stored, Stored::$kind(_))
            }

            fn take(stored: Stored) -> Option<MetadataValue<$kind>> {
                match stored {
                    Stored::$kind(value) => Some(value),
                    _ => None,
                }
            }
        }

        impl<'a> Entry<'a, $kind> {
            /// The first value, inserting `default` if there is none, as tonic's `or_insert`.
            pub fn or_insert(self, default: MetadataValue<$kind>) -> &'a mut MetadataValue<$kind> {
                match self {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(default),
                }
            }

            /// The first value, inserting what `default` makes if there is none (it is called
            /// only then), as tonic's `or_insert_with`.
            pub fn or_insert_with<F: FnOnce() -> MetadataValue<$kind>>(
                self,
                default: F,
            ) -> &'a mut MetadataValue<$kind> {
                match self {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(default()),
                }
            }
        }

        impl<'a> VacantEntry<'a, $kind> {
            /// Adds `value` under the key, and lends it.
            pub fn insert(self, value: MetadataValue<$kind>) -> &'a mut MetadataValue<$kind> {
                self.insert_entry(value).into_mut()
            }

            /// Adds `value` under the key, and gives the entry it now is (tonic's names its
            /// kind `Ascii` whatever the key's; this one's is the key's).
            pub fn insert_entry(self, value: MetadataValue<$kind>) -> OccupiedEntry<'a, $kind> {
                let first = self.entries.len();
                self.entries
                    .push((self.key.as_str().to_owned(), Stored::$kind(value)));
                OccupiedEntry {
                    entries: self.entries,
                    key: self.key,
                    first,
                }
            }
        }

        impl<'a> OccupiedEntry<'a, $kind> {
            /// The first value.
            pub fn get(&self) -> &MetadataValue<$kind> {
                match self.entries.get(self.first) {
                    Some((_, Stored::$kind(value))) => value,
                    _ => stray(),
                }
            }

            /// The first value, to change in place.
            pub fn get_mut(&mut self) -> &mut MetadataValue<$kind> {
                match self.entries.get_mut(self.first) {
                    Some((_, Stored::$kind(value))) => value,
                    _ => stray(),
                }
            }

            /// The first value, lent for as long as the map is.
            pub fn into_mut(self) -> &'a mut MetadataValue<$kind> {
                match self.entries.get_mut(self.first) {
                    Some((_, Stored::$kind(value))) => value,
                    _ => stray(),
                }
            }

            /// Sets the key's one value to `value`, removing the others, and returns the first
            /// it had (`insert_mult` returns them all).
            pub fn insert(&mut self, value: MetadataValue<$kind>) -> MetadataValue<$kind> {
                self.drop_later();
                std::mem::replace(self.get_mut(), value)
            }

            /// Sets the key's one value to `value`, and returns all it had, in their order.
            pub fn insert_mult(&mut self, value: MetadataValue<$kind>) -> ValueDrain<'_, $kind> {
                let later = self.drop_later();
                let first = std::mem::replace(self.get_mut(), value);
                let values = std::iter::once(first)
                    .chain(later.into_iter().filter_map(<$kind as Kind>::take))
                    .collect();
                ValueDrain::of(values)
            }

            /// Adds `value` after the key's others (at the end of the map).
            pub fn append(&mut self, value: MetadataValue<$kind>) {
                let key = self.key.as_str().to_owned();
                self.entries.push((key, Stored::$kind(value)));
            }

            /// Removes the key and all its values, and returns the first.
            pub fn remove(self) -> MetadataValue<$kind> {
                self.remove_entry().1
            }

            /// Removes the key and all its values, and returns the key and the first value.
            pub fn remove_entry(mut self) -> (MetadataKey<$kind>, MetadataValue<$kind>) {
                let first = self
                    .take_all()
                    .into_iter()
                    .find_map(<$kind as Kind>::take)
                    .unwrap_or_else(|| MetadataValue::wrap(Bytes::new()));
                (self.key, first)
            }

            /// Removes the key and all its values, and returns the key and the values.
            pub fn remove_entry_mult(mut self) -> (MetadataKey<$kind>, ValueDrain<'a, $kind>) {
                let values = self
                    .take_all()
                    .into_iter()
                    .filter_map(<$kind as Kind>::take)
                    .collect();
                (self.key, ValueDrain::of(values))
            }

            /// The key's values, in their order.
            pub fn iter(&self) -> ValueIter<'_, $kind> {
                ValueIter {
                    entries: self.entries.iter(),
                    key: self.key.as_str().to_owned(),
                    kind: PhantomData,
                }
            }

            /// The key's values, in their order, to change in place.
            pub fn iter_mut(&mut self) -> ValueIterMut<'_, $kind> {
                ValueIterMut {
                    entries: self.entries.iter_mut(),
                    key: self.key.as_str().to_owned(),
                    kind: PhantomData,
                }
            }
        }

        impl<'a> Iterator for ValueIter<'a, $kind> {
            type Item = &'a MetadataValue<$kind>;

            fn next(&mut self) -> Option<Self::Item> {
                let key = self.key.as_str();
                self.entries.find_map(|(k, value)| match value {
                    Stored::$kind(value) if k == key => Some(value),
                    _ => None,
                })
            }
        }

        impl DoubleEndedIterator for ValueIter<'_, $kind> {
            fn next_back(&mut self) -> Option<Self::Item> {
                let key = self.key.as_str();
                self.entries
                    .by_ref()
                    .rev()
                    .find_map(|(k, value)| match value {
                        Stored::$kind(value) if k == key => Some(value),
                        _ => None,
                    })
            }
        }

        impl<'a> Iterator for ValueIterMut<'a, $kind> {
            type Item = &'a mut MetadataValue<$kind>;

            fn next(&mut self) -> Option<Self::Item> {
                let key = self.key.as_str();
                self.entries.find_map(|(k, value)| match value {
                    Stored::$kind(value) if k == key => Some(value),
                    _ => None,
                })
            }
        }

        impl DoubleEndedIterator for ValueIterMut<'_, $kind> {
            fn next_back(&mut self) -> Option<Self::Item> {
                let key = self.key.as_str();
                self.entries
                    .by_ref()
                    .rev()
                    .find_map(|(k, value)| match value {
                        Stored::$kind(value) if k == key => Some(value),
                        _ => None,
                    })
            }
        }

        impl<'a> IntoIterator for OccupiedEntry<'a, $kind> {
            type Item = &'a mut MetadataValue<$kind>;
            type IntoIter = ValueIterMut<'a, $kind>;

            fn into_iter(self) -> ValueIterMut<'a, $kind> {
                ValueIterMut {
                    entries: self.entries.iter_mut(),
                    key: self.key.as_str().to_owned(),
                    kind: PhantomData,
                }
            }
        }

        impl<'a, 'b> IntoIterator for &'b OccupiedEntry<'a, $kind> {
            type Item = &'b MetadataValue<$kind>;
            type IntoIter = ValueIter<'b, $kind>;

            fn into_iter(self) -> ValueIter<'b, $kind> {
                self.iter()
            }
        }

        impl<'a, 'b> IntoIterator for &'b mut OccupiedEntry<'a, $kind> {
            type Item = &'b mut MetadataValue<$kind>;
            type IntoIter = ValueIterMut<'b, $kind>;

            fn into_iter(self) -> ValueIterMut<'b, $kind> {
                self.iter_mut()
            }
        }
    };
}

entry_views!(Ascii);
entry_views!(Binary);

impl<VE: ValueEncoding> fmt::Debug for Entry<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Occupied(entry) => f.debug_tuple("Occupied").field(entry).finish(),
            Entry::Vacant(entry) => f.debug_tuple("Vacant").field(entry).finish(),
        }
    }
}

impl<VE: ValueEncoding> fmt::Debug for VacantEntry<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VacantEntry")
            .field("key", &self.key)
            .finish()
    }
}

impl<VE: ValueEncoding> fmt::Debug for OccupiedEntry<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OccupiedEntry")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<VE: ValueEncoding> fmt::Debug for ValueDrain<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values.as_slice()).finish()
    }
}

impl<VE: ValueEncoding> fmt::Debug for ValueIter<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueIter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<VE: ValueEncoding> fmt::Debug for ValueIterMut<'_, VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueIterMut")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "metadata_entry_tests.rs"]
mod tests;
