//! tonic's metadata keys, and the one trait that lets the map's methods take them beside `&str`.
//!
//! A ported tonic program names keys with `MetadataKey::from_static("x")` or
//! `MetadataKey::from_bytes(b"x")?`, or just with a string; [`MetadataMap`]'s getters and
//! setters take any of these through [`AsMetadataKey`], generic over the key so that the
//! value's type alone decides what `"v".parse()` builds. A [`MetadataKey`] is checked by the
//! map's rules when it is made (`a-z 0-9 - _ .`, lowercase, not `sockrpc-`, ending in `-bin`
//! exactly when it is a [`BinaryMetadataKey`]), so a setter given one checks nothing again; a
//! string is checked by the setter, and a bad one is a [`MetadataError`], never a panic.
//!
//! [`MetadataMap`]: crate::MetadataMap

use crate::metadata::{is_bin_key, normalize_key, MetadataError};
use crate::metadata_value::{Ascii, Binary, ValueEncoding};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// A metadata key, text ([`AsciiMetadataKey`]) or binary ([`BinaryMetadataKey`], ending in
/// `-bin`), as tonic names it: lowercase, checked when made.
pub struct MetadataKey<VE: ValueEncoding> {
    name: String,
    encoding: PhantomData<fn() -> VE>,
}

/// A text metadata key.
pub type AsciiMetadataKey = MetadataKey<Ascii>;

/// A binary metadata key (one ending in `-bin`).
pub type BinaryMetadataKey = MetadataKey<Binary>;

/// A key refused by [`MetadataKey::from_bytes`] (or `parse`): not `a-z 0-9 - _ .`, empty or
/// longer than 255 bytes, starting with `sockrpc-`, or of the other kind (`-bin` or not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid gRPC metadata key name")]
pub struct InvalidMetadataKey {
    _private: (),
}

impl<VE: ValueEncoding> MetadataKey<VE> {
    /// A key from bytes, checked and folded to lowercase, as tonic's `from_bytes`. A text key
    /// ending in `-bin`, or a binary key not ending in it, is refused (tonic panics there).
    pub fn from_bytes(src: &[u8]) -> Result<MetadataKey<VE>, InvalidMetadataKey> {
        let invalid = InvalidMetadataKey { _private: () };
        let text = std::str::from_utf8(src).map_err(|_| invalid.clone())?;
        let name = checked_key::<VE>(text).map_err(|_| invalid)?;
        Ok(MetadataKey {
            name,
            encoding: PhantomData,
        })
    }

    /// A key from a constant string, as tonic's `from_static`.
    ///
    /// # Panics
    /// If `src` is not a valid lowercase key of this kind, as tonic's does.
    pub fn from_static(src: &'static str) -> MetadataKey<VE> {
        let lowercase = !src.bytes().any(|b| b.is_ascii_uppercase());
        match MetadataKey::from_bytes(src.as_bytes()) {
            Ok(key) if lowercase => key,
            _ => panic!("invalid metadata key {src:?}"),
        }
    }

    /// The key, lowercase.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// A key already checked for kind `VE` and normalized (a setter's `into_stored_key`).
    pub(crate) fn checked(name: String) -> MetadataKey<VE> {
        MetadataKey {
            name,
            encoding: PhantomData,
        }
    }
}

impl InvalidMetadataKey {
    /// The error, for the map's own refusals (`MetadataMap::entry`).
    pub(crate) fn new() -> InvalidMetadataKey {
        InvalidMetadataKey { _private: () }
    }
}

/// The key `text` names, normalized, if it is valid and of kind `VE`.
fn checked_key<VE: ValueEncoding>(text: &str) -> Result<String, MetadataError> {
    let key = normalize_key(text)?;
    if is_bin_key(&key) != VE::BINARY {
        return Err(MetadataError::WrongKind(key));
    }
    Ok(key)
}

impl<VE: ValueEncoding> FromStr for MetadataKey<VE> {
    type Err = InvalidMetadataKey;

