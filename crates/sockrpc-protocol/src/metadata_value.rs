//! tonic's typed metadata values, so that code ported from tonic keeps its `MetadataValue`s.
//!
//! [`MetadataMap`](crate::MetadataMap) stores its values as these types and lends them out as
//! tonic's map does (`get` is `Option<&AsciiMetadataValue>`, `get_bin`
//! `Option<&BinaryMetadataValue>`), and its `insert`/`append`/`insert_bin`/`append_bin` take
//! them, so tonic's `"v".parse().unwrap()`, `MetadataValue::from_static("v")` and
//! `MetadataValue::from_bytes(b"..")` name their type by where they go. A value is checked by
//! the same rules as the map (a text value is printable ASCII) when it is made, so the map
//! stores it without a second look. A binary value holds its bytes as they are: sockrpc's wire
//! carries bytes, so there is no base64 form, and [`to_bytes`](MetadataValue::to_bytes) cannot
//! fail (it returns a `Result` because tonic's does). Values compare with strings, byte slices
//! and each other as tonic's do (`assert_eq!(map.get("k").unwrap(), "v")`).
//!
//! A value may be marked sensitive ([`set_sensitive`](MetadataValue::set_sensitive)), as
//! tonic's (http's `HeaderValue`): its `Debug`, and the map's, print `Sensitive` instead of it,
//! so a logged request does not leak a token. The map keeps the mark with the value; values
//! that arrive off the wire are not sensitive.

use crate::metadata_key::MetadataKey;
use bytes::Bytes;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// The encoding of a [`MetadataValue`]: [`Ascii`] or [`Binary`]. Sealed.
pub trait ValueEncoding: sealed::Sealed {
    /// Whether its keys end in `-bin`.
    #[doc(hidden)]
    const BINARY: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Ascii {}
    impl Sealed for super::Binary {}
}

/// Marks a text value: printable ASCII (`0x20..=0x7e`), under a key not ending in `-bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ascii {}

/// Marks a binary value: any bytes, under a key ending in `-bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binary {}

impl ValueEncoding for Ascii {
    const BINARY: bool = false;
}

impl ValueEncoding for Binary {
    const BINARY: bool = true;
}

/// A metadata value, text ([`AsciiMetadataValue`]) or binary ([`BinaryMetadataValue`]), as
/// tonic names it. Cloning shares the bytes. Two values are equal when their bytes are,
/// whether sensitive or not (as http's `HeaderValue`).
pub struct MetadataValue<VE: ValueEncoding> {
    bytes: Bytes,
    sensitive: bool,
    encoding: PhantomData<fn() -> VE>,
}

/// A text metadata value.
pub type AsciiMetadataValue = MetadataValue<Ascii>;

/// A binary metadata value.
pub type BinaryMetadataValue = MetadataValue<Binary>;

/// A text value with a byte outside printable ASCII (`0x20..=0x7e`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid metadata value: text values are printable ASCII; use a -bin key for bytes")]
pub struct InvalidMetadataValue {
    _private: (),
}

/// What [`MetadataValue::to_str`] would fail with; never returned, since a text value is
/// checked when it is made (tonic's `to_str` returns a `Result`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata value is not printable ASCII")]
pub struct ToStrError {
    _private: (),
}

/// What [`MetadataValue::to_bytes`] would fail with; never returned, since binary values are
/// held as bytes, not base64 (tonic's `to_bytes` returns a `Result`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid binary metadata value")]
pub struct InvalidMetadataValueBytes {
    _private: (),
}

fn is_text(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| (0x20..=0x7e).contains(b))
}

impl<VE: ValueEncoding> MetadataValue<VE> {
    /// Wraps bytes already checked for `VE` (the map's stored values).
    pub(crate) fn wrap(bytes: Bytes) -> MetadataValue<VE> {
        MetadataValue {
            bytes,
            sensitive: false,
            encoding: PhantomData,
        }
    }

    /// The bytes, shared (the map's reads and its wire encoding).
    pub(crate) fn shared_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes, to move into storage of their own (`MetadataMap::unshare`).
    pub(crate) fn shared_bytes_mut(&mut self) -> &mut Bytes {
        &mut self.bytes
    }

    /// Marks the value sensitive, or not, as tonic's `set_sensitive`: a sensitive value's
    /// `Debug` (and its map's) prints `Sensitive` instead of the value. It is sent all the same.
    pub fn set_sensitive(&mut self, sensitive: bool) {
        self.sensitive = sensitive;
    }

    /// Whether the value is marked sensitive ([`set_sensitive`](Self::set_sensitive)).
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// The value's bytes (for a binary value, the bytes themselves: there is no base64 form).
    pub fn as_encoded_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The value's bytes, shared; never fails (a binary value's bytes are held as they are,
    /// not as base64; tonic's `to_bytes` returns a `Result`).
    pub fn to_bytes(&self) -> Result<Bytes, InvalidMetadataValueBytes> {
        Ok(self.bytes.clone())
    }
}

