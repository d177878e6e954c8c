//! The extensions of a message declared outside it, written after the message as grpcurl's
//! printer writes an extension: an `extend .pkg.Msg { ... }` block. A proto2 message may be
//! extended in any file (through reflection, `describe` fetches those files as `call` does),
//! and the JSON names of its extensions (`"[pkg.name]"`) are only known to a reader who sees
//! them: one block per declaring scope, with a comment naming the scope and the file, since a
//! member of an `extend` block is named relative to where the block stands.

use super::field::{label, write_member, Member};
use super::text::Text;
use prost_reflect::{ExtensionDescriptor, MessageDescriptor};
use std::collections::BTreeMap;

/// The `extend` blocks of `message`'s extensions not declared inside it (those are in its own
/// text), in the order of their file and scope, each block's members by number; empty when
/// there are none.
pub(super) fn extend_blocks(message: &MessageDescriptor) -> String {
    let mut scopes: BTreeMap<(String, String), Vec<ExtensionDescriptor>> = BTreeMap::new();
    for extension in message.extensions() {
        let scope = match extension.parent_message() {
            Some(parent) if parent.full_name() == message.full_name() => continue,
            Some(parent) => parent.full_name().to_owned(),
            None => extension.parent_file().package_name().to_owned(),
        };
        let file = extension.parent_file().name().to_owned();
        scopes.entry((file, scope)).or_default().push(extension);
    }
    let mut out = String::new();
    for ((file, scope), mut extensions) in scopes {
        extensions.sort_by_key(ExtensionDescriptor::number);
        let Some(first) = extensions.first() else {
            continue;
        };
        let mut text = Text::for_file(&first.parent_file());
        let scope = if scope.is_empty() {
            "no package".to_owned()
        } else {
            scope
        };
        text.line("", "");
        text.line("", &format!("// Declared in {scope} ({file}):"));
        text.line("", &format!("extend .{} {{", message.full_name()));
        for extension in extensions {
            let member = Member::Extension(extension);
            write_member(&mut text, &member, label(&member, false), "  ");
        }
        text.line("", "}");
        out.push_str(&text.out);
    }
    out
}
