//! JSON ⇄ protobuf for one message type, through prost-reflect's implementation of protobuf's
//! JSON mapping: field names in lowerCamelCase or as in the `.proto`, 64-bit integers as
//! strings, bytes as base64, enums by name. Unknown fields are an error, not silently dropped.

use bytes::Bytes;
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, SerializeOptions};

/// The encoding of one JSON value as a `desc` message.
pub(crate) fn encode(desc: &MessageDescriptor, json: &serde_json::Value) -> Result<Bytes, String> {
    let message = DynamicMessage::deserialize(desc.clone(), json)
        .map_err(|err| format!("not a valid {}: {err}", desc.full_name()))?;
    Ok(Bytes::from(message.encode_to_vec()))
}

/// Every JSON value in `text` (one, or several separated by whitespace or newlines), each
/// encoded as a `desc` message.
pub(crate) fn encode_all(desc: &MessageDescriptor, text: &str) -> Result<Vec<Bytes>, String> {
    let mut out = Vec::new();
    for (index, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .enumerate()
    {
        let value = value.map_err(|err| format!("request {}: bad JSON: {err}", index + 1))?;
        out.push(encode(desc, &value).map_err(|err| format!("request {}: {err}", index + 1))?);
    }
    Ok(out)
}

/// One encoded `desc` message as one line of JSON (default values left out).
pub(crate) fn decode(desc: &MessageDescriptor, bytes: Bytes) -> Result<String, String> {
    let message = DynamicMessage::decode(desc.clone(), bytes)
        .map_err(|err| format!("the answer is not a valid {}: {err}", desc.full_name()))?;
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &SerializeOptions::new())
        .map_err(|err| format!("cannot write {} as JSON: {err}", desc.full_name()))?;
    String::from_utf8(out).map_err(|err| err.to_string())
}
