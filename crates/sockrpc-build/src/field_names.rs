//! Fields of one proto message that prost-build would give the same Rust name.
//!
//! prost-build snake_cases field and oneof names into the message's struct fields, and
//! UpperCamelCases a oneof's fields into its enum's variants; prost's derive adds accessor
//! methods named after the struct fields (`kind()` and `set_kind()` for an enum field,
//! `push_kind()` if repeated, a getter for an `optional` scalar). Names distinct to protox can
//! meet there: proto2 fields `FooBar` and `foo_bar` (protox refuses those in proto3 only),
//! a field `Kind` and a `oneof kind`, oneof fields `FooBar` and `foo_bar`, enum fields `foo`
//! and `set_foo`. prost-build writes them all, and the user's crate fails to compile
//! (`E0124`, `E0428`, `E0592`) with errors pointing at generated code. Checked here first, the
//! build fails with an error naming the file, the message, both proto names and the Rust name.

use std::collections::HashMap;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

use crate::names::{prost_snake, prost_upper_camel};
use crate::type_names::{external, oneof_type};

/// Every clash in the messages of `fds`, one message each; messages under `extern_paths` and
/// the well-known types are not generated and left out.
pub(crate) fn clashes(fds: &FileDescriptorSet, extern_paths: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in &fds.file {
        let prefix = match file.package() {
            "" => String::new(),
            package => format!(".{package}"),
        };
        // prost-build reads every syntax but `proto3` as proto2.
        let proto2 = file.syntax() != "proto3";
        for message in &file.message_type {
            let mut report = |clash: String| found.push(format!("{}: {clash}", file.name()));
            walk(&prefix, message, proto2, extern_paths, &mut report);
        }
    }
    found
}

/// Checks `message` (in scope `prefix`) and its nested messages.
fn walk(
    prefix: &str,
    message: &DescriptorProto,
    proto2: bool,
    extern_paths: &[&str],
    report: &mut impl FnMut(String),
) {
    let full = format!("{prefix}.{}", message.name());
    if external(&full, extern_paths) {
        return;
    }
    let shown = full.trim_start_matches('.');
    let mut fields = Names::new("the Rust field");
    let mut methods = Names::new("the accessor method");
    for (index, oneof) in message.oneof_decl.iter().enumerate() {
        let index = i32::try_from(index).ok();
        let members: Vec<&FieldDescriptorProto> = message
            .field
            .iter()
            .filter(|f| f.oneof_index == index && !f.proto3_optional())
            .collect();
        // A proto3 `optional` field's synthetic oneof is no Rust field.
        if members.is_empty() {
            continue;
        }
        fields.add("oneof", oneof.name(), prost_snake(oneof.name()));
        let mut variants = Names::new("the variant");
        for field in members {
            variants.add("field", field.name(), prost_upper_camel(field.name()));
        }
        let name = format!("oneof `{shown}.{}`", oneof.name());
        let path = format!("{}::", oneof_type(message, oneof.name()));
        variants.report(&name, &path, report);
    }
    for field in &message.field {
        if field.oneof_index.is_some() && !field.proto3_optional() {
            continue;
        }
        let rust = prost_snake(field.name());
        for method in accessors(field, &rust, proto2) {
            methods.add("field", field.name(), method);
        }
        fields.add("field", field.name(), rust);
    }
    let name = format!("message `{shown}`");
    fields.report(&name, "", report);
    methods.report(&name, "", report);
    for nested in &message.nested_type {
        if !nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            walk(&full, nested, proto2, extern_paths, report);
        }
    }
}

/// The inherent methods prost's derive writes for `field` (Rust name `rust`): for an enum,
/// the getter and `set_` (`push_` if repeated); for an `optional` scalar, the getter. Raw
/// identifiers (`r#type`) lose their `r#`, as they do in the derive's `set_` and `push_` names
/// and for rustc. Map fields with enum values get `get_`/`insert_` methods, not checked here.
fn accessors(field: &FieldDescriptorProto, rust: &str, proto2: bool) -> Vec<String> {
    let bare = rust.trim_start_matches("r#");
    let repeated = field.label() == Label::Repeated;
    match field.r#type() {
        Type::Enum if repeated => vec![bare.to_owned(), format!("push_{bare}")],
        Type::Enum => vec![bare.to_owned(), format!("set_{bare}")],
        Type::Message | Type::Group => Vec::new(),
        _ if field.proto3_optional() || (proto2 && field.label() == Label::Optional) => {
            vec![bare.to_owned()]
        }
        _ => Vec::new(),
    }
}

/// Rust names in one namespace, and the proto names that took them.
struct Names {
    /// What the Rust name is (`the Rust field`), when the clash is told.
    rust_kind: &'static str,
    /// By Rust name: the first proto name and its kind.
    taken: HashMap<String, (String, &'static str)>,
    /// The clashes, as (first, second, Rust name), in proto order.
    clashes: Vec<(String, String, String)>,
}

impl Names {
    fn new(rust_kind: &'static str) -> Self {
        Self {
            rust_kind,
            taken: HashMap::new(),
            clashes: Vec::new(),
        }
    }

