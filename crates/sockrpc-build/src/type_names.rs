//! Proto types that prost-build would give the same Rust name in one module.
//!
//! Proto names are case-sensitive and Rust names are made from them by prost-build's case
//! conversion, so `message M` and `message m` in one package are two types to `protoc` and
//! `protox` but both `pub struct M` to rustc; so are a nested `enum KindOneOf` and a `oneof kind`
//! beside a nested `Kind` (prost-build names that oneof's enum `KindOneOf`, so a `oneof kind`
//! and a nested `Kind` alone do not clash). prost-build writes both
//! without complaint and the user's crate fails at its `include!` with `E0428`, pointing at
//! generated code. Checked here first, the build script fails instead, naming both proto
//! types and the Rust name they share.

use heck::ToUpperCamelCase;
use prost_types::{DescriptorProto, FileDescriptorSet};
use std::collections::HashMap;

use crate::names::{prost_snake, prost_upper_camel};
use crate::prost_modules::package_key;

/// Every clash in `fds` (the files and their imports, all of which prost-build generates),
/// as a message naming both proto types; types under one of `extern_paths` (proto paths such
/// as `.my.pkg`, which prost-build does not generate) and the well-known types are left out.
pub(crate) fn clashes(fds: &FileDescriptorSet, extern_paths: &[&str]) -> Vec<String> {
    let mut seen = Seen {
        names: HashMap::new(),
        clashes: Vec::new(),
    };
    for file in &fds.file {
        let package = file.package();
        let module = package_key(package);
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!(".{package}")
        };
        for message in &file.message_type {
            seen.message(&module, &prefix, message, extern_paths);
        }
        for item in &file.enum_type {
            let full = format!("{prefix}.{}", item.name());
            if !external(&full, extern_paths) {
                seen.add(&module, &camel(item.name()), full, "enum");
            }
        }
    }
    seen.clashes
}

/// The Rust names met so far, per module, and the clashes found.
struct Seen {
    /// Keyed by module path (`a.b` for a package, `a.b/m` for the module of its message `M`)
    /// and Rust name: the proto type that took the name, and its kind.
    names: HashMap<(String, String), (String, &'static str)>,
    clashes: Vec<String>,
}

impl Seen {
    /// Records `message` (full name `prefix.name`) in `module`, and its nested items in its
    /// own module.
    fn message(
        &mut self,
        module: &str,
        prefix: &str,
        message: &DescriptorProto,
        extern_paths: &[&str],
    ) {
        let full = format!("{prefix}.{}", message.name());
        if external(&full, extern_paths) {
            return;
        }
        self.add(module, &camel(message.name()), full.clone(), "message");
        // A message's module is keyed apart from a package's: where a message `a.B` with nested
        // items and a package `a.b` are one module `a::b`, `module_names.rs` tells (or allows,
        // when the two may be mounted apart), not a clash of each pair of their types.
        let inner = format!("{module}/{}", prost_snake(message.name()));
        for nested in &message.nested_type {
            if !nested.options.as_ref().is_some_and(|o| o.map_entry()) {
                self.message(&inner, &full, nested, extern_paths);
            }
        }
        for item in &message.enum_type {
            self.add(
                &inner,
                &camel(item.name()),
                format!("{full}.{}", item.name()),
                "enum",
            );
        }
        // A real oneof becomes an enum in the message's module; a proto3 `optional` field's
        // synthetic oneof does not.
        for (index, oneof) in message.oneof_decl.iter().enumerate() {
            let real = message.field.iter().any(|field| {
                field.oneof_index == i32::try_from(index).ok() && !field.proto3_optional()
            });
            if real {
                let name = format!("{full}.{}", oneof.name());
                self.add(&inner, &oneof_type(message, oneof.name()), name, "oneof");
            }
        }
    }

