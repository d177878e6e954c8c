//! Each generated package also carries its own encoded descriptors, for server reflection and
//! for tools that encode messages at run time:
//!
//! ```ignore
//! pub const FILE_DESCRIPTOR_SET: &[u8] = b"\n\xc4\x01..."; // an encoded FileDescriptorSet
//! ```
//!
//! The set holds the package's `.proto` files and every file they import, transitively, in
//! dependency order (imports first), without source info: what `protoc
//! --include_imports --descriptor_set_out` writes. It is appended to the file prost-build
//! wrote for the package (`<package>.rs`, with each part of the package in snake_case and
//! keywords raw, as prost-build names it: `kw.r#type.v1.rs`; `_.rs` for files without a
//! package), so a module that `include!`s the file gets the constant beside its messages; a
//! `sockrpc-reflection` service registers it.
//!
//! The files are encoded as the compiler encoded them, not re-encoded from `prost_types`:
//! those structs have no field for an extension option (`google.api.http`, a team's own method
//! options), so a set built from them would drop every custom option, which reflection clients,
//! transcoders and validators read.

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;

/// The name of the constant appended to every generated package file.
pub(crate) const CONST_NAME: &str = "FILE_DESCRIPTOR_SET";

/// Each file's `FileDescriptorProto` as the compiler encoded it (extension options included),
/// by file name. A file missing here is encoded from its `prost_types` form.
pub(crate) type EncodedFiles = HashMap<String, Vec<u8>>;

/// Appends `FILE_DESCRIPTOR_SET` to every package file in `out_dir` that prost-build wrote for
/// `fds`. A package whose file is missing (an `extern_path` package) is skipped.
pub(crate) fn append_descriptor_sets(
    out_dir: &Path,
    fds: &FileDescriptorSet,
    encoded: &EncodedFiles,
) -> io::Result<()> {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        fds.file.iter().map(|file| (file.name(), file)).collect();
    // Keyed by the file prost-build writes, which is not always `<package>.rs`: it names the
    // file after the package's Rust module path, so `kw.type.v1` is `kw.r#type.v1.rs` and
    // `My.Api` is `my.api.rs` (and two packages with one module path share a file).
    let mut packages: BTreeMap<String, (&str, Vec<&str>)> = BTreeMap::new();
    for file in &fds.file {
        packages
            .entry(package_file_name(file.package()))
            .or_insert_with(|| (file.package(), Vec::new()))
            .1
            .push(file.name());
    }
    for (name, (package, files)) in packages {
        let path = out_dir.join(name);
        // Only files prost-build wrote in this call: one it left alone (a package reached
        // through `extern_path`, written by an earlier call into the same directory) already
        // has its set, on a line of its own (the same text elsewhere, say in a string field's
        // default, is not the constant).
        let declared = format!("pub const {CONST_NAME}: &[u8] = b\"");
        match std::fs::read_to_string(&path) {
            Ok(text) if !text.lines().any(|line| line.starts_with(&declared)) => {}
            _ => continue,
        }
        let set = encode_set(&transitive_set(&by_name, &files), encoded);
        let mut out = std::fs::OpenOptions::new().append(true).open(&path)?;
        writeln!(
            out,
            "/// The encoded `FileDescriptorSet` of package `{package}`: its files and every file \
             they import (for server reflection)."
        )?;
        // Emitted for every package, used by few: unused, it must not warn (a binary built
        // with `#![deny(warnings)]` fails on an unused const, as on any item of its own).
        writeln!(out, "#[allow(dead_code)]")?;
        writeln!(
            out,
            "pub const {CONST_NAME}: &[u8] = b\"{}\";",
            escape(&set)
        )?;
    }
    Ok(())
}

/// The name of the file prost-build writes for `package`: `_.rs` without a package.
pub(crate) fn package_file_name(package: &str) -> String {
    prost_build::Module::from_protobuf_package_name(package).to_file_name_or("_")
}

/// `roots` and everything they import, imports before importers, without source info.
fn transitive_set(
    by_name: &HashMap<&str, &FileDescriptorProto>,
    roots: &[&str],
) -> FileDescriptorSet {
    let mut seen = HashSet::new();
    let mut ordered = Vec::new();
    for root in roots {
        visit(by_name, root, &mut seen, &mut ordered);
    }
    FileDescriptorSet { file: ordered }
}

fn visit(
    by_name: &HashMap<&str, &FileDescriptorProto>,
    name: &str,
    seen: &mut HashSet<String>,
    ordered: &mut Vec<FileDescriptorProto>,
) {
    if !seen.insert(name.to_owned()) {
        return;
    }
    let Some(file) = by_name.get(name) else {
        return;
    };
    for dependency in &file.dependency {
        visit(by_name, dependency, seen, ordered);
    }
    let mut file = (*file).clone();
    file.source_code_info = None;
    ordered.push(file);
}

/// The encoded `FileDescriptorSet` of `set`'s files (source info already gone from them): each
/// file as the compiler encoded it, less its source info, or else from its `prost_types` form.
fn encode_set(set: &FileDescriptorSet, encoded: &EncodedFiles) -> Vec<u8> {
    let mut out = Vec::new();
    for file in &set.file {
        let bytes = match encoded.get(file.name()) {
            Some(bytes) => without_field(bytes, SOURCE_CODE_INFO),
            None => file.encode_to_vec(),
        };
        // `repeated FileDescriptorProto file = 1`: key, length, the message.
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut out);
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(&bytes);
    }
    out
}