    fn from_str(s: &str) -> Result<MetadataKey<VE>, InvalidMetadataKey> {
        MetadataKey::from_bytes(s.as_bytes())
    }
}

impl<VE: ValueEncoding> Clone for MetadataKey<VE> {
    fn clone(&self) -> Self {
        MetadataKey {
            name: self.name.clone(),
            encoding: PhantomData,
        }
    }
}

impl<VE: ValueEncoding> PartialEq for MetadataKey<VE> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<VE: ValueEncoding> Eq for MetadataKey<VE> {}

impl<VE: ValueEncoding> std::hash::Hash for MetadataKey<VE> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// Compares regardless of case, as tonic's.
impl<VE: ValueEncoding> PartialEq<str> for MetadataKey<VE> {
    fn eq(&self, other: &str) -> bool {
        self.name.eq_ignore_ascii_case(other)
    }
}

/// Compares regardless of case, as tonic's.
impl<VE: ValueEncoding> PartialEq<&str> for MetadataKey<VE> {
    fn eq(&self, other: &&str) -> bool {
        self.name.eq_ignore_ascii_case(other)
    }
}

/// Compares regardless of case, as tonic's.
impl<VE: ValueEncoding> PartialEq<MetadataKey<VE>> for str {
    fn eq(&self, other: &MetadataKey<VE>) -> bool {
        other == self
    }
}

/// Compares regardless of case, as tonic's.
impl<VE: ValueEncoding> PartialEq<MetadataKey<VE>> for &str {
    fn eq(&self, other: &MetadataKey<VE>) -> bool {
        other == *self
    }
}

impl<VE: ValueEncoding> AsRef<str> for MetadataKey<VE> {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl<VE: ValueEncoding> AsRef<[u8]> for MetadataKey<VE> {
    fn as_ref(&self) -> &[u8] {
        self.name.as_bytes()
    }
}

impl<VE: ValueEncoding> Borrow<str> for MetadataKey<VE> {
    fn borrow(&self) -> &str {
        &self.name
    }
}

impl<VE: ValueEncoding> fmt::Debug for MetadataKey<VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.name, f)
    }
}

impl<VE: ValueEncoding> fmt::Display for MetadataKey<VE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.name, f)
    }
}

/// A key [`MetadataMap`](crate::MetadataMap)'s methods take, for values of encoding `VE`: a
/// `&str`, `String` or `&String` (checked by a setter, looked up regardless of case by a
/// getter), or a [`MetadataKey<VE>`] (by value or by reference), checked when it was made.
/// Sealed, as tonic's `AsMetadataKey` / `IntoMetadataKey`.
pub trait AsMetadataKey<VE: ValueEncoding>: sealed::Sealed {
    /// The key as given, for a look-up.
    #[doc(hidden)]
    fn key_str(&self) -> &str;

    /// The key to store: checked, lowercase, of kind `VE`.
    #[doc(hidden)]
    fn into_stored_key(self) -> Result<String, MetadataError>;
}

/// A key [`MetadataMap::contains_key`](crate::MetadataMap::contains_key) takes, of either
/// kind, as tonic's `AsEncodingAgnosticMetadataKey`: a `&str`, `String` or `&String` (looked up
/// regardless of case; an invalid one is simply not there), or a [`MetadataKey`] of either
/// encoding, by value or by reference. Sealed.
pub trait AsEncodingAgnosticMetadataKey: sealed::Sealed {
    /// The key as given, for a look-up.
    #[doc(hidden)]
    fn any_key_str(&self) -> &str;
}

impl AsEncodingAgnosticMetadataKey for &str {
    fn any_key_str(&self) -> &str {
        self
    }
}

impl AsEncodingAgnosticMetadataKey for &String {
    fn any_key_str(&self) -> &str {
        self
    }
}

impl AsEncodingAgnosticMetadataKey for String {
    fn any_key_str(&self) -> &str {
        self
    }
}