    /// Records that `proto` (a `kind`) becomes `rust` in `module`: a clash if another did.
    fn add(&mut self, module: &str, rust: &str, proto: String, kind: &'static str) {
        let key = (module.to_owned(), rust.to_owned());
        match self.names.get(&key) {
            Some((other, other_kind)) if *other != proto => {
                let path = if module.is_empty() {
                    rust.to_owned()
                } else {
                    let module = module.trim_start_matches('/').replace(['.', '/'], "::");
                    format!("{module}::{rust}")
                };
                self.clashes.push(format!(
                    "{other_kind} `{}` and {kind} `{}` both become the Rust type `{path}` \
                     (prost-build's names are case-converted): rename one of them",
                    other.trim_start_matches('.'),
                    proto.trim_start_matches('.'),
                ));
            }
            Some(_) => {}
            None => {
                self.names.insert(key, (proto, kind));
            }
        }
    }
}

/// prost-build's UpperCamelCase for a type name (its `to_upper_camel`).
fn camel(proto_name: &str) -> String {
    let ident = proto_name.to_upper_camel_case();
    if ident == "Self" {
        "Self_".to_owned()
    } else {
        ident
    }
}

/// prost-build's name for the enum of the oneof `oneof_name` of `message`: its UpperCamelCase,
/// with `OneOf` appended when a type nested in `message` (a map entry too) has that name too,
/// as prost-build's `OneofField::type_name` does (`message Bakery { message Bread {} oneof
/// bread { .. } }` → `bakery::Bread` and `bakery::BreadOneOf`).
pub(crate) fn oneof_type(message: &DescriptorProto, oneof_name: &str) -> String {
    let name = prost_upper_camel(oneof_name);
    let nested = message.nested_type.iter().map(DescriptorProto::name);
    let enums = message.enum_type.iter().map(|item| item.name());
    if nested
        .chain(enums)
        .any(|type_name| prost_upper_camel(type_name) == name)
    {
        format!("{name}OneOf")
    } else {
        name
    }
}

/// Whether prost-build maps the type `full` to a Rust path instead of generating it: the
/// well-known types, and what `extern_paths` cover.
pub(crate) fn external(full: &str, extern_paths: &[&str]) -> bool {
    [".google.protobuf"].iter().chain(extern_paths).any(|path| {
        full.strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{
        EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto, OneofDescriptorProto,
    };

    fn message(name: &str) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.to_owned()),
            ..Default::default()
        }
    }

    fn file(package: &str, messages: Vec<DescriptorProto>) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(format!("{package}.proto")),
            package: Some(package.to_owned()),
            message_type: messages,
            ..Default::default()
        }
    }

    fn set(files: Vec<FileDescriptorProto>) -> FileDescriptorSet {
        FileDescriptorSet { file: files }
    }

    #[test]
    fn names_differing_only_in_case_clash() {
        let fds = set(vec![file("a.b", vec![message("M"), message("m")])]);
        let found = clashes(&fds, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`a.b.M`") && found[0].contains("`a.b.m`"));
        assert!(found[0].contains("`a::b::M`"), "{}", found[0]);
    }

    #[test]
    fn the_same_name_in_two_packages_or_two_messages_does_not() {
        let mut outer = message("Outer");
        outer.nested_type.push(message("Inner"));
        let mut other = message("Other");
        other.nested_type.push(message("Inner"));
        let fds = set(vec![
            file("a", vec![message("M"), outer, other]),
            file("b", vec![message("M")]),
        ]);
        assert_eq!(clashes(&fds, &[]), Vec::<String>::new());
    }

    #[test]
    fn a_oneof_named_like_a_nested_type_is_renamed_not_refused() {
        let mut m = message("Shape");
        m.oneof_decl.push(OneofDescriptorProto {
            name: Some("kind".to_owned()),
            ..Default::default()
        });
        m.field.push(FieldDescriptorProto {
            name: Some("circle".to_owned()),
            oneof_index: Some(0),
            ..Default::default()
        });
        m.enum_type.push(EnumDescriptorProto {
            name: Some("Kind".to_owned()),
            ..Default::default()
        });
        // prost-build names the oneof's enum `KindOneOf`, beside the enum `Kind`.
        assert_eq!(oneof_type(&m, "kind"), "KindOneOf");
        assert_eq!(oneof_type(&m, "other"), "Other");
        assert_eq!(
            clashes(&set(vec![file("geo", vec![m.clone()])]), &[]).len(),
            0
        );
        // A nested type named as the renamed enum does clash with it.
        m.nested_type.push(message("KindOneOf"));
        let found = clashes(&set(vec![file("geo", vec![m.clone()])]), &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("`geo::shape::KindOneOf`"), "{}", found[0]);
        // A proto3 `optional` field's synthetic oneof is no enum.
        m.field[0].proto3_optional = Some(true);
        assert_eq!(clashes(&set(vec![file("geo", vec![m])]), &[]).len(), 0);
    }

    #[test]
    fn packages_sharing_a_module_and_extern_paths() {
        // `My.Api` and `my.api` are one module to prost-build.
        let fds = set(vec![
            file("My.Api", vec![message("Thing")]),
            file("my.api", vec![message("thing")]),
        ]);
        assert_eq!(clashes(&fds, &[]).len(), 1);
        assert_eq!(clashes(&fds, &[".my.api"]).len(), 0);
    }
}
