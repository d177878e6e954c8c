//! Metadata: the key/value pairs that travel beside a call's messages.
//!
//! Keys are ASCII (`a-z 0-9 - _ .`, uppercase folded to lowercase on insert, as gRPC does). A key
//! ending in `-bin` carries arbitrary bytes; every other key carries printable ASCII text
//! (`0x20..=0x7e`). Both rules are checked on insert and again when metadata arrives off the wire,
//! so a peer cannot hand a handler a value that the API itself would have refused.
//!
//! Keys starting with [`RESERVED_PREFIX`] (`sockrpc-`) belong to the framework: the API refuses
//! them and the wire parser drops them, so no handler or peer can speak for the protocol
//! (protocol signals travel in frame fields, never in metadata).

use crate::metadata_key::{AsEncodingAgnosticMetadataKey, AsMetadataKey};
use crate::metadata_value::{
    Ascii, AsciiMetadataValue, Binary, BinaryMetadataValue, ValueEncoding,
};
use bytes::Bytes;
use std::fmt;

/// Why a metadata key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The key is empty, longer than 255 bytes, or has a character outside `a-z 0-9 - _ .`.
    #[error("invalid metadata key {0:?}: keys are 1..=255 bytes of a-z, 0-9, '-', '_', '.'")]
    InvalidKey(String),
    /// A text (non `-bin`) value has a byte outside printable ASCII.
    #[error("invalid value for metadata key {0:?}: text values are printable ASCII; use a -bin key for bytes")]
    InvalidValue(String),
    /// Binary bytes were given for a key that does not end in `-bin`, or text for one that does.
    #[error(
        "metadata key {0:?}: a key ending in -bin takes a binary value (insert_bin, append_bin), \
         any other key a text value"
    )]
    WrongKind(String),
    /// The key starts with [`RESERVED_PREFIX`], which belongs to the framework.
    #[error("metadata key {0:?}: keys starting with 'sockrpc-' are reserved")]
    Reserved(String),
}

/// Keys starting with this are reserved for the framework: refused on insert, dropped off the
/// wire.
pub const RESERVED_PREFIX: &str = "sockrpc-";

/// The longest key the wire format can carry (its length is one byte).
pub const MAX_KEY_LEN: usize = 255;

/// An ordered multimap of metadata; a key may repeat.
#[derive(Clone, Default)]
pub struct MetadataMap {
    /// `None` until the first entry: nearly every call's maps (its metadata, its answer's
    /// metadata and trailers) stay empty, and dropping an empty `Vec` is a call into its drop
    /// glue where dropping `None` is one comparison.
    entries: Option<Vec<(String, Stored)>>,
}

/// A stored value: text under a text key, binary under a `-bin` key (never the other way),
/// kept as tonic's typed value so the map can lend it out (`metadata_tonic.rs`) with its
/// sensitive mark.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    Ascii(AsciiMetadataValue),
    Binary(BinaryMetadataValue),
}

impl Stored {
    /// The value stored under `key` for bytes already checked for it.
    fn checked(key: &str, bytes: Bytes) -> Stored {
        if is_bin_key(key) {
            Stored::Binary(BinaryMetadataValue::wrap(bytes))
        } else {
            Stored::Ascii(AsciiMetadataValue::wrap(bytes))
        }
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        match self {
            Stored::Ascii(value) => value.shared_bytes(),
            Stored::Binary(value) => value.shared_bytes(),
        }
    }

    fn bytes_mut(&mut self) -> &mut Bytes {
        match self {
            Stored::Ascii(value) => value.shared_bytes_mut(),
            Stored::Binary(value) => value.shared_bytes_mut(),
        }
    }

    fn is_sensitive(&self) -> bool {
        match self {
            Stored::Ascii(value) => value.is_sensitive(),
            Stored::Binary(value) => value.is_sensitive(),
        }
    }
}

impl PartialEq for MetadataMap {
    fn eq(&self, other: &MetadataMap) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for MetadataMap {}

impl MetadataMap {
    /// An empty map; does not allocate.
    pub fn new() -> MetadataMap {
        MetadataMap { entries: None }
    }

    pub(crate) fn entries(&self) -> &[(String, Stored)] {
        self.entries.as_deref().unwrap_or(&[])
    }

