//! The round trip: every `.proto` file of the shared real-world set (gRPC's, OpenTelemetry's),
//! of this repository's `proto/`, `tests/proto/` (among them `sockrpc/describe/`, written to
//! use every construct) and `tests/proto_more/` (keyword packages, `import public` and `weak`,
//! a file with a byte order mark), is compiled, written back by `describe` as a whole file, compiled again,
//! and the two descriptors compared.
//!
//! What the comparison ignores, and why:
//! - `source_code_info` spans: the text is laid out anew, so lines and columns move. Comments are
//!   compared instead, by element path (leading, trailing and detached), every location of a
//!   path in the order of the text (statements that add to one list share its path).
//! - `json_name` equal to the one derived from the field's name: protox records `json_name` only
//!   when declared, protoc always; `describe` writes it only when it differs from the derived one
//!   (so a declared `json_name` equal to the derived one is not written back).
//!
//! Options are compared twice: in the `FileDescriptorProto` (standard options) and decoded per
//! element with the pool's extensions (custom options, which `prost_types` drops), extension
//! ranges' options included.

use super::file::file_text;
use super::options::entries;
use prost::Message as _;
use prost_reflect::prost_types::{DescriptorProto, FileDescriptorProto};
use prost_reflect::{DescriptorPool, DynamicMessage, FileDescriptor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The include roots whose every `.proto` file takes the round trip.
fn roots() -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    vec![
        repo.join("../shared/protos"),
        repo.join("proto"),
        repo.join("tests/proto"),
        repo.join("tests/proto_more"),
    ]
}

