//! Values of one proto enum that prost-build would give the same Rust variant.
//!
//! prost-build names a variant by UpperCamelCasing the value's proto name and then stripping
//! the enum's own name from its front (`enum Color { COLOR_RED = 0; }` → `Color::Red`), so
//! `FOO_BAR` and `FooBar`, or `COLOR_RED` and `RED`, are two values to protox but one variant
//! to prost-build, which panics ("Generated enum variant names overlap") inside the user's
//! build script. Checked here first, the build fails with an error naming the file, the enum,
//! both values and the variant they share. Aliases (`allow_alias`, a number already used) get
//! no variant of their own, as in prost-build, and so never clash.

use std::collections::{HashMap, HashSet};

use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

use crate::names::{prost_upper_camel, sanitize};
use crate::type_names::external;

/// Every enum in `fds` with two values prost-build would name alike, one message each;
/// enums under `extern_paths` and the well-known types are not generated and left out.
pub(crate) fn clashes(fds: &FileDescriptorSet, extern_paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in &fds.file {
        let prefix = match file.package() {
            "" => String::new(),
            package => format!(".{package}"),
        };
        let mut check = |full: &str, item: &EnumDescriptorProto| {
            if !external(full, extern_paths) {
                if let Some(clash) = clash(item) {
                    found.push(format!("{}: enum `{}`: {clash}", file.name(), &full[1..]));
                }
            }
        };
        for item in &file.enum_type {
            check(&format!("{prefix}.{}", item.name()), item);
        }
        for message in &file.message_type {
            nested(&format!("{prefix}.{}", message.name()), message, &mut check);
        }
    }
    found
}

/// Calls `check` on every enum nested in `message` (full name `full`), at any depth.
fn nested(
    full: &str,
    message: &DescriptorProto,
    check: &mut impl FnMut(&str, &EnumDescriptorProto),
) {
    for item in &message.enum_type {
        check(&format!("{full}.{}", item.name()), item);
    }
    for inner in &message.nested_type {
        nested(&format!("{full}.{}", inner.name()), inner, check);
    }
}

/// The first two values of `item` that prost-build would name alike, described.
fn clash(item: &EnumDescriptorProto) -> Option<String> {
    let enum_name = prost_upper_camel(item.name());
    let mut numbers = HashSet::new();
    let mut variants: HashMap<String, &str> = HashMap::new();
    for value in &item.value {
        // prost-build skips a value whose number an earlier one has (an alias).
        if !numbers.insert(value.number()) {
            continue;
        }
        let variant = variant(&enum_name, value.name());
        if let Some(first) = variants.insert(variant.clone(), value.name()) {
            return Some(format!(
                "values `{first}` and `{}` both become the Rust variant `{enum_name}::{variant}` \
                 (prost-build UpperCamelCases value names and strips the enum's name from their \
                 front): rename one of them, or give them one number with `option allow_alias = \
                 true`",
                value.name()
            ));
        }
    }
    None
}

/// prost-build's variant name for the value `proto_name` of the enum it names `enum_name`: its
/// `to_upper_camel`, then its `strip_enum_prefix` (the prefix goes only if an upper-case letter
/// follows it, so `Color` is not stripped from `Colorful`).
fn variant(enum_name: &str, proto_name: &str) -> String {
    let upper = prost_upper_camel(proto_name);
    match upper.strip_prefix(enum_name) {
        Some(rest) if rest.starts_with(char::is_uppercase) => sanitize(rest),
        _ => sanitize(&upper),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{EnumValueDescriptorProto, FileDescriptorProto};

    fn enumeration(name: &str, values: &[(&str, i32)]) -> EnumDescriptorProto {
        EnumDescriptorProto {
            name: Some(name.to_owned()),
            value: values
                .iter()
                .map(|(name, number)| EnumValueDescriptorProto {
                    name: Some((*name).to_owned()),
                    number: Some(*number),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn set(item: EnumDescriptorProto) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("e.proto".to_owned()),
                package: Some("p".to_owned()),
                enum_type: vec![item],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn variants_follow_prost_build() {
        assert_eq!(variant("Color", "COLOR_RED"), "Red");
        assert_eq!(variant("Color", "RED"), "Red");
        assert_eq!(variant("Color", "COLORFUL"), "Colorful");
        assert_eq!(variant("Color", "COLOR_SELF"), "Self_");
        assert_eq!(variant("Color", "COLOR_2"), "Color2");
        assert_eq!(variant("E", "FOO_BAR"), "FooBar");
        assert_eq!(variant("E", "FooBar"), "FooBar");
    }

    #[test]
    fn values_named_alike_clash_unless_aliases() {
        let found = clashes(
            &set(enumeration("Color", &[("COLOR_RED", 0), ("RED", 1)])),
            &[],
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("e.proto: enum `p.Color`")
                && found[0].contains("`COLOR_RED` and `RED`")
                && found[0].contains("`Color::Red`"),
            "{}",
            found[0]
        );
        // One number: `RED` is an alias and gets no variant.
        let aliases = set(enumeration("Color", &[("COLOR_RED", 0), ("RED", 0)]));
        assert_eq!(clashes(&aliases, &[]), Vec::<String>::new());
        let distinct = set(enumeration("E", &[("FOO_BAR", 0), ("FOO_BAR2", 1)]));
        assert_eq!(clashes(&distinct, &[]), Vec::<String>::new());
        let external = set(enumeration("E", &[("FOO_BAR", 0), ("FooBar", 1)]));
        assert_eq!(clashes(&external, &[".p.E"]), Vec::<String>::new());
    }
}
