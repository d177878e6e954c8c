//! The map's plain forms, for values held as `&str` and `&[u8]` at run time.
//!
//! tonic's setters take typed values ([`AsciiMetadataValue`]) and its getters lend them out
//! (`metadata.rs`); a program whose values are strings it only has at run time would otherwise
//! parse each into a value first, and read each back with `.to_str()`. These do that in one
//! step: [`insert_str`](MetadataMap::insert_str) and [`append_str`](MetadataMap::append_str)
//! check key and value and say what was wrong in a [`MetadataError`];
//! [`get_str`](MetadataMap::get_str) and [`get_bin_bytes`](MetadataMap::get_bin_bytes) hand
//! out the stored bytes as they are.

use crate::metadata::{check_text_value, MetadataError, Stored};
use crate::metadata_key::AsMetadataKey;
use crate::metadata_value::{Ascii, AsciiMetadataValue, Binary};
use crate::MetadataMap;
use bytes::Bytes;

impl MetadataMap {
    /// Sets a text value given as a `&str`, replacing every earlier value of the key; a bad
    /// key, or a value with a byte outside printable ASCII, is an error.
    pub fn insert_str<K: AsMetadataKey<Ascii>>(
        &mut self,
        key: K,
        value: &str,
    ) -> Result<(), MetadataError> {
        let (key, value) = text_entry(key, value)?;
        self.put(key, value, true);
        Ok(())
    }

    /// Adds a text value given as a `&str`, keeping earlier values of the key (checked as for
    /// [`insert_str`](Self::insert_str)).
    pub fn append_str<K: AsMetadataKey<Ascii>>(
        &mut self,
        key: K,
        value: &str,
    ) -> Result<(), MetadataError> {
        let (key, value) = text_entry(key, value)?;
        self.put(key, value, false);
        Ok(())
    }

    /// The first text value of `key` as a `&str` (`None` for a `-bin` key).
    pub fn get_str<K: AsMetadataKey<Ascii>>(&self, key: K) -> Option<&str> {
        match self.find::<Ascii>(key.key_str())? {
            Stored::Ascii(value) => value.to_str().ok(),
            Stored::Binary(_) => None,
        }
    }

    /// The first binary value of `key` (which ends in `-bin`) as a `&[u8]`.
    pub fn get_bin_bytes<K: AsMetadataKey<Binary>>(&self, key: K) -> Option<&[u8]> {
        match self.find::<Binary>(key.key_str())? {
            Stored::Binary(value) => Some(value.as_encoded_bytes()),
            Stored::Ascii(_) => None,
        }
    }
}

/// A text entry, checked: its key (normalized, not `-bin`) and its value.
fn text_entry<K: AsMetadataKey<Ascii>>(
    key: K,
    value: &str,
) -> Result<(String, Stored), MetadataError> {
    let key = key.into_stored_key()?;
    check_text_value(&key, value.as_bytes())?;
    let value = AsciiMetadataValue::wrap(Bytes::copy_from_slice(value.as_bytes()));
    Ok((key, Stored::Ascii(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms_check_key_and_value_and_read_back() {
        let mut map = MetadataMap::new();
        map.insert_str("X-Custom", "hello world").expect("valid");
        assert_eq!(map.get_str("x-custom"), Some("hello world"));
        assert_eq!(map.get("x-custom").expect("set"), "hello world");
        assert!(matches!(
            map.insert_str("k", "line\nbreak"),
            Err(MetadataError::InvalidValue(_))
        ));
        assert!(matches!(
            map.insert_str("k-bin", "text"),
            Err(MetadataError::WrongKind(_))
        ));
        assert!(matches!(
            map.insert_str("bad key", "v"),
            Err(MetadataError::InvalidKey(_))
        ));
        map.append_str("multi", "a").expect("valid");
        map.append_str("multi", "b").expect("valid");
        assert_eq!(map.get_all("multi").count(), 2);
        map.insert_str("multi", "c").expect("valid");
        assert_eq!(map.get_str("multi"), Some("c"));
        map.insert_bin("trace-bin", vec![0u8, 255].into())
            .expect("valid");
        assert_eq!(map.get_bin_bytes("trace-bin"), Some(&[0u8, 255][..]));
        assert_eq!(map.get_str("trace-bin"), None, "a binary key is not text");
        assert_eq!(
            map.get_bin_bytes("x-custom"),
            None,
            "a text key is not binary"
        );
    }
}