/// Every `.proto` file under `dir`, relative to `root`.
fn protos(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            protos(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}

fn compile(root: &Path, files: &[PathBuf]) -> DescriptorPool {
    // As `--proto` files are read: past a byte order mark.
    let resolver = crate::cmd::dynamic::bom::resolver(&[root.to_path_buf()]);
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.include_source_info(true);
    if let Err(err) = compiler.open_files(files) {
        panic!("{} does not compile: {err:?}", root.display());
    }
    compiler.descriptor_pool()
}

/// The descriptor as compared: no spans, no derived `json_name`.
fn normalized(file: &FileDescriptor) -> FileDescriptorProto {
    let mut proto = file.file_descriptor_proto().clone();
    proto.source_code_info = None;
    for extension in &mut proto.extension {
        extension.json_name = None;
    }
    for message in &mut proto.message_type {
        normalize_message(message);
    }
    proto
}

fn normalize_message(message: &mut DescriptorProto) {
    for field in &mut message.field {
        let derived = derived_json_name(field.name());
        if field.json_name.as_deref() == Some(derived.as_str()) {
            field.json_name = None;
        }
    }
    for extension in &mut message.extension {
        extension.json_name = None;
    }
    for nested in &mut message.nested_type {
        normalize_message(nested);
    }
}

fn derived_json_name(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Every element's options, decoded with the pool's extensions, by element name.
fn options(file: &FileDescriptor) -> BTreeMap<String, DynamicMessage> {
    let mut out = BTreeMap::new();
    out.insert(format!("file {}", file.name()), file.options());
    let mut messages: Vec<_> = file.messages().collect();
    while let Some(message) = messages.pop() {
        let name = message.full_name().to_owned();
        out.insert(format!("message {name}"), message.options());
        for field in message.fields() {
            out.insert(format!("field {}", field.full_name()), field.options());
        }
        for oneof in message.oneofs() {
            out.insert(format!("oneof {}", oneof.full_name()), oneof.options());
        }
        for extension in message.child_extensions() {
            let key = format!("extension {}", extension.full_name());
            out.insert(key, extension.options());
        }
        for en in message.child_enums() {
            enum_options(&en, &mut out);
        }
        messages.extend(message.child_messages());
    }
    for en in file.enums() {
        enum_options(&en, &mut out);
    }
    for extension in file.extensions() {
        let key = format!("extension {}", extension.full_name());
        out.insert(key, extension.options());
    }
    range_options(file, &mut out);
    for service in file.services() {
        out.insert(
            format!("service {}", service.full_name()),
            service.options(),
        );
        for method in service.methods() {
            out.insert(format!("method {}", method.full_name()), method.options());
        }
    }
    out
}

/// Every extension range's options, custom ones included, by message and index: read from the
/// file as encoded (prost-reflect has no accessor for them, and `prost_types` drops custom
/// options), walking its messages by field number, apart from what `describe` does.
fn range_options(file: &FileDescriptor, out: &mut BTreeMap<String, DynamicMessage>) {
    let Some(ty) = file
        .parent_pool()
        .get_message_by_name("google.protobuf.FileDescriptorProto")
    else {
        return; // No descriptor.proto: no custom options either.
    };
    let encoded = file.encode_to_vec();
    let decoded = DynamicMessage::decode(ty, encoded.as_slice()).expect("decode the file");
    range_options_of(&decoded, 4, file.package_name(), out);
}

/// The messages in field `field` of `parent` (4: a file's, 3: a message's nested ones).
fn range_options_of(
    parent: &DynamicMessage,
    field: u32,
    scope: &str,
    out: &mut BTreeMap<String, DynamicMessage>,
) {
    let Some(messages) = parent.get_field_by_number(field) else {
        return;
    };
    for message in messages.as_list().unwrap_or_default() {
        let message = message.as_message().expect("a message");
        let name = message.get_field_by_number(1).expect("name");
        let full = format!("{scope}.{}", name.as_str().expect("a name"));
        if let Some(ranges) = message.get_field_by_number(5) {
            for (i, range) in ranges.as_list().unwrap_or_default().iter().enumerate() {
                let range = range.as_message().expect("a range");
                if range.has_field_by_number(3) {
                    let options = range.get_field_by_number(3).expect("options");
                    let options = options.as_message().expect("options").clone();
                    out.insert(format!("extension range {i} of {full}"), options);
                }
            }
        }
        range_options_of(message, 3, &full, out);
    }
}

fn enum_options(en: &prost_reflect::EnumDescriptor, out: &mut BTreeMap<String, DynamicMessage>) {
    out.insert(format!("enum {}", en.full_name()), en.options());
    for value in en.values() {
        out.insert(format!("value {}", value.full_name()), value.options());
    }
}

/// Each commented path's (detached, leading, trailing) comments: one per location, in the order
/// of the text (statements that add to one list, `reserved` or `extend` blocks, share its path;
/// the source info need not list them in that order).
type Comments = BTreeMap<Vec<i32>, Vec<(Vec<String>, Option<String>, Option<String>)>>;

fn comments(file: &FileDescriptor) -> Comments {
    let info = file.file_descriptor_proto().source_code_info.as_ref();
    let mut locations: Vec<_> = info
        .into_iter()
        .flat_map(|info| &info.location)
        .filter(|location| {
            location.leading_comments.is_some()
                || location.trailing_comments.is_some()
                || !location.leading_detached_comments.is_empty()
        })
        .collect();
    locations.sort_by_key(|location| location.span.get(..2).map(<[i32]>::to_vec));
    let mut out = Comments::new();
    for location in locations {
        out.entry(location.path.clone()).or_default().push((
            location.leading_detached_comments.clone(),
            location.leading_comments.clone(),
            location.trailing_comments.clone(),
        ));
    }
    out
}

/// What differs between `file` and its round trip, if anything.
fn differences(original: &FileDescriptor, back: &FileDescriptor, text: &str) -> Option<String> {
    let mut out = String::new();
    let (a, b) = (normalized(original), normalized(back));
    if a != b {
        out.push_str(&format!("descriptor:\n  was  {a:?}\n  back {b:?}\n"));
    }
    let (a, b) = (options(original), options(back));
    for (name, was) in &a {
        // Compared encoded: messages of two pools are never equal as values.
        if b.get(name).map(DynamicMessage::encode_to_vec) != Some(was.encode_to_vec()) {
            let back = b.get(name).map(|o| entries(o, &[]));
            let was = entries(was, &[]);
            out.push_str(&format!("options of {name}: was {was:?}, back {back:?}\n"));
        }
    }
    let (a, b) = (comments(original), comments(back));
    for (path, was) in &a {
        if b.get(path) != Some(was) {
            out.push_str(&format!(
                "comments at {path:?}: was {was:?}, back {:?}\n",
                b.get(path)
            ));
        }
    }
    (!out.is_empty()).then(|| format!("{}:\n{out}text:\n{text}", original.name()))
}

#[test]
fn every_proto_file_compiles_back_to_its_descriptor() {
    let scratch = std::env::temp_dir().join(format!("sockrpc-roundtrip-{}", std::process::id()));
    let mut checked = 0;
    let mut failures = Vec::new();
    for root in roots() {
        let mut files = Vec::new();
        protos(&root, &root, &mut files);
        assert!(!files.is_empty(), "no .proto under {}", root.display());
        let pool = compile(&root, &files);
        let out = scratch.join(checked.to_string());
        let mut texts = BTreeMap::new();
        for name in &files {
            let name = name.to_str().expect("utf-8 path").replace('\\', "/");
            let file = pool.get_file_by_name(&name).expect("compiled file");
            let text = file_text(&file);
            let path = out.join(&name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &text).expect("write text");
            texts.insert(name, text);
        }
        let back = compile(&out, &files);
        for (name, text) in &texts {
            let original = pool.get_file_by_name(name).expect("original");
            let again = back.get_file_by_name(name).expect("round trip");
            if let Some(diff) = differences(&original, &again, text) {
                failures.push(diff);
            }
            checked += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(checked >= 40, "only {checked} files checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} files differ after the round trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
