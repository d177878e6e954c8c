//! `google.protobuf.Any` values of types the method's own files do not declare. A method's
//! descriptors come from reflection as its files and what they import; an `Any` may hold any
//! type the server knows, and protobuf's JSON mapping writes (and reads) it as that type, so an
//! answer carrying one outside those files could not be printed (exit 13, the rest of a stream
//! lost), nor a request naming one (`"@type"`) be sent. As grpcurl does, the types are asked of
//! reflection (`file_containing_symbol`) when the JSON needs them, and their files added to the
//! pool, within the same bounds as the extensions' (`extensions.rs`). A message that converts
//! as it is asks nothing.

use super::exit::Failure;
use super::extensions::{absent, add_files, Budget};
use super::reflect::ask;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use sockrpc::Channel;
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use std::collections::BTreeSet;

/// How deep the walks below go into nested messages and `Any`s.
const MAX_DEPTH: usize = 64;

/// The full name of the `Any` type.
const ANY: &str = "google.protobuf.Any";

/// The message name in an `Any`'s type URL (`type.googleapis.com/pkg.Msg` → `pkg.Msg`).
fn type_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

/// The types of the `Any`s in `message` (nested ones included) that `pool` lacks.
fn missing_in_message(message: &DynamicMessage, pool: &DescriptorPool) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    visit_message(message, pool, &mut missing, MAX_DEPTH);
    missing
}

fn visit_message(
    message: &DynamicMessage,
    pool: &DescriptorPool,
    missing: &mut BTreeSet<String>,
    depth: usize,
) {
    let Some(depth) = depth.checked_sub(1) else {
        return;
    };
    if message.descriptor().full_name() == ANY {
        let url = message.get_field_by_name("type_url");
        let url = url.as_deref().and_then(Value::as_str).unwrap_or_default();
        if url.is_empty() {
            return;
        }
        let name = type_name(url);
        match pool.get_message_by_name(name) {
            None => {
                missing.insert(name.to_owned());
            }
            Some(inner) => {
                let value = message.get_field_by_name("value");
                let bytes = value.as_deref().and_then(Value::as_bytes).cloned();
                if let Ok(inner) = DynamicMessage::decode(inner, bytes.unwrap_or_default()) {
                    visit_message(&inner, pool, missing, depth);
                }
            }
        }
        return;
    }
    for (_, value) in message.fields() {
        visit_value(value, pool, missing, depth);
    }
}

fn visit_value(value: &Value, pool: &DescriptorPool, missing: &mut BTreeSet<String>, depth: usize) {
    match value {
        Value::Message(message) => visit_message(message, pool, missing, depth),
        Value::List(items) => {
            for item in items {
                visit_value(item, pool, missing, depth);
            }
        }
        Value::Map(map) => {
            for item in map.values() {
                visit_value(item, pool, missing, depth);
            }
        }
        _ => {}
    }
}

/// The types JSON `value` names with `"@type"` that `pool` lacks.
fn missing_in_json(value: &serde_json::Value, pool: &DescriptorPool) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    let mut stack = vec![(value, MAX_DEPTH)];
    while let Some((value, depth)) = stack.pop() {
        let Some(depth) = depth.checked_sub(1) else {
            continue;
        };
        match value {
            serde_json::Value::Object(object) => {
                if let Some(serde_json::Value::String(url)) = object.get("@type") {
                    let name = type_name(url);
                    if pool.get_message_by_name(name).is_none() {
                        missing.insert(name.to_owned());
                    }
                }
                stack.extend(object.values().map(|v| (v, depth)));
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth))),
            _ => {}
        }
    }
    missing
}

/// `desc` in a pool that also holds `names`, as far as reflection describes them; `None` when
/// it describes none of them (the pool stays as it was).
async fn with_types(
    channel: &Channel,
    desc: &MessageDescriptor,
    names: BTreeSet<String>,
) -> Result<Option<MessageDescriptor>, Failure> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut pool = desc.parent_pool().clone();
    let mut budget = Budget::new();
    let what = desc.full_name().to_owned();
    let mut grew = false;
    for name in names {
        budget.request(&what)?;
        let files = match ask(channel, MessageRequest::FileContainingSymbol(name)).await {
            Ok(answer) => match budget.files(answer, &what) {
                Ok(files) => files,
                Err(failure) if absent(&failure) => continue,
                Err(failure) => return Err(failure),
            },
            Err(failure) if absent(&failure) => continue,
            Err(failure) => return Err(failure),
        };
        add_files(channel, &mut pool, files, &mut budget, &what).await?;
        grew = true;
    }
    Ok(grew
        .then(|| pool.get_message_by_name(desc.full_name()))
        .flatten())
}

/// `desc` in a pool that also describes the `Any` types in `message` (encoded as one), when
/// reflection could add any.
pub(crate) async fn for_answer(
    channel: &Channel,
    desc: &MessageDescriptor,
    message: &[u8],
) -> Result<Option<MessageDescriptor>, Failure> {
    let Ok(decoded) = DynamicMessage::decode(desc.clone(), message) else {
        return Ok(None);
    };
    let missing = missing_in_message(&decoded, desc.parent_pool());
    with_types(channel, desc, missing).await
}

/// `desc` in a pool that also describes the `"@type"`s in the JSON `text` (one value or
/// several), when reflection could add any.
pub(crate) async fn for_request(
    channel: &Channel,
    desc: &MessageDescriptor,
    text: &str,
) -> Result<Option<MessageDescriptor>, Failure> {
    let mut missing = BTreeSet::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let Ok(value) = value else { break };
        missing.extend(missing_in_json(&value, desc.parent_pool()));
    }
    with_types(channel, desc, missing).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_types_missing_from_the_pool_are_found_in_json_at_any_depth() {
        let pool = DescriptorPool::global();
        let json = serde_json::json!({
            "a": {"@type": "type.googleapis.com/other.Thing", "x": 1},
            "list": [{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1s"},
                     {"nested": {"@type": "example.com/x/other.Deep"}}],
        });
        let missing: Vec<String> = missing_in_json(&json, &pool).into_iter().collect();
        assert_eq!(missing, ["other.Deep", "other.Thing"]);
    }
}
