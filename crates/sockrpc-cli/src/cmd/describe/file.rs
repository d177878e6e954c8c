//! A whole file as `.proto` text (`sockrpc describe ADDR path/to/file.proto`): its syntax,
//! package, imports (`public` and `weak` kept), file options, then its messages, enums,
//! services and top-level `extend` blocks, each list in the descriptor's order so that the text
//! compiles back to the same descriptor.

use super::enums::write_enum;
use super::message::write_scope;
use super::options::write_statements;
use super::service::write_service;
use super::text::{escape, Text};
use prost_reflect::{ExtensionDescriptor, FileDescriptor, MessageDescriptor};

/// Path of `syntax` in a `FileDescriptorProto` (its field number).
const SYNTAX: i32 = 12;
/// Path of `package`.
const PACKAGE: i32 = 2;
/// Path of the imports.
const DEPENDENCY: i32 = 3;
/// Path of the file's options.
const OPTIONS: i32 = 8;
/// Path of the top-level extensions (and `extend` blocks).
const EXTENSION: i32 = 7;

/// `file` as `.proto` text, its comments included when it has source info.
pub(super) fn file_text(file: &FileDescriptor) -> String {
    let mut text = Text::for_file(file);
    let proto = file.file_descriptor_proto();
    // A descriptor leaves `syntax` out for proto2 (declared or not): written all the same, so
    // that the text says it and the comments before the statement have their place.
    let syntax = proto.syntax.as_deref().unwrap_or("proto2");
    text.leading(&[SYNTAX], "");
    text.line("", &format!("syntax = \"{}\";", escape(syntax)));
    text.trailing(&[SYNTAX], "");
    if let Some(package) = proto.package.as_deref() {
        text.leading(&[PACKAGE], "");
        text.line("", &format!("package {package};"));
        text.trailing(&[PACKAGE], "");
    }
    text.gap("");
    for (i, dependency) in proto.dependency.iter().enumerate() {
        let index = i32::try_from(i).ok();
        let kind = if index.is_some_and(|i| proto.public_dependency.contains(&i)) {
            "public "
        } else if index.is_some_and(|i| proto.weak_dependency.contains(&i)) {
            "weak "
        } else {
            ""
        };
        let path = [DEPENDENCY, index.unwrap_or(i32::MAX)];
        text.leading(&path, "");
        text.line("", &format!("import {kind}\"{}\";", escape(dependency)));
        text.trailing(&path, "");
    }
    text.gap("");
    write_statements(&mut text, &file.options(), &[], &[OPTIONS], "");
    let extensions: Vec<ExtensionDescriptor> = file.extensions().collect();
    let messages: Vec<MessageDescriptor> = file.messages().collect();
    write_scope(&mut text, &[], &extensions, &messages, &[EXTENSION], "");
    for en in file.enums() {
        write_enum(&mut text, &en, "");
    }
    for service in file.services() {
        write_service(&mut text, &service, "");
    }
    text.out
}
