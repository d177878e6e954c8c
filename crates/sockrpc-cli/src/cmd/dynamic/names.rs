//! The names in a server's descriptors hold no control character: protoc never writes one, and
//! the CLI prints names (`list`, `describe`, errors) and sends them (a call's path). A hostile
//! reflection server's service named with a terminal escape and a newline would otherwise drive
//! the user's terminal and fake lines of output through every command that names it. Such a
//! file is refused as a malformed descriptor is, before it enters a pool.

use sockrpc::codegen::prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};

/// An error naming the first name of `file` (its package, or an element's name) that holds a
/// control character, escaped.
pub(super) fn check_file(file: &FileDescriptorProto) -> Result<(), String> {
    let names = std::iter::once(file.package())
        .chain(file.service.iter().flat_map(|service| {
            std::iter::once(service.name()).chain(service.method.iter().map(|m| m.name()))
        }))
        .chain(file.extension.iter().map(|field| field.name()));
    first_bad(names)
        .map_or(Ok(()), Err)
        .and_then(|()| file.enum_type.iter().try_for_each(check_enum))
        .and_then(|()| file.message_type.iter().try_for_each(check_message))
        .map_err(|name| {
            format!(
                "file {}: the name \"{name}\" holds a control character",
                crate::out::one_line(file.name())
            )
        })
}

/// A message's names, and those of the messages and enums inside it.
fn check_message(message: &DescriptorProto) -> Result<(), String> {
    let names = std::iter::once(message.name())
        .chain(message.field.iter().map(|field| field.name()))
        .chain(message.extension.iter().map(|field| field.name()))
        .chain(message.oneof_decl.iter().map(|oneof| oneof.name()));
    if let Some(bad) = first_bad(names) {
        return Err(bad);
    }
    message.enum_type.iter().try_for_each(check_enum)?;
    message.nested_type.iter().try_for_each(check_message)
}

/// An enum's name and its values'.
fn check_enum(en: &EnumDescriptorProto) -> Result<(), String> {
    let names = std::iter::once(en.name()).chain(en.value.iter().map(|value| value.name()));
    first_bad(names).map_or(Ok(()), Err)
}

/// The first of `names` with a control character, escaped ([`crate::out::one_line`]).
fn first_bad<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<String> {
    names
        .find(|name| name.contains(char::is_control))
        .map(|name| crate::out::one_line(name).into_owned())
}
