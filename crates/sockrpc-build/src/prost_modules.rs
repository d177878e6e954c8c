//! The module names a package's service modules must stay clear of.
//!
//! A message with nested messages, nested enums or a `oneof` gets a module named after it
//! (`message EchoClient { oneof via { .. } }` → `pub mod echo_client { pub enum Via { .. } }`).
//! The service generator writes its `<service>_client` / `<service>_server` modules into the
//! same file, so a service `Echo` next to a message `EchoClient` with a oneof would declare
//! `echo_client` twice and fail to compile.
//!
//! A child package is a module inside its parent's too: prost-build's include file nests
//! package `a.foo_server` as `pub mod a { include!("a.rs"); pub mod foo_server { .. } }`, and
//! so does anyone nesting the files by hand, so a service `Foo` in package `a` would declare
//! `a::foo_server` a second time (tonic-build's modules collide there).
//!
//! The generator asks this module which names are taken and steers around them (see
//! [`crate::names::ServiceNames::avoiding`]); the package modules keep prost-build's names.

use std::collections::{HashMap, HashSet};

use prost_types::{DescriptorProto, FileDescriptorSet};

/// Per package, keyed by [`package_key`], the module names declared at the package's top level
/// by prost-build for its messages and by the include file for its child packages.
pub(crate) type PackageModules = HashMap<String, HashSet<String>>;

/// The key of `package` in [`PackageModules`]: its Rust module path as prost-build writes it
/// (`""` for files without a package), so packages sharing a module (`My.Api` and `my.api`)
/// share their names.
pub(crate) fn package_key(package: &str) -> String {
    prost_build::Module::from_protobuf_package_name(package)
        .parts()
        .collect::<Vec<_>>()
        .join(".")
}

/// The top-level module names of every package in `fds` (the files and their imports, all of
/// which prost-build generates): message modules and child packages. A package prost-build
/// writes no code for (extensions only, or every type under one of `extern_paths`; `services`:
/// whether services generate code) is no module: it takes no name from its parent.
pub(crate) fn taken_modules(
    fds: &FileDescriptorSet,
    extern_paths: &[&str],
    services: bool,
) -> PackageModules {
    let mut modules = PackageModules::new();
    for file in &fds.file {
        let taken = modules.entry(package_key(file.package())).or_default();
        for message in file.message_type.iter().filter(|m| has_module(m)) {
            taken.insert(crate::names::prost_snake(message.name()));
        }
        if !crate::module_names::generates_code(file, extern_paths, services) {
            continue;
        }
        // Every ancestor (the root included) holds the next part of the path as a module.
        let module = prost_build::Module::from_protobuf_package_name(file.package());
        let parts: Vec<&str> = module.parts().collect();
        for (depth, part) in parts.iter().enumerate() {
            modules
                .entry(parts[..depth].join("."))
                .or_default()
                .insert((*part).to_owned());
        }
    }
    modules
}

/// Whether prost-build wraps `message`'s nested items in a module: it has a nested enum, a
/// nested message other than a map entry, or a real (not proto3 `optional`) oneof. This is
/// prost-build's own condition (`CodeGenerator::append_message`).
pub(crate) fn has_module(message: &DescriptorProto) -> bool {
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
        let modules = taken_modules(&fds, &[], true);
        let pkg: HashSet<String> = ["echo_server", "echo_client"].map(String::from).into();
        assert_eq!(modules["pkg"], pkg);
        // No package, and prost's keyword escaping; the package `pkg` is a module there too.
        assert_eq!(
            modules[""],
            HashSet::from(["r#type".to_owned(), "pkg".to_owned()])
        );
    }

    #[test]
    fn child_packages_take_their_module_name_in_every_ancestor() {
        let file = |package: &str| FileDescriptorProto {
            name: Some(format!("{package}.proto")),
            package: Some(package.to_owned()),
            message_type: vec![DescriptorProto {
                name: Some("Thing".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let fds = FileDescriptorSet {
            file: vec![file("a"), file("a.foo_server.v1"), file("A.FooClient")],
        };
        let modules = taken_modules(&fds, &[], true);
        assert_eq!(modules[""], HashSet::from(["a".to_owned()]));
        // `A.FooClient` is the module `a::foo_client`, so it counts in `a`, under `a`'s key.
        let a: HashSet<String> = ["foo_server", "foo_client"].map(String::from).into();
        assert_eq!(modules["a"], a);
        assert_eq!(modules["a.foo_server"], HashSet::from(["v1".to_owned()]));
        assert_eq!(package_key("A.FooClient"), "a.foo_client");
        assert_eq!(package_key("kw.type"), "kw.r#type");
        assert_eq!(package_key(""), "");
    }

    #[test]
    fn a_package_prost_writes_no_code_for_takes_no_name() {
        let thing = DescriptorProto {
            name: Some("Thing".to_owned()),
            ..Default::default()
        };
        let file = |package: &str, messages: Vec<DescriptorProto>| FileDescriptorProto {
            name: Some(format!("{package}.proto")),
            package: Some(package.to_owned()),
            message_type: messages,
            ..Default::default()
        };
        // `ext.foo_server` under an extern path, `ext2.foo_server` with extensions only.
        let fds = FileDescriptorSet {
            file: vec![
                file("ext", vec![thing.clone()]),
                file("ext.foo_server", vec![thing]),
                file("ext2.foo_server", Vec::new()),
            ],
        };
        let modules = taken_modules(&fds, &[".ext.foo_server"], true);
        assert!(
            modules.get("ext").is_none_or(HashSet::is_empty),
            "{modules:?}"
        );
        assert!(!modules.contains_key("ext2"), "{modules:?}");
        let modules = taken_modules(&fds, &[], true);
        assert_eq!(modules["ext"], HashSet::from(["foo_server".to_owned()]));
    }
}
