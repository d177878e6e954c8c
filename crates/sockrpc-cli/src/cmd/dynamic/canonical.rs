//! An answer's JSON as protobuf's JSON mapping writes it (Go's `protojson`, which grpcurl
//! prints), where prost-reflect's serialization into serde_json differs:
//!
//! - A map's entries come in key order (numeric for integer keys, `false` before `true`, byte
//!   order for strings). prost-reflect keeps a map in a `HashMap` and wrote it in that order,
//!   which changes from run to run: one answer printed two ways, and two runs' output could not
//!   be compared.
//! - A `FloatValue` or `DoubleValue` holding NaN or an infinity is `"NaN"`, `"Infinity"` or
//!   `"-Infinity"`, as a `float` or `double` field is: serde_json wrote `null`, the wrapper's
//!   JSON for no value at all.
//! - A whole number held as a `float` or `double` (a `Struct`'s numbers among them) is written
//!   without a fraction: `1`, not serde_json's `1.0`; any number from 10⁻⁶ to 10²¹ in its
//!   shortest digits without an exponent (a `float`'s 1e11 is `100000000000`).
//!
//! prost-reflect serializes a message as a map of unknown length and a protobuf map (or a
//! `Struct`) as a map of known length; a map key that is an integer or a bool comes as a value
//! to write as a string, a string key as a string. [`Writer`] sorts the second kind of map
//! by the key's kind, and leaves messages' fields in the order given (field number).

use serde::ser::{self, Impossible, Serialize};
use std::cmp::Ordering;
use std::fmt::Display;

type Error = serde_json::Error;

/// `value` as one line of JSON, written as this module says.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut out = Vec::new();
    value.serialize(Writer { out: &mut out })?;
    String::from_utf8(out).map_err(ser::Error::custom)
}

/// Writes JSON into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// `value` as serde_json writes it.
    fn plain<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, value)
    }

    /// A number as protojson writes it: NaN and the infinities as strings, one from 10⁻⁶ to
    /// 10²¹ in its shortest digits without an exponent (a whole one without a fraction, `-0`
    /// keeping its sign); any other as serde_json writes it (with an exponent).
    fn float(self, value: f64, single: Option<f32>) -> Result<(), Error> {
        if value.is_nan() {
            return self.plain("NaN");
        }
        if value.is_infinite() {
            return self.plain(if value > 0.0 { "Infinity" } else { "-Infinity" });
        }
        // Between 10⁻⁶ and 10²¹ (or zero), Go writes 'f' with precision -1: the shortest digits
        // that read back as the same value at its own width, without an exponent, padded with
        // zeros; Rust's `Display` writes the same (`-0` keeps its sign). Not the exact value:
        // a float32 of 1e11 is 99999997952 exactly. Past that range, both write an exponent.
        let plain = match single {
            Some(v) => v == 0.0 || (1e-6..1e21).contains(&v.abs()),
            None => value == 0.0 || (1e-6..1e21).contains(&value.abs()),
        };
        if plain {
            let text = match single {
                Some(value) => value.to_string(),
                None => value.to_string(),
            };
            self.out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        match single {
            Some(value) => self.plain(&value),
            None => self.plain(&value),
        }
    }
}

