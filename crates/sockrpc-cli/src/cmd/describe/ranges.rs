//! `reserved` and `extensions` statements, as they were declared: each statement with its
//! items and comments (see `statements.rs`), and an `extensions` statement with its options
//! (`[(my.opt) = 1, declaration = { .. }]`), which prost-reflect keeps only in the file's
//! encoded descriptor: `prost_types` drops custom options, so they are decoded from there
//! with the pool's extensions.

use super::options::{brackets, entries};
use super::statements::{statements, write_statement, Statement};
use super::text::{escape, Text};
use prost_reflect::{DescriptorPool, DynamicMessage, EnumDescriptor, MessageDescriptor, Value};

/// Paths in a `DescriptorProto`: its extension ranges, reserved ranges and reserved names.
const EXTENSION_RANGE: i32 = 5;
const RESERVED_RANGE: i32 = 9;
const RESERVED_NAME: i32 = 10;
/// Paths in an `EnumDescriptorProto`: its reserved ranges and names.
const ENUM_RESERVED_RANGE: i32 = 4;
const ENUM_RESERVED_NAME: i32 = 5;
/// Where a `FileDescriptorProto` and its messages keep what `path` names: an extension
/// range's options.
const RANGE_OPTIONS: u32 = 3;

/// The largest field number; `to max` in a range (past it: a message set's `max`).
const MAX_FIELD: u32 = 536_870_911;

/// Writes a message's `reserved` and `extensions` statements at `indent`.
pub(super) fn write_message_ranges(text: &mut Text, message: &MessageDescriptor, indent: &str) {
    let ranges: Vec<String> = message
        .reserved_ranges()
        .map(|r| range_text(r.start, r.end.saturating_sub(1)))
        .collect();
    let path = [message.path(), &[RESERVED_RANGE]].concat();
    write_lists(text, &path, &ranges, "reserved", indent);
    let names: Vec<String> = message
        .reserved_names()
        .map(|n| format!("\"{}\"", escape(n)))
        .collect();
    let path = [message.path(), &[RESERVED_NAME]].concat();
    write_lists(text, &path, &names, "reserved", indent);

    let extension_ranges: Vec<std::ops::Range<u32>> = message.extension_ranges().collect();
    let ranges: Vec<String> = extension_ranges
        .iter()
        .map(|r| range_text(r.start, r.end.saturating_sub(1)))
        .collect();
    let options = extension_range_options(message, ranges.len());
    let path = [message.path(), &[EXTENSION_RANGE]].concat();
    // Without source info, each range its own statement: their options may differ.
    let grouped = statements(text, &path, ranges.len()).unwrap_or_else(|| {
        (0..ranges.len())
            .map(|i| Statement {
                items: vec![i],
                location: None,
            })
            .collect()
    });
    for statement in grouped {
        let first = statement.items.first().and_then(|&i| options[i].as_ref());
        let bracket = first.map_or_else(String::new, |o| brackets(&entries(o, &[])));
        // protox (0.9) takes `[` after `a to b` only, not after a lone number (protoc takes
        // both): with options, a lone number is written as a range of one.
        let items: Vec<String> = statement
            .items
            .iter()
            .map(|&i| match (&extension_ranges[i], bracket.is_empty()) {
                (range, false) if range.start + 1 == range.end => {
                    format!("{0} to {0}", range.start)
                }
                _ => ranges[i].clone(),
            })
            .collect();
        let line = format!("extensions {}{bracket};", items.join(", "));
        write_statement(text, &statement, &line, indent);
    }
}

/// Writes an enum's `reserved` statements at `indent`.
pub(super) fn write_enum_reserved(text: &mut Text, en: &EnumDescriptor, indent: &str) {
    let ranges: Vec<String> = en
        .reserved_ranges()
        .map(|r| match (*r.start(), *r.end()) {
            (start, end) if start == end => start.to_string(),
            (start, i32::MAX) => format!("{start} to max"),
            (start, end) => format!("{start} to {end}"),
        })
        .collect();
    let path = [en.path(), &[ENUM_RESERVED_RANGE]].concat();
    write_lists(text, &path, &ranges, "reserved", indent);
    let names: Vec<String> = en
        .reserved_names()
        .map(|n| format!("\"{}\"", escape(n)))
        .collect();
    let path = [en.path(), &[ENUM_RESERVED_NAME]].concat();
    write_lists(text, &path, &names, "reserved", indent);
}

/// Writes `items` (of the list at `path`) in the statements they were declared in, else in
/// one.
fn write_lists(text: &mut Text, path: &[i32], items: &[String], keyword: &str, indent: &str) {
    if items.is_empty() {
        return;
    }
    let grouped = statements(text, path, items.len()).unwrap_or_else(|| {
        vec![Statement {
            items: (0..items.len()).collect(),
            location: None,
        }]
    });
    for statement in grouped {
        let list: Vec<&str> = statement.items.iter().map(|&i| items[i].as_str()).collect();
        let line = format!("{keyword} {};", list.join(", "));
        write_statement(text, &statement, &line, indent);
    }
}

/// `a`, `a to b` or `a to max`, as `reserved` and `extensions` write an inclusive range.
fn range_text(start: u32, last: u32) -> String {
    if start == last {
        start.to_string()
    } else if last >= MAX_FIELD {
        format!("{start} to max")
    } else {
        format!("{start} to {last}")
    }
}

/// Each of the `count` extension ranges' options, decoded from the file's encoded descriptor
/// (custom ones included); all `None` when it cannot be read.
fn extension_range_options(
    message: &MessageDescriptor,
    count: usize,
) -> Vec<Option<DynamicMessage>> {
    let mut out = vec![None; count];
    if count == 0
        || message
            .descriptor_proto()
            .extension_range
            .iter()
            .all(|r| r.options.is_none())
    {
        return out;
    }
    const FILE: &str = "google.protobuf.FileDescriptorProto";
    let Some(file_type) = message
        .parent_pool()
        .get_message_by_name(FILE)
        .or_else(|| DescriptorPool::global().get_message_by_name(FILE))
    else {
        return out;
    };
    let bytes = message.parent_file().encode_to_vec();
    let Ok(mut current) = DynamicMessage::decode(file_type, bytes.as_slice()) else {
        return out;
    };
    for pair in message.path().chunks(2) {
        let (Some(&field), Some(&index)) = (pair.first(), pair.get(1)) else {
            return out;
        };
        let next = nth_message(&current, field, index);
        let Some(next) = next else {
            return out;
        };
        current = next;
    }
    for (i, slot) in out.iter_mut().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        *slot = nth_message(&current, EXTENSION_RANGE, index).and_then(|range| {
            range
                .has_field_by_number(RANGE_OPTIONS)
                .then(|| range.get_field_by_number(RANGE_OPTIONS))
                .flatten()
                .and_then(|value| value.as_message().cloned())
        });
    }
    out
}

/// Element `index` of the repeated message field `field` of `message`.
fn nth_message(message: &DynamicMessage, field: i32, index: i32) -> Option<DynamicMessage> {
    let value = message.get_field_by_number(u32::try_from(field).ok()?)?;
    match value.as_ref() {
        Value::List(items) => items
            .get(usize::try_from(index).ok()?)?
            .as_message()
            .cloned(),
        _ => None,
    }
}