/// `FileDescriptorProto.source_code_info`'s field number.
const SOURCE_CODE_INFO: u64 = 9;

/// `message` (encoded) without its top-level field `number`; unchanged if it does not parse as
/// plain fields (a group, a truncated field).
fn without_field(message: &[u8], number: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        let Some(key) = read_varint(&mut rest) else {
            return message.to_vec();
        };
        let len = match key & 7 {
            0 => match read_varint(&mut rest) {
                Some(_) => 0,
                None => return message.to_vec(),
            },
            1 => 8,
            2 => match read_varint(&mut rest).and_then(|len| usize::try_from(len).ok()) {
                Some(len) => len,
                None => return message.to_vec(),
            },
            5 => 4,
            _ => return message.to_vec(),
        };
        if rest.len() < len {
            return message.to_vec();
        }
        rest = &rest[len..];
        if key >> 3 != number {
            out.extend_from_slice(&start[..start.len() - rest.len()]);
        }
    }
    out
}

/// Reads a base-128 varint off the front of `bytes`.
fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// `bytes` as the inside of a Rust byte-string literal.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => out.push_str(&format!("\\x{byte:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, package: &str, deps: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.to_owned()),
            package: Some(package.to_owned()),
            dependency: deps.iter().map(|d| (*d).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn package_files_are_named_as_prost_build_names_them() {
        assert_eq!(package_file_name(""), "_.rs");
        assert_eq!(package_file_name("helloworld"), "helloworld.rs");
        assert_eq!(package_file_name("a.b.v1"), "a.b.v1.rs");
        assert_eq!(package_file_name("kw.type.v1"), "kw.r#type.v1.rs");
        assert_eq!(package_file_name("My.fooBar"), "my.foo_bar.rs");
    }

    #[test]
    fn a_package_carries_its_imports_first() {
        let files = [
            file("a.proto", "a", &["b.proto"]),
            file("b.proto", "b", &["c.proto"]),
            file("c.proto", "c", &[]),
        ];
        let by_name = files.iter().map(|f| (f.name(), f)).collect();
        let set = transitive_set(&by_name, &["a.proto"]);
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["c.proto", "b.proto", "a.proto"]);
    }

    #[test]
    fn a_file_encoded_by_the_compiler_keeps_what_prost_types_cannot_hold() {
        let mut with_info = file("a.proto", "a", &[]);
        with_info.source_code_info = Some(prost_types::SourceCodeInfo::default());
        let mut bytes = with_info.encode_to_vec();
        // An extension option (field 50001 of FileOptions, a string), inside `options` (8).
        let options = [0x8a, 0x8d, 0x18, 3, b'x', b'y', b'z'];
        bytes.extend_from_slice(&[0x42, options.len() as u8]);
        bytes.extend_from_slice(&options);
        let encoded = EncodedFiles::from([("a.proto".to_owned(), bytes)]);
        let set = FileDescriptorSet {
            file: vec![file("a.proto", "a", &[])],
        };
        let out = encode_set(&set, &encoded);
        assert!(
            out.windows(3).any(|w| w == b"xyz"),
            "the option was dropped"
        );
        let back = FileDescriptorSet::decode(out.as_slice()).expect("decodes");
        assert_eq!(back.file.len(), 1);
        assert_eq!(back.file[0].name(), "a.proto");
        assert!(back.file[0].source_code_info.is_none());
        assert!(back.file[0].options.is_some());
    }

    #[test]
    fn without_field_drops_only_that_field_and_leaves_bad_input_alone() {
        // name (1) = "n", field 9 = [1], public_dependency (10) = 5, a fixed64 and a fixed32.
        let mut bytes = vec![0x0a, 1, b'n', 0x4a, 1, 1, 0x50, 5];
        bytes.extend_from_slice(&[0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4]);
        let out = without_field(&bytes, 9);
        let mut expected = vec![0x0a, 1, b'n', 0x50, 5];
        expected.extend_from_slice(&[0x59, 1, 2, 3, 4, 5, 6, 7, 8, 0x65, 1, 2, 3, 4]);
        assert_eq!(out, expected);
        // Truncated, or a group: returned as it was.
        assert_eq!(without_field(&[0x4a, 5, 1], 9), [0x4a, 5, 1]);
        assert_eq!(without_field(&[0x4b, 0x4c], 9), [0x4b, 0x4c]);
    }

    #[test]
    fn escaped_bytes_round_trip_through_a_literal() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = escape(&bytes);
        assert!(text.is_ascii());
        // Undo the escaping by hand: the generated literal must mean exactly `bytes`.
        let mut back = Vec::new();
        let mut chars = text.bytes();
        while let Some(c) = chars.next() {
            if c != b'\\' {
                back.push(c);
                continue;
            }
            match chars.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = chars.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).expect("hex");
                    back.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                }
                Some(other) => back.push(other),
                None => panic!("dangling escape"),
            }
        }
        assert_eq!(back, bytes);
    }
}
