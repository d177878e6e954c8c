//! A message as `.proto` text, written so that compiling the text gives back its descriptor:
//! every list of the descriptor keeps its order. Fields, `oneof`s and `extend` blocks go in
//! declaration order; a map field or a group declares a nested message where it stands, so an
//! explicitly nested message is written between the fields just where the descriptor's
//! `nested_type` list puts it. The same ordering serves a file's top level (its extensions and
//! messages).

use super::enums::write_enum;
use super::field::{label, write_member, Member};
use super::options::write_statements;
use super::ranges::write_message_ranges;
use super::text::Text;
use prost_reflect::{ExtensionDescriptor, MessageDescriptor, OneofDescriptor};
use std::collections::HashMap;

/// Path of a message's extensions in its `DescriptorProto` (the field number).
const EXTENSION: i32 = 6;

/// Path of a message's options in its `DescriptorProto`.
const MESSAGE_OPTIONS: i32 = 7;

/// Path of a oneof's options in its `OneofDescriptorProto`.
const ONEOF_OPTIONS: i32 = 2;

/// Writes `message` at `indent`, comments included.
pub(super) fn write_message(text: &mut Text, message: &MessageDescriptor, indent: &str) {
    text.gap(indent);
    text.leading(message.path(), indent);
    text.line(indent, &format!("message {} {{", message.name()));
    text.trailing(message.path(), &format!("{indent}  "));
    write_body(text, message, indent);
}

/// What `write_message` writes after the `message Name {` line, closing brace included.
pub(super) fn write_body(text: &mut Text, message: &MessageDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    let options_path = [message.path(), &[MESSAGE_OPTIONS]].concat();
    write_statements(
        text,
        &message.options(),
        &["map_entry"],
        &options_path,
        &inner,
    );
    let proto = message.descriptor_proto();
    let fields: Vec<Member> = proto
        .field
        .iter()
        .filter_map(|f| message.get_field(u32::try_from(f.number?).ok()?))
        .map(Member::Field)
        .collect();
    let extensions: Vec<ExtensionDescriptor> = message.child_extensions().collect();
    let nested: Vec<MessageDescriptor> = message.child_messages().collect();
    let extend_path = [message.path(), &[EXTENSION]].concat();
    write_scope(text, &fields, &extensions, &nested, &extend_path, &inner);
    for en in message.child_enums() {
        write_enum(text, &en, &inner);
    }
    write_message_ranges(text, message, &inner);
    text.line(indent, "}");
}

/// What one statement of a scope writes: a field, a `oneof` block, or an `extend` block.
enum Unit {
    Field(Member),
    Oneof(OneofDescriptor),
    Extend(Vec<ExtensionDescriptor>),
}

/// A unit and the indices (into its list, fields or extensions) of its first and last member.
struct Span {
    first: usize,
    last: usize,
    unit: Unit,
}

/// Which list declares a nested message: a map field's entry or a group's message.
#[derive(Clone, Copy)]
enum Owner {
    Field(usize),
    Extension(usize),
}

/// Writes the fields, extensions and nested messages of a scope (a message's, or a file's top
/// level with no fields) at `indent`, each list in its order; `extend_path` is where the
/// comments of the scope's `extend` blocks are.
pub(super) fn write_scope(
    text: &mut Text,
    fields: &[Member],
    extensions: &[ExtensionDescriptor],
    nested: &[MessageDescriptor],
    extend_path: &[i32],
    indent: &str,
) {
    let mut owners: HashMap<String, Owner> = HashMap::new();
    for (i, field) in fields.iter().enumerate() {
        if let Member::Field(f) = field {
            if let (true, prost_reflect::Kind::Message(entry)) = (f.is_map(), f.kind()) {
                owners.insert(entry.full_name().to_owned(), Owner::Field(i));
            }
        }
        if let Some(group) = field.group() {
            owners.insert(group.full_name().to_owned(), Owner::Field(i));
        }
    }
    for (i, extension) in extensions.iter().enumerate() {
        if let Some(group) = Member::Extension(extension.clone()).group() {
            owners.insert(group.full_name().to_owned(), Owner::Extension(i));
        }
    }
    let mut field_units = field_spans(fields).into_iter().peekable();
    let mut extension_units = extension_spans(extensions).into_iter().peekable();
    let mut pending: Vec<&MessageDescriptor> = Vec::new();
    for message in nested {
        let Some(&owner) = owners.get(message.full_name()) else {
            pending.push(message);
            continue;
        };
        let (units, at) = match owner {
            Owner::Field(at) => (&mut field_units, at),
            Owner::Extension(at) => (&mut extension_units, at),
        };
        if !pending.is_empty() {
            while let Some(span) = units.next_if(|s| s.last < at) {
                write_unit(text, span.unit, extend_path, indent);
            }
            for message in pending.drain(..) {
                write_message(text, message, indent);
            }
        }
        while let Some(span) = units.next_if(|s| s.first <= at) {
            write_unit(text, span.unit, extend_path, indent);
        }
    }
    for span in field_units.chain(extension_units) {
        write_unit(text, span.unit, extend_path, indent);
    }
    for message in pending {
        write_message(text, message, indent);
    }
}