    /// The bytes of the entries' table as allocated (its capacity), with its own allocation's
    /// overhead; `None` when the map never held an entry (`frame::metadata_held`).
    pub(crate) fn table_bytes(&self) -> Option<usize> {
        let capacity = self.entries.as_ref()?.capacity();
        let overhead = crate::frame::ALLOCATION_OVERHEAD * usize::from(capacity > 0);
        Some(capacity * std::mem::size_of::<(String, Stored)>() + overhead)
    }

    /// The entries, to change in place (empty, and allocating nothing, for a new map).
    pub(crate) fn entries_in_place(&mut self) -> &mut [(String, Stored)] {
        self.entries.as_deref_mut().unwrap_or(&mut [])
    }

    /// The entries, to add to (`metadata_entry.rs`).
    pub(crate) fn entries_mut(&mut self) -> &mut Vec<(String, Stored)> {
        self.entries.get_or_insert_with(Vec::new)
    }

    /// An empty map with room for `capacity` entries, as tonic's `with_capacity` (allocated
    /// now unless `capacity` is 0).
    pub fn with_capacity(capacity: usize) -> MetadataMap {
        MetadataMap {
            entries: (capacity > 0).then(|| Vec::with_capacity(capacity)),
        }
    }

    /// How many entries the map holds without allocating again (tonic's `capacity`; 0 for a
    /// new map, which allocates nothing).
    pub fn capacity(&self) -> usize {
        self.entries.as_ref().map_or(0, Vec::capacity)
    }

    /// Makes room for at least `additional` more entries (tonic's `reserve`).
    ///
    /// # Panics
    /// If the new capacity overflows `usize`, as tonic's does.
    pub fn reserve(&mut self, additional: usize) {
        if additional > 0 {
            self.entries_mut().reserve(additional);
        }
    }

    /// Removes every entry, keeping the room they took (tonic's `clear`).
    pub fn clear(&mut self) {
        if let Some(entries) = &mut self.entries {
            entries.clear();
        }
    }

    /// Number of distinct keys (tonic's `keys_len`; [`len`](Self::len) counts values).
    pub fn keys_len(&self) -> usize {
        self.keys().count()
    }

    /// Number of entries (a repeated key counts once per value).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }

    /// Sets a text value, replacing every earlier value of the key, as tonic's `insert`: the
    /// value is tonic's [`AsciiMetadataValue`] (`"v".parse().unwrap()`,
    /// `MetadataValue::from_static("v")`, `MetadataValue::try_from(s)?`), checked when made;
    /// [`insert_str`](Self::insert_str) takes a `&str`. The key is a `&str` or a
    /// [`MetadataKey`](crate::metadata_key::MetadataKey). Unlike tonic's, a bad key is an
    /// error, not a panic, and the value replaced is not returned.
    pub fn insert<K: AsMetadataKey<Ascii>>(
        &mut self,
        key: K,
        value: AsciiMetadataValue,
    ) -> Result<(), MetadataError> {
        self.put(key.into_stored_key()?, Stored::Ascii(value), true);
        Ok(())
    }

    /// Adds a text value, keeping earlier values of the key, as tonic's `append` (key and
    /// value as for [`insert`](Self::insert); [`append_str`](Self::append_str) takes a `&str`).
    pub fn append<K: AsMetadataKey<Ascii>>(
        &mut self,
        key: K,
        value: AsciiMetadataValue,
    ) -> Result<(), MetadataError> {
        self.put(key.into_stored_key()?, Stored::Ascii(value), false);
        Ok(())
    }

    /// Adds an entry whose key and value are checked (and of one kind), after removing the
    /// key's earlier values if `replace`.
    pub(crate) fn put(&mut self, key: String, value: Stored, replace: bool) {
        if replace {
            self.remove_all(&key);
        }
        self.entries_mut().push((key, value));
    }

    /// Every distinct key, in the order of its first entry (a repeated key once, as tonic's
    /// `keys`).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let entries = self.entries();
        entries
            .iter()
            .enumerate()
            .filter_map(move |(at, (key, _))| {
                let first = !entries[..at].iter().any(|(earlier, _)| earlier == key);
                first.then_some(key.as_str())
            })
    }

    /// The first text value of `key`, as tonic's `get` (`None` for a `-bin` key:
    /// [`get_bin`](Self::get_bin)); [`get_str`](Self::get_str) reads it as a `&str`.
    pub fn get<K: AsMetadataKey<Ascii>>(&self, key: K) -> Option<&AsciiMetadataValue> {
        match self.find::<Ascii>(key.key_str())? {
            Stored::Ascii(value) => Some(value),
            Stored::Binary(_) => None,
        }
    }

