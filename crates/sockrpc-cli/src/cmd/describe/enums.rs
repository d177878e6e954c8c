//! An enum as `.proto` text: its values in declaration order (the first is the default, and
//! proto3 wants it to be zero), its options (`allow_alias` among them), each value's options in
//! brackets, and its reserved numbers and names.

use super::options::{brackets, entries, write_statements};
use super::ranges::write_enum_reserved;
use super::text::Text;
use prost_reflect::{EnumDescriptor, EnumValueDescriptor};

/// Path of an enum's options in its `EnumDescriptorProto` (the field number).
const ENUM_OPTIONS: i32 = 3;

/// Writes `en` at `indent`, comments included.
pub(super) fn write_enum(text: &mut Text, en: &EnumDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    text.gap(indent);
    text.leading(en.path(), indent);
    text.line(indent, &format!("enum {} {{", en.name()));
    text.trailing(en.path(), &inner);
    let options_path = [en.path(), &[ENUM_OPTIONS]].concat();
    write_statements(text, &en.options(), &[], &options_path, &inner);
    for value in values_in_declared_order(en) {
        text.leading(value.path(), &inner);
        text.line(&inner, &value_line(&value));
        text.trailing(value.path(), &inner);
    }
    write_enum_reserved(text, en, &inner);
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