impl<VE: ValueEncoding> AsEncodingAgnosticMetadataKey for MetadataKey<VE> {
    fn any_key_str(&self) -> &str {
        &self.name
    }
}

impl<VE: ValueEncoding> AsEncodingAgnosticMetadataKey for &MetadataKey<VE> {
    fn any_key_str(&self) -> &str {
        &self.name
    }
}

mod sealed {
    use super::MetadataKey;
    use crate::metadata_value::ValueEncoding;

    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl<VE: ValueEncoding> Sealed for MetadataKey<VE> {}
    impl<VE: ValueEncoding> Sealed for &MetadataKey<VE> {}
}

impl<VE: ValueEncoding> AsMetadataKey<VE> for &str {
    fn key_str(&self) -> &str {
        self
    }

    fn into_stored_key(self) -> Result<String, MetadataError> {
        checked_key::<VE>(self)
    }
}

impl<VE: ValueEncoding> AsMetadataKey<VE> for &String {
    fn key_str(&self) -> &str {
        self
    }

    fn into_stored_key(self) -> Result<String, MetadataError> {
        checked_key::<VE>(self)
    }
}

impl<VE: ValueEncoding> AsMetadataKey<VE> for String {
    fn key_str(&self) -> &str {
        self
    }

    fn into_stored_key(self) -> Result<String, MetadataError> {
        checked_key::<VE>(&self)
    }
}

impl<VE: ValueEncoding> AsMetadataKey<VE> for MetadataKey<VE> {
    fn key_str(&self) -> &str {
        &self.name
    }

    fn into_stored_key(self) -> Result<String, MetadataError> {
        Ok(self.name)
    }
}

impl<VE: ValueEncoding> AsMetadataKey<VE> for &MetadataKey<VE> {
    fn key_str(&self) -> &str {
        &self.name
    }

    fn into_stored_key(self) -> Result<String, MetadataError> {
        Ok(self.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_value::MetadataValue;
    use crate::MetadataMap;

    #[test]
    fn keys_are_checked_when_made_and_taken_by_the_map() {
        let key = AsciiMetadataKey::from_bytes(b"X-Host").expect("valid");
        assert_eq!(key.as_str(), "x-host", "folded to lowercase");
        assert_eq!(key, "X-HOST");
        assert_eq!(key, AsciiMetadataKey::from_static("x-host"));
        assert!(
            AsciiMetadataKey::from_bytes(b"x-host-bin").is_err(),
            "binary kind"
        );
        assert!(
            BinaryMetadataKey::from_bytes(b"x-host").is_err(),
            "text kind"
        );
        assert!(AsciiMetadataKey::from_bytes(b"a{}b").is_err());
        assert!(
            AsciiMetadataKey::from_bytes(b"sockrpc-x").is_err(),
            "reserved"
        );
        assert!("x y".parse::<AsciiMetadataKey>().is_err());

        let mut map = MetadataMap::new();
        map.insert(
            MetadataKey::from_static("x-a"),
            MetadataValue::from_static("1"),
        )
        .expect("valid");
        map.insert_bin(
            MetadataKey::from_static("x-b-bin"),
            MetadataValue::from_bytes(b"\x01"),
        )
        .expect("valid");
        assert_eq!(map.get(&key), None, "looked up by reference");
        let by_value = AsciiMetadataKey::from_static("x-a");
        assert_eq!(map.get(by_value).expect("set"), "1");
        assert_eq!(map.get(String::from("X-A")).expect("set"), "1");
        let bin = BinaryMetadataKey::from_static("x-b-bin");
        assert_eq!(map.get_bin(&bin).expect("set").as_encoded_bytes(), b"\x01");
    }

    #[test]
    #[should_panic(expected = "invalid metadata key")]
    fn from_static_refuses_uppercase_as_tonic_does() {
        let _ = AsciiMetadataKey::from_static("X-Host");
    }
}