impl MetadataValue<Ascii> {
    /// A text value from a constant string.
    ///
    /// # Panics
    /// If `value` has a byte outside printable ASCII, as tonic's does.
    pub fn from_static(value: &'static str) -> AsciiMetadataValue {
        assert!(
            is_text(value.as_bytes()),
            "invalid metadata value {value:?}: text values are printable ASCII"
        );
        MetadataValue::wrap(Bytes::from_static(value.as_bytes()))
    }

    /// A text value from bytes, checked.
    pub fn try_from_bytes(value: &[u8]) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        if is_text(value) {
            Ok(MetadataValue::wrap(Bytes::copy_from_slice(value)))
        } else {
            Err(InvalidMetadataValue { _private: () })
        }
    }

    /// The value as a string; never fails (checked when made).
    pub fn to_str(&self) -> Result<&str, ToStrError> {
        std::str::from_utf8(&self.bytes).map_err(|_| ToStrError { _private: () })
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// A key as a text value, as tonic's `from_key` (every key is printable ASCII).
    pub fn from_key<KeyVE: ValueEncoding>(key: MetadataKey<KeyVE>) -> AsciiMetadataValue {
        key.into()
    }
}

/// A key as a text value (every key is printable ASCII), as tonic's.
impl<KeyVE: ValueEncoding> From<MetadataKey<KeyVE>> for MetadataValue<Ascii> {
    fn from(key: MetadataKey<KeyVE>) -> AsciiMetadataValue {
        MetadataValue::wrap(Bytes::from(key.as_str().to_owned()))
    }
}

impl MetadataValue<Binary> {
    /// A binary value holding a copy of `value`.
    pub fn from_bytes(value: &[u8]) -> BinaryMetadataValue {
        MetadataValue::wrap(Bytes::copy_from_slice(value))
    }
}

impl FromStr for MetadataValue<Ascii> {
    type Err = InvalidMetadataValue;

    fn from_str(s: &str) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        MetadataValue::try_from_bytes(s.as_bytes())
    }
}

impl TryFrom<&str> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(s: &str) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        s.parse()
    }
}

impl TryFrom<&String> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(s: &String) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        s.parse()
    }
}

impl TryFrom<String> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(s: String) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        if is_text(s.as_bytes()) {
            Ok(MetadataValue::wrap(Bytes::from(s)))
        } else {
            Err(InvalidMetadataValue { _private: () })
        }
    }
}

impl TryFrom<&[u8]> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(bytes: &[u8]) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        MetadataValue::try_from_bytes(bytes)
    }
}

impl<const N: usize> TryFrom<&[u8; N]> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(bytes: &[u8; N]) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        MetadataValue::try_from_bytes(bytes)
    }
}

/// Text held as it is (its bytes shared, not copied), checked, as tonic's.
impl TryFrom<Bytes> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(bytes: Bytes) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        if is_text(&bytes) {
            Ok(MetadataValue::wrap(bytes))
        } else {
            Err(InvalidMetadataValue { _private: () })
        }
    }
}

/// Text, checked, as tonic's.
impl TryFrom<Vec<u8>> for MetadataValue<Ascii> {
    type Error = InvalidMetadataValue;

    fn try_from(bytes: Vec<u8>) -> Result<AsciiMetadataValue, InvalidMetadataValue> {
        MetadataValue::try_from(Bytes::from(bytes))
    }
}

macro_rules! from_integers {
    ($($int:ty),*) => {$(
        impl From<$int> for MetadataValue<Ascii> {
            #[doc = concat!("The decimal form of a `", stringify!($int), "`.")]
            fn from(n: $int) -> AsciiMetadataValue {
                MetadataValue::wrap(Bytes::from(n.to_string()))
            }
        }
    )*};
}

from_integers!(u16, i16, u32, i32, u64, i64, usize, isize);

