//! An enum as `.proto` text: its values in declaration order (the first is the default, and
//! proto3 wants it to be zero), its options (`allow_alias` among them), each value's options in
//! brackets, and its reserved numbers and names.

use super::options::{brackets, entries};
use super::text::Text;
use prost_reflect::{EnumDescriptor, EnumValueDescriptor};

/// Writes `en` at `indent`, comments included.
pub(super) fn write_enum(text: &mut Text, en: &EnumDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    text.gap(indent);
    text.leading(en.path(), indent);
    text.line(indent, &format!("enum {} {{", en.name()));
    text.trailing(en.path(), &inner);
    for entry in entries(&en.options(), &[]) {
        text.line(&inner, &format!("option {entry};"));
    }
    for value in values_in_declared_order(en) {
        text.leading(value.path(), &inner);
        text.line(&inner, &value_line(&value));
        text.trailing(value.path(), &inner);
    }
    let reserved: Vec<String> = en
        .reserved_ranges()
        .map(|r| match (*r.start(), *r.end()) {
            (start, end) if start == end => start.to_string(),
            (start, i32::MAX) => format!("{start} to max"),
            (start, end) => format!("{start} to {end}"),
        })
        .collect();
    if !reserved.is_empty() {
        text.line(&inner, &format!("reserved {};", reserved.join(", ")));
    }
    let names: Vec<String> = en.reserved_names().map(|n| format!("\"{n}\"")).collect();
    if !names.is_empty() {
        text.line(&inner, &format!("reserved {};", names.join(", ")));
    }
    text.line(indent, "}");
}

/// `NAME = 1 [options];`
pub(super) fn value_line(value: &EnumValueDescriptor) -> String {
    format!(
        "{} = {}{};",
        value.name(),
        value.number(),
        brackets(&entries(&value.options(), &[]))
    )
}

/// An enum's values in declared order, which `values()` (by number) is not.
fn values_in_declared_order(en: &EnumDescriptor) -> Vec<EnumValueDescriptor> {
    en.enum_descriptor_proto()
        .value
        .iter()
        .filter_map(|v| en.get_value_by_name(v.name()))
        .collect()
}
