//! tonic's ways into a [`MetadataMap`] that lend its stored values out as tonic's typed
//! values: `get_mut` / `get_bin_mut`, `values` / `values_mut`, `iter_mut`, with tonic's
//! `ValueRef`, `ValueRefMut` and `KeyAndMutValueRef`, and that give them back as they are
//! removed: `remove` / `remove_bin`.
//!
//! Apart from `metadata.rs` (`get`, `get_bin` and the setters): these are the ones a ported
//! tonic program reaches for to mark a value sensitive in place
//! (`map.get_mut("authorization")?.set_sensitive(true)`) or to walk the values by kind. A
//! value lent out mutably can only be replaced by another checked value of its kind, so the
//! map's rules hold; the views' keys are `&str` (tonic's are `&MetadataKey`).

use crate::metadata::{is_bin_key, Stored};
use crate::metadata_key::AsMetadataKey;
use crate::metadata_value::{
    Ascii, AsciiMetadataValue, Binary, BinaryMetadataValue, ValueEncoding,
};
use crate::MetadataMap;

/// A value of the map, by kind, as tonic's `ValueRef`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// A text value.
    Ascii(&'a AsciiMetadataValue),
    /// A binary value (under a `-bin` key).
    Binary(&'a BinaryMetadataValue),
}

/// A value of the map, lent mutably, by kind, as tonic's `ValueRefMut`.
#[derive(Debug)]
pub enum ValueRefMut<'a> {
    /// A text value.
    Ascii(&'a mut AsciiMetadataValue),
    /// A binary value (under a `-bin` key).
    Binary(&'a mut BinaryMetadataValue),
}

/// A key and its value, lent mutably, by kind, as tonic's `KeyAndMutValueRef`.
#[derive(Debug)]
pub enum KeyAndMutValueRef<'a> {
    /// A text key and its value.
    Ascii(&'a str, &'a mut AsciiMetadataValue),
    /// A binary key (ending in `-bin`) and its value.
    Binary(&'a str, &'a mut BinaryMetadataValue),
}

impl MetadataMap {
    /// The first value of a text `key`, to change in place, as tonic's `get_mut` (`None`
    /// for a `-bin` key: [`get_bin_mut`](Self::get_bin_mut)).
    pub fn get_mut<K: AsMetadataKey<Ascii>>(&mut self, key: K) -> Option<&mut AsciiMetadataValue> {
        let key = key.key_str();
        if is_bin_key(key) {
            return None;
        }
        self.entries_in_place()
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, value)| match value {
                Stored::Ascii(value) => Some(value),
                Stored::Binary(_) => None,
            })
    }

    /// The first value of a binary `key` (ending in `-bin`), to change in place, as tonic's
    /// `get_bin_mut`.
    pub fn get_bin_mut<K: AsMetadataKey<Binary>>(
        &mut self,
        key: K,
    ) -> Option<&mut BinaryMetadataValue> {
        let key = key.key_str();
        if !is_bin_key(key) {
            return None;
        }
        self.entries_in_place()
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, value)| match value {
                Stored::Binary(value) => Some(value),
                Stored::Ascii(_) => None,
            })
    }

    /// Removes every value of a binary `key` (one ending in `-bin`) and returns the first, as
    /// tonic's `remove_bin`; a text key is left alone (`None`), and so is an invalid one.
    pub fn remove_bin<K: AsMetadataKey<Binary>>(&mut self, key: K) -> Option<BinaryMetadataValue> {
        match self.remove_first::<Binary>(key.key_str())? {
            Stored::Binary(value) => Some(value),
            Stored::Ascii(_) => None,
        }
    }

    /// Removes every value of a text `key` and returns the first, as tonic's `remove`
    /// (`map.remove("x-host").unwrap()`); a `-bin` key is left alone (`None`:
    /// [`remove_bin`](Self::remove_bin)), and so is an invalid one. The key is a `&str`,
    /// `String`, `&String` or [`MetadataKey`](crate::metadata_key::MetadataKey).
    pub fn remove<K: AsMetadataKey<Ascii>>(&mut self, key: K) -> Option<AsciiMetadataValue> {
        match self.remove_first::<Ascii>(key.key_str())? {
            Stored::Ascii(value) => Some(value),
            Stored::Binary(_) => None,
        }
    }

    /// Removes every value of `key` if it is of kind `VE`, and returns the first.
    fn remove_first<VE: ValueEncoding>(&mut self, key: &str) -> Option<Stored> {
        if is_bin_key(key) != VE::BINARY {
            return None;
        }
        if self.is_empty() {
            return None;
        }
        let entries = self.entries_mut();
        let at = entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        let (_, first) = entries.remove(at);
        entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        Some(first)
    }

    /// Every value, in order, one per entry (a repeated key's each time), as tonic's
    /// `values`; [`iter`](Self::iter) gives each one's bytes with its key.
    pub fn values(&self) -> impl Iterator<Item = ValueRef<'_>> {
        self.entries().iter().map(|(_, value)| match value {
            Stored::Ascii(value) => ValueRef::Ascii(value),
            Stored::Binary(value) => ValueRef::Binary(value),
        })
    }

    /// Every value, in order, to change in place, as tonic's `values_mut`.
    pub fn values_mut(&mut self) -> impl Iterator<Item = ValueRefMut<'_>> {
        self.entries_in_place()
            .iter_mut()
            .map(|(_, value)| match value {
                Stored::Ascii(value) => ValueRefMut::Ascii(value),
                Stored::Binary(value) => ValueRefMut::Binary(value),
            })
    }

    /// Every entry, in order, its value to change in place, as tonic's `iter_mut`.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = KeyAndMutValueRef<'_>> {
        self.entries_in_place()
            .iter_mut()
            .map(|(key, value)| match value {
                Stored::Ascii(value) => KeyAndMutValueRef::Ascii(key.as_str(), value),
                Stored::Binary(value) => KeyAndMutValueRef::Binary(key.as_str(), value),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_value::MetadataValue;

    /// A key taken from a peer's input need not be ASCII: `is_bin_key` sliced the `&str` four
    /// bytes from its end, inside `é` here, and panicked in every getter and in `remove`,
    /// where tonic's (whose key conversion fails) finds nothing.
    #[test]
    fn a_key_not_ascii_is_not_there_and_never_panics() {
        let mut map = MetadataMap::new();
        map.append_str("x-a", "1").expect("valid");
        for key in ["\u{e9}abc", "a\u{e9}-bi", "x\u{e9}bin", "\u{1F600}"] {
            assert!(map.remove(key).is_none(), "{key:?}");
            assert!(map.get(key).is_none(), "{key:?}");
            assert!(map.get_bin(key).is_none(), "{key:?}");
            assert!(map.get_mut(key).is_none(), "{key:?}");
            assert!(map.get_bin_mut(key).is_none(), "{key:?}");
            assert!(map.remove_bin(key).is_none(), "{key:?}");
            assert!(!is_bin_key(key), "{key:?}");
            assert_eq!(map.get_all_bin(key).count(), 0, "{key:?}");
            assert!(!map.contains_key(key), "{key:?}");
            assert!(
                map.entry(key).is_err() && map.entry_bin(key).is_err(),
                "{key:?}"
            );
        }
        assert!(is_bin_key("\u{e9}-bin"), "a `-bin` end after any text");
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn values_lent_out_by_kind_and_changed_in_place() {
        let mut map = MetadataMap::new();
        assert!(map.get_mut("x-a").is_none(), "an empty map lends nothing");
        map.append_str("x-a", "1").expect("valid");
        map.append_bin("x-b-bin", b"\x00".into()).expect("valid");
        map.append("x-a", "2".parse().expect("ascii"))
            .expect("valid");
        let kinds: Vec<bool> = map
            .values()
            .map(|value| matches!(value, ValueRef::Binary(_)))
            .collect();
        assert_eq!(kinds, [false, true, false]);
        assert!(map.get_mut("x-b-bin").is_none(), "a binary key is not text");
        assert!(map.get_bin_mut("x-a").is_none(), "a text key is not binary");

        *map.get_mut("X-A").expect("text") = MetadataValue::from_static("one");
        assert_eq!(map.get_all("x-a").collect::<Vec<_>>(), [&b"one"[..], b"2"]);
        *map.get_bin_mut("x-b-bin").expect("binary") = MetadataValue::from_bytes(b"\xff");
        assert_eq!(map.get_bin("x-b-bin").expect("binary"), &b"\xff"[..]);

        for value in map.values_mut() {
            if let ValueRefMut::Ascii(value) = value {
                value.set_sensitive(true);
            }
        }
        let marked: Vec<(&str, bool)> = map
            .iter_mut()
            .map(|entry| match entry {
                KeyAndMutValueRef::Ascii(key, value) => (key, value.is_sensitive()),
                KeyAndMutValueRef::Binary(key, value) => (key, value.is_sensitive()),
            })
            .collect();
        assert_eq!(marked, [("x-a", true), ("x-b-bin", false), ("x-a", true)]);
    }
}