impl From<&[u8]> for MetadataValue<Binary> {
    fn from(bytes: &[u8]) -> BinaryMetadataValue {
        MetadataValue::from_bytes(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for MetadataValue<Binary> {
    fn from(bytes: &[u8; N]) -> BinaryMetadataValue {
        MetadataValue::from_bytes(bytes)
    }
}

impl From<Vec<u8>> for MetadataValue<Binary> {
    fn from(bytes: Vec<u8>) -> BinaryMetadataValue {
        MetadataValue::wrap(Bytes::from(bytes))
    }
}

impl From<Bytes> for MetadataValue<Binary> {
    fn from(bytes: Bytes) -> BinaryMetadataValue {
        MetadataValue::wrap(bytes)
    }
}

/// The value's bytes (shared, not copied).
impl<VE: ValueEncoding> From<MetadataValue<VE>> for Bytes {
    fn from(value: MetadataValue<VE>) -> Bytes {
        value.bytes
    }
}

impl AsRef<str> for MetadataValue<Ascii> {
    fn as_ref(&self) -> &str {
        // Printable ASCII, checked when made: always UTF-8.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

impl AsRef<[u8]> for MetadataValue<Binary> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A copy (its bytes shared), as tonic's.
impl<VE: ValueEncoding> From<&MetadataValue<VE>> for MetadataValue<VE> {
    fn from(value: &MetadataValue<VE>) -> MetadataValue<VE> {
        value.clone()
    }
}

impl<VE: ValueEncoding> Clone for MetadataValue<VE> {
    fn clone(&self) -> Self {
        MetadataValue {
            bytes: self.bytes.clone(),
            sensitive: self.sensitive,
            encoding: PhantomData,
        }
    }
}

impl<VE: ValueEncoding> PartialEq for MetadataValue<VE> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<VE: ValueEncoding> Eq for MetadataValue<VE> {}

impl<VE: ValueEncoding> std::hash::Hash for MetadataValue<VE> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl<VE: ValueEncoding> PartialEq<str> for MetadataValue<VE> {
    fn eq(&self, other: &str) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl<VE: ValueEncoding> PartialEq<String> for MetadataValue<VE> {
    fn eq(&self, other: &String) -> bool {
        self.bytes == other.as_bytes()
    }
}

impl<VE: ValueEncoding> PartialEq<[u8]> for MetadataValue<VE> {
    fn eq(&self, other: &[u8]) -> bool {
        self.bytes == other
    }
}

/// `value == &x` wherever `value == x`, as tonic's (`&str`, `&String`, `&[u8]`, `&value`).
impl<VE: ValueEncoding, T: ?Sized> PartialEq<&T> for MetadataValue<VE>
where
    MetadataValue<VE>: PartialEq<T>,
{
    fn eq(&self, other: &&T) -> bool {
        *self == **other
    }
}

impl<VE: ValueEncoding> PartialEq<MetadataValue<VE>> for &MetadataValue<VE> {
    fn eq(&self, other: &MetadataValue<VE>) -> bool {
        **self == *other
    }
}

impl<VE: ValueEncoding> PartialEq<MetadataValue<VE>> for str {
    fn eq(&self, other: &MetadataValue<VE>) -> bool {
        other == self
    }
}

impl<VE: ValueEncoding> PartialEq<MetadataValue<VE>> for &str {
    fn eq(&self, other: &MetadataValue<VE>) -> bool {
        other == *self
    }
}

impl<VE: ValueEncoding> PartialEq<MetadataValue<VE>> for String {
    fn eq(&self, other: &MetadataValue<VE>) -> bool {
        other == self
    }
}

impl<VE: ValueEncoding> PartialEq<MetadataValue<VE>> for [u8] {
    fn eq(&self, other: &MetadataValue<VE>) -> bool {
        other == self
    }
}

/// Byte order, as tonic's.
impl<VE: ValueEncoding> PartialOrd for MetadataValue<VE> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Byte order, as tonic's.
impl<VE: ValueEncoding> Ord for MetadataValue<VE> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

/// Byte order against strings and byte slices, both ways, as tonic's.
macro_rules! ordered_with {
    ($($other:ty),*) => {$(
        impl<VE: ValueEncoding> PartialOrd<$other> for MetadataValue<VE> {
            fn partial_cmp(&self, other: &$other) -> Option<std::cmp::Ordering> {
                let other: &[u8] = other.as_ref();
                Some(self.bytes.as_ref().cmp(other))
            }
        }

        impl<VE: ValueEncoding> PartialOrd<MetadataValue<VE>> for $other {
            fn partial_cmp(&self, other: &MetadataValue<VE>) -> Option<std::cmp::Ordering> {
                let this: &[u8] = self.as_ref();
                Some(this.cmp(other.bytes.as_ref()))
            }
        }
    )*};
}

ordered_with!(str, [u8], String);

/// `value < &x` wherever `value < x`, as tonic's.
impl<VE: ValueEncoding, T: ?Sized> PartialOrd<&T> for MetadataValue<VE>
where
    MetadataValue<VE>: PartialOrd<T>,
{
    fn partial_cmp(&self, other: &&T) -> Option<std::cmp::Ordering> {
        self.partial_cmp(*other)
    }
}

impl<VE: ValueEncoding> PartialOrd<MetadataValue<VE>> for &str {
    fn partial_cmp(&self, other: &MetadataValue<VE>) -> Option<std::cmp::Ordering> {
        (*self).partial_cmp(other)
    }
}

impl<VE: ValueEncoding> PartialOrd<MetadataValue<VE>> for &MetadataValue<VE> {
    fn partial_cmp(&self, other: &MetadataValue<VE>) -> Option<std::cmp::Ordering> {
        (**self).partial_cmp(other)
    }
}

impl<VE: ValueEncoding> fmt::Debug for MetadataValue<VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sensitive {
            return f.write_str("Sensitive");
        }
        match std::str::from_utf8(&self.bytes) {
            Ok(text) if is_text(&self.bytes) => fmt::Debug::fmt(text, f),
            _ => fmt::Debug::fmt(&self.bytes, f),
        }
    }
}
