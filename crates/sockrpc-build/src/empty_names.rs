//! Proto names prost-build turns into no Rust identifier at all.
//!
//! A proto identifier may be nothing but underscores (`message _ {}`, `int32 __ = 1;`,
//! `package a._;`), but prost-build's case conversion drops every underscore, leaving an empty
//! name: it then panics parsing its own output (`syn::parse_file(..).unwrap()` in its
//! `Config::generate`), or, for a package, writes `pub mod  { include!("a..rs"); }` into the
//! include file and a hidden `.rs` for `package _;`, which rustc refuses. Checked here first,
//! the build fails with an error naming the file and the proto name. Services and rpcs are not
//! checked: the service generator gives such names an identifier of its own
//! ([`crate::names::sanitize`]); nor are enum aliases (a number already used), to which
//! prost-build gives no variant.

use std::collections::HashSet;

use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::type_names::external;

/// One message per name in `fds` that prost-build would make empty; types and packages under
/// `extern_paths` and the well-known types are not generated and left out.
pub(crate) fn empty_names(fds: &FileDescriptorSet, extern_paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in &fds.file {
        let package = file.package();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!(".{package}")
        };
        if external(&prefix, extern_paths) && !prefix.is_empty() {
            continue;
        }
        let mut report = |kind: &str, full: &str| {
            found.push(format!(
                "{}: {kind} `{}` is named with underscores only, which prost-build turns into \
                 an empty Rust identifier: rename it",
                file.name(),
                full.trim_start_matches('.')
            ));
        };
        if package.split('.').any(underscores_only) {
            report("package", package);
        }
        for item in &file.enum_type {
            let full = format!("{prefix}.{}", item.name());
            if !external(&full, extern_paths) {
                check_enum(&full, item, &mut report);
            }
        }
        for message in &file.message_type {
            check_message(&prefix, message, extern_paths, &mut report);
        }
    }
    found
}

/// Reports `message` (in scope `prefix`), its fields, oneofs and nested types.
fn check_message(
    prefix: &str,
    message: &DescriptorProto,
    extern_paths: &[&str],
    report: &mut impl FnMut(&str, &str),
) {
    let full = format!("{prefix}.{}", message.name());
    if external(&full, extern_paths) {
        return;
    }
    if underscores_only(message.name()) {
        report("message", &full);
    }
    for field in &message.field {
        if underscores_only(field.name()) {
            report("field", &format!("{full}.{}", field.name()));
        }
    }
    for oneof in &message.oneof_decl {
        if underscores_only(oneof.name()) {
            report("oneof", &format!("{full}.{}", oneof.name()));
        }
    }
    for item in &message.enum_type {
        check_enum(&format!("{full}.{}", item.name()), item, report);
    }
    for nested in &message.nested_type {
        // A map field's entry is no Rust type; its field was checked above.
        if !nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            check_message(&full, nested, extern_paths, report);
        }
    }
}

/// Reports the enum `full` and its values.
fn check_enum(
    full: &str,
    item: &prost_types::EnumDescriptorProto,
    report: &mut impl FnMut(&str, &str),
) {
    if underscores_only(item.name()) {
        report("enum", full);
    }
    // prost-build skips a value whose number an earlier one has (an alias): it is no variant.
    let mut numbers = HashSet::new();
    for value in &item.value {
        if numbers.insert(value.number()) && underscores_only(value.name()) {
            report("enum value", &format!("{full}.{}", value.name()));
        }
    }
}

/// Whether `name` is one or more underscores and nothing else: all a proto identifier can be
/// that prost-build's snake_case and UpperCamelCase make empty (it splits words on `_`).
fn underscores_only(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use heck::{ToSnakeCase, ToUpperCamelCase};
    use prost_types::{FieldDescriptorProto, FileDescriptorProto};

    #[test]
    fn only_names_of_underscores_convert_to_nothing() {
        for name in ["_", "__", "___"] {
            assert!(underscores_only(name));
            assert_eq!(name.to_snake_case(), "");
            assert_eq!(name.to_upper_camel_case(), "");
        }
        for name in ["_a", "a_", "_1", "a__b", ""] {
            assert!(!underscores_only(name), "{name}");
        }
        assert_eq!("_1".to_snake_case(), "1");
    }

    #[test]
    fn every_kind_of_name_is_checked() {
        let message = DescriptorProto {
            name: Some("_".to_owned()),
            field: vec![FieldDescriptorProto {
                name: Some("__".to_owned()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("u.proto".to_owned()),
                package: Some("a._".to_owned()),
                message_type: vec![message],
                ..Default::default()
            }],
        };
        let found = empty_names(&fds, &[]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("u.proto: package `a._`"),
            "{}",
            found[0]
        );
        assert!(found[1].contains("message `a._._`"), "{}", found[1]);
        assert!(found[2].contains("field `a._._.__`"), "{}", found[2]);
        assert_eq!(empty_names(&fds, &[".a._"]), Vec::<String>::new());
    }
}