    /// The first binary value of `key` (which ends in `-bin`), as tonic's `get_bin`;
    /// [`get_bin_bytes`](Self::get_bin_bytes) reads it as a `&[u8]`.
    pub fn get_bin<K: AsMetadataKey<Binary>>(&self, key: K) -> Option<&BinaryMetadataValue> {
        match self.find::<Binary>(key.key_str())? {
            Stored::Binary(value) => Some(value),
            Stored::Ascii(_) => None,
        }
    }

    /// The first value of `key` if the key is of kind `VE`.
    pub(crate) fn find<VE: ValueEncoding>(&self, key: &str) -> Option<&Stored> {
        if is_bin_key(key) != VE::BINARY {
            return None;
        }
        self.entries()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, value)| value)
    }

    /// The first text value of `key`, cloned (it shares its bytes).
    pub fn get_value<K: AsMetadataKey<Ascii>>(&self, key: K) -> Option<AsciiMetadataValue> {
        self.get(key).cloned()
    }

    /// The first binary value of `key`, cloned (it shares its bytes).
    pub fn get_bin_value<K: AsMetadataKey<Binary>>(&self, key: K) -> Option<BinaryMetadataValue> {
        self.get_bin(key).cloned()
    }

    /// Sets a binary value under a key that ends in `-bin`, replacing earlier values, as
    /// tonic's `insert_bin`: the value is tonic's [`BinaryMetadataValue`]
    /// (`MetadataValue::from_bytes(b"..")`, or `MetadataValue::from(bytes)` for a `Vec<u8>`,
    /// `&[u8]` or `Bytes`).
    pub fn insert_bin<K: AsMetadataKey<Binary>>(
        &mut self,
        key: K,
        value: BinaryMetadataValue,
    ) -> Result<(), MetadataError> {
        self.put(key.into_stored_key()?, Stored::Binary(value), true);
        Ok(())
    }

    /// Adds a binary value under a key that ends in `-bin`, keeping earlier values of the key,
    /// as tonic's `append_bin`.
    pub fn append_bin<K: AsMetadataKey<Binary>>(
        &mut self,
        key: K,
        value: BinaryMetadataValue,
    ) -> Result<(), MetadataError> {
        self.put(key.into_stored_key()?, Stored::Binary(value), false);
        Ok(())
    }

    /// The first value of `key` as bytes, whatever its kind.
    pub fn get_raw(&self, key: &str) -> Option<&[u8]> {
        self.entries()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.bytes().as_ref())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries()
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.bytes().as_ref())
    }

    /// Every value of a binary `key` (one ending in `-bin`), in order, as tonic's
    /// `get_all_bin`; nothing for a text key.
    pub fn get_all_bin<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bin = is_bin_key(key);
        self.get_all(key).filter(move |_| bin)
    }

    /// Removes every value of `key`, of either kind; whether there was one.
    pub(crate) fn remove_all(&mut self, key: &str) -> bool {
        let Some(entries) = &mut self.entries else {
            return false;
        };
        let before = entries.len();
        entries.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        before != entries.len()
    }

    /// Whether `key` has a value, of either kind, as tonic's `contains_key`: the key is a
    /// `&str`, `String`, `&String` or a [`MetadataKey`](crate::metadata_key::MetadataKey) of
    /// either encoding.
    pub fn contains_key<K: AsEncodingAgnosticMetadataKey>(&self, key: K) -> bool {
        self.get_raw(key.any_key_str()).is_some()
    }

    /// All entries, in order, as `(key, value bytes)`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries()
            .iter()
            .map(|(k, v)| (k.as_str(), v.bytes().as_ref()))
    }

    /// Moves every entry of `other` to the end of this map.
    pub fn extend(&mut self, other: MetadataMap) {
        if let Some(more) = other.entries {
            match &mut self.entries {
                Some(entries) => entries.extend(more),
                None => self.entries = Some(more),
            }
        }
    }

    /// Adds an entry that has already been validated (off the wire); keeps duplicates.
    pub(crate) fn push_validated(&mut self, key: String, value: Bytes) {
        let value = Stored::checked(&key, value);
        self.entries_mut().push((key, value));
    }

    /// Validates and adds an entry decoded off the wire; a reserved key is dropped.
    pub(crate) fn push_wire(&mut self, key: &[u8], value: Bytes) -> Result<(), MetadataError> {
        let key = std::str::from_utf8(key)
            .map_err(|_| MetadataError::InvalidKey(String::from_utf8_lossy(key).into_owned()))?;
        let key = match normalize_key(key) {
            Err(MetadataError::Reserved(_)) => return Ok(()),
            other => other?,
        };
        if !is_bin_key(&key) {
            check_text_value(&key, &value)?;
        }
        self.push_validated(key, value);
        Ok(())
    }

    /// Whether [`push_wire`](Self::push_wire) would take an entry, checked without allocating:
    /// for the entries of a block past the receiver's limit, which is walked to the end (it
    /// must still be well formed) but never kept.
    pub(crate) fn wire_entry_ok(key: &[u8], value: &[u8]) -> bool {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_KEY_LEN
            && key
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            return false;
        }
        let prefix = RESERVED_PREFIX.as_bytes();
        if key.len() >= prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix) {
            // Dropped unread by `push_wire`, whatever its value.
            return true;
        }
        let bin = key.len() >= 4 && key[key.len() - 4..].eq_ignore_ascii_case(b"-bin");
        bin || value.iter().all(|b| (0x20..=0x7e).contains(b))
    }

    /// Copies every value into storage of its own. Values decoded off the wire share the
    /// connection's read buffer; a map that will be held for long (a call waiting for its
    /// request message) is unshared so it does not keep that whole buffer alive.
    pub fn unshare(&mut self) {
        for (_, value) in self.entries.iter_mut().flatten() {
            let bytes = value.bytes_mut();
            *bytes = Bytes::copy_from_slice(bytes);
        }
    }
}

