//! One field or extension as a `.proto` line: its label as the file's syntax spells it, its
//! type, and in brackets what the descriptor holds beyond them (`default`, a `json_name` other
//! than the one derived from its name, and its options); a proto2 group as its block.

use super::message::write_body;
use super::options::{brackets, entries};
use super::text::{escape, escape_controls, Text};
use prost_reflect::prost_types::field_descriptor_proto::Label;
use prost_reflect::prost_types::FieldDescriptorProto;
use prost_reflect::{
    DynamicMessage, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor, Syntax,
};

/// A message's field or an extension: what a field line needs of either.
#[derive(Debug, Clone)]
pub(super) enum Member {
    /// A field of a message.
    Field(FieldDescriptor),
    /// An extension (declared in a file or inside a message).
    Extension(ExtensionDescriptor),
}

impl Member {
    fn proto(&self) -> &FieldDescriptorProto {
        match self {
            Member::Field(f) => f.field_descriptor_proto(),
            Member::Extension(e) => e.field_descriptor_proto(),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Member::Field(f) => f.kind(),
            Member::Extension(e) => e.kind(),
        }
    }

    fn options(&self) -> DynamicMessage {
        match self {
            Member::Field(f) => f.options(),
            Member::Extension(e) => e.options(),
        }
    }

    /// Where the member's comments are in its file's source info.
    pub(super) fn path(&self) -> &[i32] {
        match self {
            Member::Field(f) => f.path(),
            Member::Extension(e) => e.path(),
        }
    }

    fn syntax(&self) -> Syntax {
        match self {
            Member::Field(f) => f.parent_file().syntax(),
            Member::Extension(e) => e.parent_file().syntax(),
        }
    }

    fn is_map(&self) -> bool {
        matches!(self, Member::Field(f) if f.is_map())
    }

    /// The group's message, when the member is a proto2 group.
    pub(super) fn group(&self) -> Option<MessageDescriptor> {
        let is_group = match self {
            Member::Field(f) => f.is_group(),
            Member::Extension(e) => e.is_group(),
        };
        match self.kind() {
            Kind::Message(group) if is_group => Some(group),
            _ => None,
        }
    }
}

/// The label a member is written with: none in a oneof or for a map, `optional` on every
/// singular proto2 field and on a proto3 field with presence.
pub(super) fn label(member: &Member, in_oneof: bool) -> &'static str {
    let proto = member.proto();
    if in_oneof || member.is_map() {
        return "";
    }
    match proto.label() {
        Label::Repeated => "repeated ",
        Label::Required => "required ",
        Label::Optional if member.syntax() == Syntax::Proto2 || proto.proto3_optional() => {
            "optional "
        }
        Label::Optional => "",
    }
}

/// A type as a field line names it: a message or enum by its full name (a leading dot, so
/// that no scope can shadow it), a map as `map<K, V>`.
fn type_text(kind: &Kind, map: bool) -> String {
    match kind {
        Kind::Message(entry) if map => {
            let key = entry.map_entry_key_field().kind();
            let value = entry.map_entry_value_field().kind();
            format!(
                "map<{}, {}>",
                type_text(&key, false),
                type_text(&value, false)
            )
        }
        Kind::Message(message) => format!(".{}", message.full_name()),
        Kind::Enum(en) => format!(".{}", en.full_name()),
        kind => format!("{kind:?}").to_ascii_lowercase(),
    }
}

/// `json_name` as protoc derives it from a field's name (what it is unless declared).
fn default_json_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The bracket entries of a member: `default`, a declared `json_name`, then its options.
fn bracket_entries(member: &Member) -> Vec<String> {
    let proto = member.proto();
    let mut out = Vec::new();
    if let Some(value) = proto.default_value.as_deref() {
        let value = match member.kind() {
            Kind::String => format!("\"{}\"", escape(value)),
            // The descriptor holds bytes escaped already (C escapes, as protoc writes them);
            // a server may have left control characters raw in it.
            Kind::Bytes => format!("\"{}\"", escape_controls(value)),
            _ => value.to_owned(),
        };
        out.push(format!("default = {value}"));
    }
    if let Some(json) = proto.json_name.as_deref() {
        if matches!(member, Member::Field(_)) && json != default_json_name(proto.name()) {
            out.push(format!("json_name = \"{}\"", escape(json)));
        }
    }
    out.extend(entries(&member.options(), &[]));
    out
}

/// Writes one member at `indent` with `label`, its comments around it.
pub(super) fn write_member(text: &mut Text, member: &Member, label: &str, indent: &str) {
    text.leading(member.path(), indent);
    let proto = member.proto();
    let options = brackets(&bracket_entries(member));
    if let Some(group) = member.group() {
        // A parser files a group's comments under its message.
        text.leading(group.path(), indent);
        text.line(
            indent,
            &format!(
                "{label}group {} = {}{options} {{",
                group.name(),
                proto.number()
            ),
        );
        text.trailing(member.path(), &format!("{indent}  "));
        text.trailing(group.path(), &format!("{indent}  "));
        write_body(text, &group, indent);
        return;
    }
    text.line(
        indent,
        &format!(
            "{label}{} {} = {}{options};",
            type_text(&member.kind(), member.is_map()),
            proto.name(),
            proto.number()
        ),
    );
    text.trailing(member.path(), indent);
}