/// A scope's fields as units: a real `oneof` as one block where its first member stands (its
/// members are contiguous when compiled from text; a member found apart from the others, in a
/// descriptor made otherwise, is already in the block).
fn field_spans(fields: &[Member]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut oneofs: Vec<OneofDescriptor> = Vec::new();
    for (i, member) in fields.iter().enumerate() {
        let oneof = match member {
            Member::Field(f) => f.containing_oneof().filter(|o| !o.is_synthetic()),
            Member::Extension(_) => None,
        };
        let open = matches!(spans.last(), Some(Span { unit: Unit::Oneof(o), .. }) if Some(o) == oneof.as_ref());
        if let Some(oneof) = &oneof {
            if !open && oneofs.contains(oneof) {
                continue;
            }
            oneofs.push(oneof.clone());
        }
        match oneof {
            Some(oneof) => match spans.last_mut() {
                Some(Span {
                    unit: Unit::Oneof(last),
                    last: end,
                    ..
                }) if last.name() == oneof.name() => *end = i,
                _ => spans.push(Span {
                    first: i,
                    last: i,
                    unit: Unit::Oneof(oneof),
                }),
            },
            None => spans.push(Span {
                first: i,
                last: i,
                unit: Unit::Field(member.clone()),
            }),
        }
    }
    spans
}

/// A scope's extensions as `extend` blocks: a run of one extendee, ended after a group (so
/// that a message declared between two groups can stand between them).
fn extension_spans(extensions: &[ExtensionDescriptor]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut open = false;
    for (i, extension) in extensions.iter().enumerate() {
        let extendee = extension.containing_message();
        match spans.last_mut() {
            Some(Span {
                unit: Unit::Extend(run),
                last,
                ..
            }) if open
                && run
                    .first()
                    .is_some_and(|e| e.containing_message() == extendee) =>
            {
                run.push(extension.clone());
                *last = i;
            }
            _ => spans.push(Span {
                first: i,
                last: i,
                unit: Unit::Extend(vec![extension.clone()]),
            }),
        }
        open = !extension.is_group();
    }
    spans
}

fn write_unit(text: &mut Text, unit: Unit, extend_path: &[i32], indent: &str) {
    match unit {
        Unit::Field(member) => {
            let label = label(&member, false);
            write_member(text, &member, label, indent);
        }
        Unit::Oneof(oneof) => write_oneof(text, &oneof, indent),
        Unit::Extend(run) => {
            let Some(extendee) = run.first().map(|e| e.containing_message()) else {
                return;
            };
            text.gap(indent);
            text.extend_block(extend_path, indent);
            text.line(indent, &format!("extend .{} {{", extendee.full_name()));
            let inner = format!("{indent}  ");
            for extension in run {
                let member = Member::Extension(extension);
                let label = label(&member, false);
                write_member(text, &member, label, &inner);
            }
            text.line(indent, "}");
        }
    }
}

/// Writes a real `oneof` block with its options and members.
pub(super) fn write_oneof(text: &mut Text, oneof: &OneofDescriptor, indent: &str) {
    let inner = format!("{indent}  ");
    text.leading(oneof.path(), indent);
    text.line(indent, &format!("oneof {} {{", oneof.name()));
    text.trailing(oneof.path(), &inner);
    let options_path = [oneof.path(), &[ONEOF_OPTIONS]].concat();
    write_statements(text, &oneof.options(), &[], &options_path, &inner);
    for member in oneof.fields() {
        write_member(text, &Member::Field(member), "", &inner);
    }
    text.line(indent, "}");
}
