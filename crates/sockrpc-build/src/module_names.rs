//! A message's module that is also a child package's module.
//!
//! prost-build declares `pub mod b` in package `a`'s file for a message `B` with nested types,
//! an enum or a oneof, and a package `a.b` is `a::b` too: its include file nests it as
//! `pub mod a { include!("a.rs"); pub mod b { include!("a.b.rs"); } }`, which rustc refuses
//! with `E0428` (as it does when the files are nested by hand that way). Mounted elsewhere by
//! hand, the two still meet where package `a` names a type of `a.b` (or below): prost-build
//! writes `b::D`, which resolves into the message's module. Checked here first, the build
//! fails with an error naming the message, its file and the package. A package `a.b` that `a`
//! never names, built without an include file, may be mounted apart and is left alone; so is
//! one prost-build writes no code for (extensions only, or every type under an `extern_path`),
//! which it leaves out of the include file.

use std::collections::HashMap;

use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::names::prost_snake;
use crate::prost_modules::{has_module, package_key};
use crate::type_names::external;

/// Every message of `fds` whose module is also a child package's, one message each, when
/// `include_file` nests the packages or the parent package names a type of the child's;
/// messages under `extern_paths` and the well-known types are not generated and left out.
/// `services` says whether services generate code (a client or a server is built).
pub(crate) fn clashes(
    fds: &FileDescriptorSet,
    extern_paths: &[&str],
    include_file: bool,
    services: bool,
) -> Vec<String> {
    // Child package modules: by (parent module key, module name), a package that makes it.
    let mut children: HashMap<(String, String), &str> = HashMap::new();
    // The module key of the package defining each type, by full proto name (`.a.b.D`).
    let mut defined_in: HashMap<String, String> = HashMap::new();
    for file in &fds.file {
        let key = package_key(file.package());
        let parts: Vec<&str> = if key.is_empty() {
            Vec::new()
        } else {
            key.split('.').collect()
        };
        // prost-build leaves a package it writes no code for out of the include file (its
        // modules are nested only for a descendant that has code), and it has no type to name.
        if generates_code(file, extern_paths, services) {
            for depth in 1..=parts.len() {
                let module = (parts[..depth - 1].join("."), parts[depth - 1].to_owned());
                children.entry(module).or_insert(file.package());
            }
        }
        let prefix = scope(file);
        for message in &file.message_type {
            types(&prefix, message, &key, &mut defined_in);
        }
        for item in &file.enum_type {
            defined_in.insert(format!("{prefix}.{}", item.name()), key.clone());
        }
    }
    let mut found = Vec::new();
    for file in &fds.file {
        let key = package_key(file.package());
        let prefix = scope(file);
        for message in &file.message_type {
            let full = format!("{prefix}.{}", message.name());
            if !has_module(message) || external(&full, extern_paths) {
                continue;
            }
            let module = prost_snake(message.name());
            let Some(package) = children.get(&(key.clone(), module.clone())) else {
                continue;
            };
            let child = if key.is_empty() {
                module.clone()
            } else {
                format!("{key}.{module}")
            };
            let named = || {
                fds.file
                    .iter()
                    .filter(|f| package_key(f.package()) == key)
                    .flat_map(referenced)
                    .filter(|name| !external(name, extern_paths))
                    .any(|name| {
                        defined_in
                            .get(name)
                            .is_some_and(|at| at == &child || at.starts_with(&format!("{child}.")))
                    })
            };
            if include_file || named() {
                found.push(format!(
                    "{}: message `{}` has nested items, so prost-build declares the module \
                     `{}`, and so is package `{package}` (a child package is a module inside \
                     its parent): rename the message or the package",
                    file.name(),
                    full.trim_start_matches('.'),
                    child.replace('.', "::"),
                ));
            }
        }
    }
    found
}

/// Whether prost-build writes any code for `file`: a message or enum not under `extern_paths`
/// (nor a well-known type), or a service when `services` generate code. A file of extensions
/// or options only, or of types mapped elsewhere, writes none.
pub(crate) fn generates_code(
    file: &FileDescriptorProto,
    extern_paths: &[&str],
    services: bool,
) -> bool {
    let prefix = scope(file);
    let names = file.message_type.iter().map(DescriptorProto::name);
    let enums = file.enum_type.iter().map(|item| item.name());
    (services && !file.service.is_empty())
        || names
            .chain(enums)
            .any(|name| !external(&format!("{prefix}.{name}"), extern_paths))
}

/// `.package` of `file`, or nothing if it has none: the prefix of its full type names.
fn scope(file: &FileDescriptorProto) -> String {
    match file.package() {
        "" => String::new(),
        package => format!(".{package}"),
    }
}

/// Records `message` (in scope `prefix`) and its nested types as defined in `key`.
fn types(prefix: &str, message: &DescriptorProto, key: &str, into: &mut HashMap<String, String>) {
    let full = format!("{prefix}.{}", message.name());
    for item in &message.enum_type {
        into.insert(format!("{full}.{}", item.name()), key.to_owned());
    }
    for nested in &message.nested_type {
        types(&full, nested, key, into);
    }
    into.insert(full, key.to_owned());
}

/// The full names of the types `file` refers to: field types and rpc inputs and outputs.
fn referenced(file: &FileDescriptorProto) -> Vec<&str> {
    fn fields<'a>(message: &'a DescriptorProto, into: &mut Vec<&'a str>) {
        into.extend(message.field.iter().filter_map(|f| f.type_name.as_deref()));
        for nested in &message.nested_type {
            fields(nested, into);
        }
    }
    let mut names = Vec::new();
    for message in &file.message_type {
        fields(message, &mut names);
    }
    for service in &file.service {
        for method in &service.method {
            names.extend([method.input_type(), method.output_type()]);
        }
    }
    names
}