/// An unsupported shape (prost-reflect writes none of them).
fn unsupported(what: &str) -> Error {
    ser::Error::custom(format!("cannot write {what} as JSON"))
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Map<'a>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.float(f64::from(v), Some(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.float(v, None)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.plain(&v)
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.plain(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.plain(v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.plain(&())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.plain(&())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.plain(&())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.plain(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(unsupported("an enum variant"))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Error> {
        self.out.push(b'[');
        Ok(Seq {
            out: self.out,
            first: true,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("an enum variant"))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Map<'a>, Error> {
        Ok(Map {
            out: self.out,
            sorted: len.is_some(),
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Map<'a>, Error> {
        self.serialize_map(None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("an enum variant"))
    }
}

/// A list being written.
struct Seq<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn close(self) -> Result<(), Error> {
        self.out.push(b']');
        Ok(())
    }
}

impl ser::SerializeSeq for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTuple for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// A map key: its text, and whether it came as a string (a `string` key) or as a value
/// written as one (an integer or a bool).
#[derive(Debug)]
struct Key {
    text: String,
    string: bool,
}

impl Key {
    /// Protojson's order: strings by their bytes; integers by value; `false` before `true`.
    fn order(&self, other: &Key) -> Ordering {
        if !self.string && !other.string {
            if let (Ok(a), Ok(b)) = (self.text.parse::<i128>(), other.text.parse::<i128>()) {
                return a.cmp(&b);
            }
        }
        // Bools too: "false" sorts before "true".
        self.text.cmp(&other.text)
    }
}

/// An object being written: its entries are kept until its end, to be sorted when it is a
/// protobuf map (`sorted`).
struct Map<'a> {
    out: &'a mut Vec<u8>,
    sorted: bool,
    entries: Vec<(Key, Vec<u8>)>,
    key: Option<Key>,
}

impl Map<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: Key, value: &T) -> Result<(), Error> {
        let mut written = Vec::new();
        value.serialize(Writer { out: &mut written })?;
        self.entries.push((key, written));
        Ok(())
    }

    fn close(mut self) -> Result<(), Error> {
        if self.sorted {
            self.entries.sort_by(|(a, _), (b, _)| a.order(b));
        }
        self.out.push(b'{');
        for (index, (key, value)) in self.entries.iter().enumerate() {
            if index > 0 {
                self.out.push(b',');
            }
            serde_json::to_writer(&mut *self.out, &key.text)?;
            self.out.push(b':');
            self.out.extend_from_slice(value);
        }
        self.out.push(b'}');
        Ok(())
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(key.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| unsupported("a map value before its key"))?;
        self.entry(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let key = Key {
            text: key.to_owned(),
            string: true,
        };
        self.entry(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

/// Reads a map key: a string, or a value written as one.
struct KeyWriter;

impl KeyWriter {
    fn value(value: impl Display) -> Result<Key, Error> {
        Ok(Key {
            text: value.to_string(),
            string: false,
        })
    }
}

impl ser::Serializer for KeyWriter {
    type Ok = Key;
    type Error = Error;
    type SerializeSeq = Impossible<Key, Error>;
    type SerializeTuple = Impossible<Key, Error>;
    type SerializeTupleStruct = Impossible<Key, Error>;
    type SerializeTupleVariant = Impossible<Key, Error>;
    type SerializeMap = Impossible<Key, Error>;
    type SerializeStruct = Impossible<Key, Error>;
    type SerializeStructVariant = Impossible<Key, Error>;

    fn serialize_str(self, v: &str) -> Result<Key, Error> {
        Ok(Key {
            text: v.to_owned(),
            string: true,
        })
    }
    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<Key, Error> {
        KeyWriter::value(value)
    }
    fn serialize_bool(self, v: bool) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_i8(self, v: i8) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_i16(self, v: i16) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_i32(self, v: i32) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_i64(self, v: i64) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_u16(self, v: u16) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_u32(self, v: u32) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_u64(self, v: u64) -> Result<Key, Error> {
        KeyWriter::value(v)
    }
    fn serialize_f32(self, _v: f32) -> Result<Key, Error> {
        Err(unsupported("a number as a map key"))
    }
    fn serialize_f64(self, _v: f64) -> Result<Key, Error> {
        Err(unsupported("a number as a map key"))
    }
    fn serialize_char(self, v: char) -> Result<Key, Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<Key, Error> {
        Err(unsupported("bytes as a map key"))
    }
    fn serialize_none(self) -> Result<Key, Error> {
        Err(unsupported("null as a map key"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Key, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Key, Error> {
        Err(unsupported("null as a map key"))
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Key, Error> {
        Err(unsupported("null as a map key"))
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Key, Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Key, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Key, Error> {
        Err(unsupported("an enum variant as a map key"))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(unsupported("a list as a map key"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(unsupported("a list as a map key"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(unsupported("a list as a map key"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(unsupported("a list as a map key"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(unsupported("an object as a map key"))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(unsupported("an object as a map key"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(unsupported("an object as a map key"))
    }
}

#[cfg(test)]
mod tests {
    use super::to_string;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn numbers_are_written_as_protojson_writes_them() {
        let numbers = [
            1.0,
            -0.0,
            0.5,
            1e20,
            1e21,
            f64::NAN,
            f64::INFINITY,
            -f64::INFINITY,
        ];
        assert_eq!(
            to_string(&numbers[..]).ok().as_deref(),
            Some(r#"[1,-0,0.5,100000000000000000000,1e+21,"NaN","Infinity","-Infinity"]"#)
        );
        assert_eq!(
            to_string(&[1.5_f32, 3.0, f32::NAN][..]).ok().as_deref(),
            Some(r#"[1.5,3,"NaN"]"#)
        );
    }

    #[test]
    fn a_known_length_map_is_sorted_by_its_keys_kind() {
        let ints: HashMap<i64, u8> = [(10, 1), (-1, 2), (2, 3)].into();
        assert_eq!(
            to_string(&ints).ok().as_deref(),
            Some(r#"{"-1":2,"2":3,"10":1}"#)
        );
        let texts: HashMap<&str, u8> = [("10", 1), ("9", 2), ("a", 3)].into();
        assert_eq!(
            to_string(&texts).ok().as_deref(),
            Some(r#"{"10":1,"9":2,"a":3}"#)
        );
        let flags: HashMap<bool, u8> = [(true, 1), (false, 0)].into();
        assert_eq!(
            to_string(&flags).ok().as_deref(),
            Some(r#"{"false":0,"true":1}"#)
        );
        let nested: BTreeMap<&str, Vec<Option<u8>>> = [("k", vec![Some(1), None])].into();
        assert_eq!(
            to_string(&nested).ok().as_deref(),
            Some(r#"{"k":[1,null]}"#)
        );
    }
    #[test]
    fn a_whole_number_past_its_exact_digits_is_written_as_its_shortest_form() {
        // Go's protojson writes a float's shortest digits that read back as the same value
        // ('f' with precision -1 at its bit size), padded with zeros: a float32 of 1e11 is
        // 100000000000, not the exact value of its nearest f32 (99999997952), nor a double's
        // 1.2345678901234567e19 12345678901234567168. Down to 10⁻⁶ without an exponent too.
        assert_eq!(
            to_string(&[1e11_f32, 1e20, 16_777_217.0][..])
                .ok()
                .as_deref(),
            Some("[100000000000,100000000000000000000,16777216]")
        );
        assert_eq!(
            to_string(&[1.234_567_890_123_456_7e19_f64][..])
                .ok()
                .as_deref(),
            Some("[12345678901234567000]")
        );
        assert_eq!(
            to_string(&[1e-5_f64, 1.5e-6, 1.5e-7, 123456.5][..])
                .ok()
                .as_deref(),
            Some("[0.00001,0.0000015,1.5e-7,123456.5]")
        );
    }
}
