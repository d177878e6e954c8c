//! Options as `.proto` text: the standard ones (`java_package`, `deprecated`, `packed`, ..) and
//! custom ones (`(my.ext) = ..`, a message-typed one as an aggregate `{ .. }`), read from the
//! decoded options message so that an extension the pool knows is written by its name.
//! Options a pool cannot name (unknown fields) cannot be written as `.proto`; they are left out.

use super::text::{bytes_literal, escape};
use prost_reflect::{DynamicMessage, Kind, MapKey, Value};
use std::fmt::Write as _;

/// Each option set in `options` as the `name = value` of one `option` statement or bracket
/// entry: fields in number order, then extensions; a repeated option once per element.
/// `skip` names standard options written some other way (a map entry's `map_entry`).
pub(super) fn entries(options: &DynamicMessage, skip: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (field, value) in options.fields() {
        if field.name() == "uninterpreted_option" || skip.contains(&field.name()) {
            continue;
        }
        push(&mut out, field.name(), &field.kind(), value);
    }
    for (extension, value) in options.extensions() {
        let name = format!("({})", extension.full_name());
        push(&mut out, &name, &extension.kind(), value);
    }
    out
}

fn push(out: &mut Vec<String>, name: &str, kind: &Kind, value: &Value) {
    match value {
        Value::List(values) => {
            for value in values {
                out.push(format!("{name} = {}", value_text(kind, value)));
            }
        }
        value => out.push(format!("{name} = {}", value_text(kind, value))),
    }
}

/// ` [a = 1, b = 2]` for `entries`, nothing when there are none.
pub(super) fn brackets(entries: &[String]) -> String {
    if entries.is_empty() {
        String::new()
    } else {
        format!(" [{}]", entries.join(", "))
    }
}

/// One option value as `.proto` text.
fn value_text(kind: &Kind, value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(x) => float_text(f64::from(*x), &format!("{x:?}")),
        Value::F64(x) => float_text(*x, &format!("{x:?}")),
        Value::String(s) => format!("\"{}\"", escape(s)),
        Value::Bytes(b) => bytes_literal(b),
        Value::EnumNumber(n) => match kind {
            Kind::Enum(en) => en
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_owned()),
            _ => n.to_string(),
        },
        Value::Message(message) => aggregate(message),
        Value::List(values) => {
            let items: Vec<String> = values.iter().map(|v| value_text(kind, v)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Map(map) => {
            let mut items: Vec<(&MapKey, &Value)> = map.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => kind.clone(),
            };
            let items: Vec<String> = items
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{{ key: {} value: {} }}",
                        key_text(k),
                        value_text(&value_kind, v)
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => format!("\"{}\"", escape(s)),
    }
}

/// A float the way `.proto` reads it back to the same value. An infinity is `1e999` (a literal
/// past the largest double): protoc also takes `inf`, but prost-reflect's option interpreter
/// (protox's) takes no name there. NaN has no literal, so it is `nan`, which protoc takes.
fn float_text(x: f64, shortest: &str) -> String {
    if x.is_nan() {
        "nan".to_owned()
    } else if x.is_infinite() {
        if x > 0.0 { "1e999" } else { "-1e999" }.to_owned()
    } else {
        shortest.to_owned()
    }
}

/// A message-typed option value in the text format: `{ a: 1 b { c: 2 } [ext.name]: 3 }`.
fn aggregate(message: &DynamicMessage) -> String {
    let mut out = String::from("{");
    let mut write = |name: &str, kind: &Kind, value: &Value| {
        let values = match value {
            Value::List(values) => values.iter().collect(),
            value => vec![value],
        };
        for value in values {
            let _ = write!(out, " {name}: {}", value_text(kind, value));
        }
    };
    for (field, value) in message.fields() {
        // A group's field is named by its type in the text format.
        let name = match field.kind() {
            Kind::Message(group) if field.is_group() => group.name().to_owned(),
            _ => field.name().to_owned(),
        };
        write(&name, &field.kind(), value);
    }
    for (extension, value) in message.extensions() {
        write(
            &format!("[{}]", extension.full_name()),
            &extension.kind(),
            value,
        );
    }
    out.push_str(" }");
    out
}
