//! The modules prost-build itself declares at the top of each package's file.
//!
//! A message with nested messages, nested enums or a `oneof` gets a module named after it
//! (`message EchoClient { oneof via { .. } }` → `pub mod echo_client { pub enum Via { .. } }`).
//! The service generator writes its `<service>_client` / `<service>_server` modules into the
//! same file, so a service `Echo` next to a message `EchoClient` with a oneof would declare
//! `echo_client` twice and fail to compile. The generator asks this module which names are
//! taken and steers around them (see [`crate::names::ServiceNames::avoiding`]).

use std::collections::{HashMap, HashSet};

use prost_types::{DescriptorProto, FileDescriptorSet};

/// Per proto package (`""` for files without one), the module names prost-build declares at
/// the package's top level for its messages.
pub(crate) type PackageModules = HashMap<String, HashSet<String>>;

/// The top-level message modules prost-build will generate for every package in `fds`.
pub(crate) fn message_modules(fds: &FileDescriptorSet) -> PackageModules {
    let mut modules = PackageModules::new();
    for file in &fds.file {
        let taken = modules.entry(file.package().to_owned()).or_default();
        for message in file.message_type.iter().filter(|m| has_module(m)) {
            taken.insert(crate::names::prost_snake(message.name()));
        }
    }
    modules
}

/// Whether prost-build wraps `message`'s nested items in a module: it has a nested enum, a
/// nested message other than a map entry, or a real (not proto3 `optional`) oneof. This is
/// prost-build's own condition (`CodeGenerator::append_message`).
fn has_module(message: &DescriptorProto) -> bool {
    let nested_message = message
        .nested_type
        .iter()
        .any(|nested| !nested.options.as_ref().is_some_and(|o| o.map_entry()));
    // A oneof prost-build generates an enum for is one that a non-`optional` field belongs to;
    // proto3 `optional` fields each sit alone in a synthetic oneof that gets no enum.
    let real_oneof = message
        .field
        .iter()
        .any(|field| field.oneof_index.is_some() && !field.proto3_optional());
    !message.enum_type.is_empty() || nested_message || real_oneof
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{
        EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, MessageOptions,
        OneofDescriptorProto,
    };

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.to_owned()),
            ..Default::default()
        }
    }

    fn field_in_oneof(synthetic: bool) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some("f".to_owned()),
            oneof_index: Some(0),
            proto3_optional: Some(synthetic),
            ..Default::default()
        }
    }

    #[test]
    fn only_messages_with_nested_items_take_a_module_name() {
        let plain = message("Plain");
        let mut with_enum = message("EchoServer");
        with_enum.enum_type.push(EnumDescriptorProto::default());
        let mut with_oneof = message("EchoClient");
        with_oneof.oneof_decl.push(OneofDescriptorProto::default());
        with_oneof.field.push(field_in_oneof(false));
        let mut with_optional = message("Optional");
        with_optional
            .oneof_decl
            .push(OneofDescriptorProto::default());
        with_optional.field.push(field_in_oneof(true));
        let mut with_map = message("WithMap");
        let mut entry = message("EntriesEntry");
        entry.options = Some(MessageOptions {
            map_entry: Some(true),
            ..Default::default()
        });
        with_map.nested_type.push(entry);
        let mut with_nested = message("type");
        with_nested.nested_type.push(message("Inner"));

        let fds = FileDescriptorSet {
            file: vec![
                FileDescriptorProto {
                    name: Some("a.proto".to_owned()),
                    package: Some("pkg".to_owned()),
                    message_type: vec![plain, with_enum, with_oneof, with_optional, with_map],
                    ..Default::default()
                },
                FileDescriptorProto {
                    name: Some("b.proto".to_owned()),
                    message_type: vec![with_nested],
                    ..Default::default()
                },
            ],
        };
        let modules = message_modules(&fds);
        let pkg: HashSet<String> = ["echo_server", "echo_client"].map(String::from).into();
        assert_eq!(modules["pkg"], pkg);
        // No package, and prost's keyword escaping.
        assert_eq!(modules[""], HashSet::from(["r#type".to_owned()]));
    }
}
