//! What protobuf's JSON mapping (Go's `protojson`, so grpcurl) refuses in a request and
//! prost-reflect let through, refused here too. The request is read from a parsed
//! `serde_json::Value`, whose objects keep one value per key, in key order:
//!
//! - A field given twice: `{"text": "a", "text": "b"}` was sent as `"b"` without a word, and
//!   of `{"snake_case": 1, "snakeCase": 2}` (one field by its two names) whichever name sorts
//!   last won, not the one written last.
//! - A 64-bit integer past its type's range, written as a number: serde_json reads
//!   `18446744073709551616` (2⁶⁴) as a float, which prost-reflect turned into `u64::MAX`, as
//!   it turned −2⁶³−1 into `i64::MIN`.
//!
//! [`check`] reads the request's text once more, following the message's fields: in a message,
//! two keys naming one field (by either name) are refused; in any other object (a map, a
//! `Struct`, an `Any`), one key given twice is; a 64-bit integer field's number must fit.

use prost_reflect::{Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

/// What a JSON value stands for.
#[derive(Clone)]
enum Shape {
    /// A message whose JSON is an object of its fields.
    Message(MessageDescriptor),
    /// A protobuf map: an object whose values are of this shape.
    Map(Box<Shape>),
    /// A 64-bit integer field (signed or not), or an element of one.
    Long { signed: bool },
    /// Anything else (a scalar, a well-known type written its own way, an unknown field).
    Other,
}

impl Shape {
    /// The shape of a value of `kind` (an element's, for a repeated field).
    fn of(kind: &Kind) -> Shape {
        match kind {
            // Wrappers are written as the value they wrap.
            Kind::Message(desc) if desc.full_name() == "google.protobuf.Int64Value" => {
                Shape::Long { signed: true }
            }
            Kind::Message(desc) if desc.full_name() == "google.protobuf.UInt64Value" => {
                Shape::Long { signed: false }
            }
            // The well-known types have JSON of their own (an `Any`'s fields are its packed
            // message's): their objects are only checked for a key given twice.
            Kind::Message(desc) if desc.full_name().starts_with("google.protobuf.") => Shape::Other,
            Kind::Message(desc) if desc.is_map_entry() => {
                Shape::Map(Box::new(Shape::of(&desc.map_entry_value_field().kind())))
            }
            Kind::Message(desc) => Shape::Message(desc.clone()),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Shape::Long { signed: true },
            Kind::Uint64 | Kind::Fixed64 => Shape::Long { signed: false },
            _ => Shape::Other,
        }
    }
}

/// Reads `text`, a JSON value already found to be a valid `desc` message, and fails (with the
/// position serde_json gives) where a field or key is given twice or a 64-bit integer does not
/// fit.
pub(crate) fn check(desc: &MessageDescriptor, text: &str) -> Result<(), serde_json::Error> {
    let mut reader = serde_json::Deserializer::from_str(text);
    Walk(Shape::of(&Kind::Message(desc.clone()))).deserialize(&mut reader)
}

/// Reads one value of a shape.
struct Walk(Shape);

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<(), E> {
        Ok(())
    }
    /// An integer JSON writes past what i64 and u64 hold comes as a float: one a 64-bit field
    /// cannot hold is refused (2⁶³ and 2⁶⁴ are the first floats past i64's and u64's ranges).
    /// −2⁶³ as a float is refused too: −2⁶³−1 reads as that float (−2⁶³ written as an integer
    /// comes as one, and goes through).
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        match self.0 {
            Shape::Long { signed: true } if !(v > -TWO_63 && v < TWO_63) => Err(de::Error::custom(
                format!("{v} is out of range for a 64-bit integer"),
            )),
            Shape::Long { signed: false } if !(0.0..2.0 * TWO_63).contains(&v) => {
                Err(de::Error::custom(format!(
                    "{v} is out of range for an unsigned 64-bit integer"
                )))
            }
            _ => Ok(()),
        }
    }
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    /// A list's elements are all of the shape (a repeated field's element shape).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk(self.0.clone()))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Each field's number (a message) or each key (any other object), with the key that
        // gave it first.
        let mut seen: HashMap<String, String> = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let (id, inner) = match &self.0 {
                Shape::Message(desc) => {
                    match desc
                        .get_field_by_json_name(&key)
                        .or_else(|| desc.get_field_by_name(&key))
                    {
                        Some(field) => (format!("#{}", field.number()), Shape::of(&field.kind())),
                        // An extension (`[pkg.name]`), or what the decoder allowed.
                        None => (key.clone(), Shape::Other),
                    }
                }
                Shape::Map(values) => (key.clone(), (**values).clone()),
                Shape::Long { .. } | Shape::Other => (key.clone(), Shape::Other),
            };
            if let Some(first) = seen.insert(id, key.clone()) {
                return Err(de::Error::custom(if first == key {
                    format!("{key:?} is given twice")
                } else {
                    format!("{key:?} is given twice (first as {first:?}, one field's two names)")
                }));
            }
            map.next_value_seed(Walk(inner))?;
        }
        Ok(())
    }
}