    /// Records that the proto name `proto` (a `kind`) becomes `rust`.
    fn add(&mut self, kind: &'static str, proto: &str, rust: String) {
        match self.taken.get(&rust) {
            Some((first, first_kind)) => {
                // Two names of one proto item (a getter and a setter) never meet.
                if first != proto || *first_kind != kind {
                    let clash = (
                        format!("{first_kind} `{first}`"),
                        format!("{kind} `{proto}`"),
                        rust,
                    );
                    self.clashes.push(clash);
                }
            }
            None => {
                self.taken.insert(rust, (proto.to_owned(), kind));
            }
        }
    }

    /// Tells each clash, in `owner` (`message `p.M``), Rust names shown after `path`.
    fn report(self, owner: &str, path: &str, report: &mut impl FnMut(String)) {
        for (first, second, rust) in self.clashes {
            report(format!(
                "{owner}: {first} and {second} both become {} `{path}{rust}` (prost-build's \
                 names are case-converted): rename one of them",
                self.rust_kind
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{FileDescriptorProto, OneofDescriptorProto};

    fn field(name: &str, ty: Type, label: Label) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.to_owned()),
            r#type: Some(ty as i32),
            label: Some(label as i32),
            ..Default::default()
        }
    }

    fn found(syntax: &str, message: DescriptorProto) -> Vec<String> {
        let fds = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: Some("f.proto".to_owned()),
                package: Some("p".to_owned()),
                syntax: Some(syntax.to_owned()),
                message_type: vec![message],
                ..Default::default()
            }],
        };
        clashes(&fds, &[])
    }

    fn message(fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
        DescriptorProto {
            name: Some("M".to_owned()),
            field: fields,
            ..Default::default()
        }
    }

    #[test]
    fn struct_fields_clash_after_snake_case() {
        let m = message(vec![
            field("FooBar", Type::Int32, Label::Optional),
            field("foo_bar", Type::Int32, Label::Optional),
            field("foo_bar2", Type::Int32, Label::Optional),
        ]);
        let found = found("proto2", m);
        // The struct field, and the getters of the two proto2 `optional` scalars.
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("f.proto: message `p.M`: field `FooBar` and field `foo_bar`")
                && found[0].contains("the Rust field `foo_bar`"),
            "{}",
            found[0]
        );
        assert!(
            found[1].contains("the accessor method `foo_bar`"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn oneofs_clash_with_fields_and_their_variants_with_each_other() {
        let mut m = message(vec![
            field("Kind", Type::Int32, Label::Optional),
            field("FooBar", Type::Int32, Label::Optional),
            field("foo_bar", Type::Int32, Label::Optional),
            field("solo", Type::Int32, Label::Optional),
        ]);
        m.oneof_decl = vec![
            OneofDescriptorProto {
                name: Some("kind".to_owned()),
                ..Default::default()
            },
            OneofDescriptorProto {
                name: Some("_solo".to_owned()),
                ..Default::default()
            },
        ];
        m.field[1].oneof_index = Some(0);
        m.field[2].oneof_index = Some(0);
        // A proto3 `optional` field's synthetic oneof is no struct field.
        m.field[3].oneof_index = Some(1);
        m.field[3].proto3_optional = Some(true);
        let found = found("proto3", m);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].contains("oneof `p.M.kind`: field `FooBar` and field `foo_bar`")
                && found[0].contains("the variant `Kind::FooBar`"),
            "{}",
            found[0]
        );
        assert!(
            found[1].contains("message `p.M`: oneof `kind` and field `Kind`")
                && found[1].contains("the Rust field `kind`"),
            "{}",
            found[1]
        );
    }

    #[test]
    fn accessors_follow_prost_derive() {
        let e = |name, label| {
            let mut f = field(name, Type::Enum, label);
            f.type_name = Some(".p.E".to_owned());
            f
        };
        // `foo`'s setter is `set_foo`, the getter of the enum field `set_foo`.
        let found = found(
            "proto3",
            message(vec![
                e("foo", Label::Optional),
                e("set_foo", Label::Optional),
            ]),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("the accessor method `set_foo`"),
            "{}",
            found[0]
        );
        let repeated = field("push_foo", Type::Int32, Label::Repeated);
        assert_eq!(
            accessors(&e("type", Label::Repeated), "r#type", false),
            ["type", "push_type"]
        );
        // proto3 scalars without `optional`, repeated scalars and messages get no accessor.
        assert!(accessors(&repeated, "push_foo", false).is_empty());
        assert!(accessors(&field("x", Type::Int32, Label::Optional), "x", false).is_empty());
        assert_eq!(
            accessors(&field("x", Type::Int32, Label::Optional), "x", true),
            ["x"]
        );
        assert!(accessors(&field("x", Type::Message, Label::Optional), "x", true).is_empty());
    }
}
