//! Options as `.proto` text: the standard ones (`java_package`, `deprecated`, `packed`, ..) and
//! custom ones (`(my.ext) = ..`, a message-typed one as an aggregate `{ .. }`), read from the
//! decoded options message so that an extension the pool knows is written by its name.
//! Options a pool cannot name (unknown fields) cannot be written as `.proto`; they are left out.

use super::text::{bytes_literal, escape, Text};
use prost_reflect::{DynamicMessage, Kind, MapKey, Value};
use std::fmt::Write as _;

/// Each option set in `options` as the `name = value` of one `option` statement or bracket
/// entry: fields in number order, then extensions; a repeated option once per element.
/// `skip` names standard options written some other way (a map entry's `map_entry`).
pub(super) fn entries(options: &DynamicMessage, skip: &[&str]) -> Vec<String> {
    entries_at(options, skip)
        .into_iter()
        .map(|(_, entry)| entry)
        .collect()
}

/// As [`entries`], each with where a parser files the comments of its `option` statement,
/// under the options' own path: the field's number, then the element's index when repeated.
pub(super) fn entries_at(options: &DynamicMessage, skip: &[&str]) -> Vec<(Vec<i32>, String)> {
    let mut out = Vec::new();
    for (field, value) in options.fields() {
        if field.name() == "uninterpreted_option" || skip.contains(&field.name()) {
            continue;
        }
        push(&mut out, field.number(), field.name(), &field.kind(), value);
    }
    for (extension, value) in options.extensions() {
        let name = format!("({})", extension.full_name());
        push(
            &mut out,
            extension.number(),
            &name,
            &extension.kind(),
            value,
        );
    }
    out
}

fn push(out: &mut Vec<(Vec<i32>, String)>, number: u32, name: &str, kind: &Kind, value: &Value) {
    let number = i32::try_from(number).unwrap_or(i32::MAX);
    match value {
        Value::List(values) => {
            for (i, value) in values.iter().enumerate() {
                let path = vec![number, i32::try_from(i).unwrap_or(i32::MAX)];
                out.push((path, format!("{name} = {}", value_text(kind, value, false))));
            }
        }
        value => out.push((
            vec![number],
            format!("{name} = {}", value_text(kind, value, false)),
        )),
    }
}

/// Writes each option of `options` as an `option` statement at `indent`, with the comments
/// filed under `path` (the options' path in the file: the element's, then its options field).
pub(super) fn write_statements(
    text: &mut Text,
    options: &DynamicMessage,
    skip: &[&str],
    path: &[i32],
    indent: &str,
) {
    for (at, entry) in entries_at(options, skip) {
        let at = [path, &at].concat();
        text.leading(&at, indent);
        text.line(indent, &format!("option {entry};"));
        text.trailing(&at, indent);
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

/// One option value as `.proto` text; `nested`: inside an aggregate (the text format).
fn value_text(kind: &Kind, value: &Value, nested: bool) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(x) => float_text(f64::from(*x), &format!("{x:?}"), nested),
        Value::F64(x) => float_text(*x, &format!("{x:?}"), nested),
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
            let items: Vec<String> = values.iter().map(|v| value_text(kind, v, nested)).collect();
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
                        value_text(&value_kind, v, true)
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

/// A float the way `.proto` reads it back to the same value.
///
/// In an aggregate (the text format) an infinity is `inf` or `-inf` and NaN `nan` or `-nan`,
/// which protoc and prost-reflect's text format (protox's) both read. As the value of an
/// option statement or bracket entry, an infinity is `1e999` or `-1e999` (a literal past the
/// largest double): protoc also takes `inf`, but protox takes no identifier there (`-inf` does
/// not even parse). NaN has no literal: it is `nan`, which protoc reads and protox (0.9)
/// refuses; no spelling suits both, so describe writes the standard one.
fn float_text(x: f64, shortest: &str, nested: bool) -> String {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_nan() {
        if nested {
            format!("{sign}nan")
        } else {
            "nan".to_owned()
        }
    } else if x.is_infinite() {
        let name = if nested { "inf" } else { "1e999" };
        format!("{sign}{name}")
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
            let _ = write!(out, " {name}: {}", value_text(kind, value, true));
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