impl fmt::Debug for MetadataMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in self.entries() {
            if v.is_sensitive() {
                // As http's `HeaderValue` prints a sensitive value.
                map.entry(k, &format_args!("Sensitive"));
            } else if is_bin_key(k) {
                map.entry(k, v.bytes());
            } else {
                map.entry(k, &String::from_utf8_lossy(v.bytes()));
            }
        }
        map.finish()
    }
}

/// Whether a key names a binary value.
pub fn is_bin_key(key: &str) -> bool {
    // Bytes, not `&str`: a key not checked yet (a getter's) may end inside a character.
    let key = key.as_bytes();
    key.len() >= 4 && key[key.len() - 4..].eq_ignore_ascii_case(b"-bin")
}

/// The key to store for `key`: checked (`a-z 0-9 - _ .`, 1..=255 bytes, not `sockrpc-`)
/// and folded to lowercase.
pub(crate) fn normalize_key(key: &str) -> Result<String, MetadataError> {
    let valid = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(MetadataError::InvalidKey(key.to_owned()));
    }
    let key = key.to_ascii_lowercase();
    if key.starts_with(RESERVED_PREFIX) {
        return Err(MetadataError::Reserved(key));
    }
    Ok(key)
}

pub(crate) fn check_text_value(key: &str, value: &[u8]) -> Result<(), MetadataError> {
    if value.iter().all(|b| (0x20..=0x7e).contains(b)) {
        Ok(())
    } else {
        Err(MetadataError::InvalidValue(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_value::MetadataValue;

    #[test]
    fn capacity_clear_and_key_count_as_tonic_has_them() {
        let mut map = MetadataMap::with_capacity(4);
        assert!(map.is_empty());
        map.append_str("x-a", "1").expect("valid");
        map.append_str("x-a", "2").expect("valid");
        map.insert_bin("x-b-bin", b"\x00".into()).expect("valid");
        assert_eq!((map.len(), map.keys_len()), (3, 2));
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.keys_len(), 0);
        assert_eq!(map.get("x-a"), None);
        assert!(MetadataMap::with_capacity(0).is_empty());
    }

    #[test]
    fn reserve_and_the_binary_readers_as_tonic_has_them() {
        let mut map = MetadataMap::new();
        assert_eq!(map.capacity(), 0, "a new map allocates nothing");
        map.reserve(10);
        assert!(map.capacity() >= 10);
        map.append_bin("x-b-bin", b"1".into()).expect("valid");
        map.append_str("x-a", "t").expect("valid");
        map.append_bin("x-b-bin", b"2".into()).expect("valid");
        let values: Vec<_> = map.iter().map(|(_, v)| v).collect();
        assert_eq!(values, [&b"1"[..], b"t", b"2"]);
        assert_eq!(
            map.get_all_bin("X-B-bin").collect::<Vec<_>>(),
            [&b"1"[..], b"2"]
        );
        assert_eq!(
            map.get_all_bin("x-a").count(),
            0,
            "a text key is not binary"
        );
        assert!(map.remove_bin("x-a").is_none(), "nor removed as binary");
        assert!(map.contains_key("x-a"));
        let first = map.remove_bin("x-b-bin").expect("was there");
        assert_eq!(first.to_bytes().expect("bytes").as_ref(), b"1");
        assert!(!map.contains_key("x-b-bin"), "every value removed");
        assert!(map.remove_bin("x-b-bin").is_none());
    }

    #[test]
    fn text_and_binary_rules() {
        let mut map = MetadataMap::new();
        let v = AsciiMetadataValue::from_static("v");
        map.insert("X-Custom", "hello world".parse().expect("ascii"))
            .expect("valid");
        assert_eq!(map.get("x-custom").expect("set"), "hello world");
        map.insert_bin("trace-bin", vec![0u8, 255, 10].into())
            .expect("valid");
        assert_eq!(map.get_bin("trace-bin").expect("set"), &[0u8, 255, 10][..]);
        assert!(map.insert("bad key", v.clone()).is_err());
        assert!(map.insert("k-bin", v.clone()).is_err());
        assert!(map.insert_bin("k", vec![1u8].into()).is_err());
        assert!(map.insert("k".repeat(256), v.clone()).is_err());
        map.append("multi", MetadataValue::from_static("a"))
            .expect("valid");
        map.append("multi", MetadataValue::from_static("b"))
            .expect("valid");
        assert_eq!(map.get_all("multi").count(), 2);
        map.insert("multi", MetadataValue::from_static("c"))
            .expect("valid");
        assert_eq!(map.get_all("multi").count(), 1);
        assert_eq!(map.remove("multi").expect("was there"), "c");
        assert!(!map.contains_key("multi"));
        map.append_bin("trace-bin", vec![7u8].into())
            .expect("valid");
        assert_eq!(
            map.get_all("trace-bin").count(),
            2,
            "appended, not replaced"
        );
        assert!(matches!(
            map.append_bin("trace", vec![7u8].into()),
            Err(MetadataError::WrongKind(_))
        ));
    }

    #[test]
    fn reserved_prefix_is_refused_and_dropped_off_the_wire() {
        let mut map = MetadataMap::new();
        assert!(matches!(
            map.insert_str("Sockrpc-Not-Processed", "1"),
            Err(MetadataError::Reserved(_))
        ));
        assert!(map.insert_bin("sockrpc-x-bin", vec![1u8].into()).is_err());
        map.push_wire(b"sockrpc-udp-reissue", Bytes::from_static(b"1.1"))
            .expect("dropped, not an error");
        map.push_wire(b"x", Bytes::from_static(b"y"))
            .expect("valid");
        assert_eq!(map.len(), 1);
        assert!(!map.contains_key("sockrpc-udp-reissue"));
    }

    #[test]
    fn an_emptied_map_equals_a_new_one_and_entries_keep_their_order() {
        let mut map = MetadataMap::new();
        assert!(map.entries.is_none(), "a new map holds nothing");
        assert!(map.remove("x-a").is_none());
        map.append_str("x-a", "1").expect("valid");
        map.append_bin("x-b-bin", b"\x00".into()).expect("valid");
        map.append_str("x-a", "2").expect("valid");
        let mut more = MetadataMap::new();
        more.append_str("x-c", "3").expect("valid");
        map.extend(more);
        map.extend(MetadataMap::new());
        let keys: Vec<_> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["x-a", "x-b-bin", "x-a", "x-c"]);
        assert_eq!(map.get_all("x-a").count(), 2);
        assert_eq!(
            map.remove("x-a").expect("was there"),
            "1",
            "the first value"
        );
        assert!(
            map.remove("x-b-bin").is_none(),
            "a binary key is left to remove_bin"
        );
        assert!(map.remove_bin("x-b-bin").is_some() && map.remove("x-c").is_some());
        assert!(map.is_empty());
        assert_eq!(map, MetadataMap::new(), "emptied equals new");
        let mut into_empty = MetadataMap::new();
        let mut one = MetadataMap::new();
        one.insert_str("x-d", "4").expect("valid");
        into_empty.extend(one.clone());
        assert_eq!(into_empty, one);
    }
}
