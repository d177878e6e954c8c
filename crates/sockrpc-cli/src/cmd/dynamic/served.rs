//! The files reflection sends, kept as the bytes they came as.
//!
//! `prost_types::FileDescriptorProto` has no room for extensions, so decoding into it drops
//! every custom option's value (`option (google.api.http) = { .. }` on an rpc, `[(pkg.ext) =
//! ..]` on a field), and a pool built from it has none to describe. A file is decoded into it
//! for its name and imports alone; the pool is built from the bytes, which prost-reflect
//! decodes with the options whole.
//!
//! Files that import each other in a cycle are refused before any build: protoc refuses them
//! ("recursively imports itself"), and prost-reflect follows a cycle of public imports for ever
//! (the CLI died of a stack overflow on a server that sent one).

use prost::Message;
use prost_reflect::DescriptorPool;
use sockrpc::codegen::prost_types::FileDescriptorProto;
use std::collections::HashMap;

/// One file as reflection sent it: decoded for its name and imports, and its bytes.
#[derive(Debug)]
pub(crate) struct ServedFile {
    /// The file decoded without its extensions: for its name and imports.
    pub(crate) proto: FileDescriptorProto,
    /// The file as it came.
    bytes: Vec<u8>,
}

impl ServedFile {
    /// Decodes `bytes`, a `FileDescriptorProto`, keeping them.
    pub(crate) fn decode(bytes: Vec<u8>) -> Result<ServedFile, prost::DecodeError> {
        let proto = FileDescriptorProto::decode(bytes.as_slice())?;
        Ok(ServedFile { proto, bytes })
    }

    /// The file's name.
    pub(crate) fn name(&self) -> &str {
        self.proto.name()
    }
}

/// Adds `files` to `pool` in one batch (in any order, as `add_file_descriptor_protos` does),
/// from their bytes, custom options included. Options the pool cannot read (a value whose wire
/// type is not its extension's) fail that build; the files then go in as decoded, without
/// their custom options, as they always did, so that such a server can still be called.
/// Files importing each other in a cycle are refused, naming them, and so are files with a
/// control character in a name ([`super::names`]).
pub(crate) fn add_to_pool(
    pool: &mut DescriptorPool,
    files: impl IntoIterator<Item = ServedFile>,
) -> Result<(), String> {
    let files: Vec<ServedFile> = files.into_iter().collect();
    refuse_import_cycles(&files)?;
    for file in &files {
        super::names::check_file(&file.proto)?;
    }
    // A `FileDescriptorSet`: `repeated FileDescriptorProto file = 1`, each key, length, bytes.
    let mut set = Vec::new();
    for file in &files {
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut set);
        prost::encoding::encode_varint(file.bytes.len() as u64, &mut set);
        set.extend_from_slice(&file.bytes);
    }
    // A failed build leaves the pool as it was (prost-reflect rolls it back).
    match pool.decode_file_descriptor_set(set.as_slice()) {
        Ok(()) => Ok(()),
        Err(_) => pool
            .add_file_descriptor_protos(files.into_iter().map(|file| file.proto))
            .map_err(|err| err.to_string()),
    }
}

/// Most file names an import cycle's error lists.
const CYCLE_NAMES: usize = 4;

/// An error naming some of `files` if they import each other in a cycle (imports of files
/// outside `files`, already in a pool, cannot lead back into them). Kahn's order: a file is
/// taken once every file of `files` it imports was; those never taken are in a cycle, or
/// import one.
fn refuse_import_cycles(files: &[ServedFile]) -> Result<(), String> {
    let index: HashMap<&str, usize> = files
        .iter()
        .enumerate()
        .map(|(at, file)| (file.name(), at))
        .collect();
    // For each file, the files importing it; and how many of its imports are not taken yet.
    let mut importers = vec![Vec::new(); files.len()];
    let mut waiting = vec![0usize; files.len()];
    for (at, file) in files.iter().enumerate() {
        for import in &file.proto.dependency {
            if let Some(&imported) = index.get(import.as_str()) {
                importers[imported].push(at);
                waiting[at] += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..files.len()).filter(|&at| waiting[at] == 0).collect();
    let mut taken = 0;
    while let Some(file) = ready.pop() {
        taken += 1;
        for &importer in &importers[file] {
            waiting[importer] -= 1;
            if waiting[importer] == 0 {
                ready.push(importer);
            }
        }
    }
    if taken == files.len() {
        return Ok(());
    }
    let mut stuck: Vec<&str> = files
        .iter()
        .zip(&waiting)
        .filter(|(_, &left)| left > 0)
        .map(|(file, _)| file.name())
        .collect();
    stuck.sort_unstable();
    let more = stuck.len().saturating_sub(CYCLE_NAMES);
    stuck.truncate(CYCLE_NAMES);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Err(format!(
        "files import each other in a cycle, which protoc refuses: {:?}{more}",
        stuck
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockrpc::codegen::prost_types::{
        field_descriptor_proto::{Label, Type},
        DescriptorProto, FieldDescriptorProto, FileOptions,
    };

    /// `a.proto` extending `FileOptions` with `owner = 50001`, a string, and setting it on
    /// itself to "me" (the option's bytes appended to the encoded `FileOptions`, which
    /// prost_types cannot hold).
    fn file_with_custom_option() -> Vec<u8> {
        let mut option = Vec::new();
        prost::encoding::string::encode(50001, &"me".to_owned(), &mut option);
        file_with_option_bytes(&option)
    }

    /// `a.proto` as in [`file_with_custom_option`], with `option` (encoded fields of
    /// `FileOptions`) as its options beside `java_package`.
    fn file_with_option_bytes(option: &[u8]) -> Vec<u8> {
        let file = FileDescriptorProto {
            name: Some("a.proto".to_owned()),
            package: Some("a".to_owned()),
            dependency: vec!["google/protobuf/descriptor.proto".to_owned()],
            extension: vec![FieldDescriptorProto {
                name: Some("owner".to_owned()),
                number: Some(50001),
                label: Some(Label::Optional as i32),
                r#type: Some(Type::String as i32),
                extendee: Some(".google.protobuf.FileOptions".to_owned()),
                ..FieldDescriptorProto::default()
            }],
            message_type: vec![DescriptorProto {
                name: Some("M".to_owned()),
                ..DescriptorProto::default()
            }],
            ..FileDescriptorProto::default()
        };
        let mut options = FileOptions {
            java_package: Some("x".to_owned()),
            ..FileOptions::default()
        }
        .encode_to_vec();
        options.extend_from_slice(option);
        let mut bytes = file.encode_to_vec();
        // `FileDescriptorProto.options = 8`.
        prost::encoding::encode_key(8, prost::encoding::WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(options.len() as u64, &mut bytes);
        bytes.extend_from_slice(&options);
        bytes
    }

    #[test]
    fn a_custom_option_survives_into_the_pool() {
        let served = ServedFile::decode(file_with_custom_option()).expect("decodes");
        assert_eq!(served.name(), "a.proto");
        assert_eq!(
            served.proto.dependency,
            ["google/protobuf/descriptor.proto"]
        );
        // The decoded file alone has lost the value (what the pool was built from before).
        let mut lossy = DescriptorPool::global();
        lossy
            .add_file_descriptor_protos([served.proto.clone()])
            .expect("builds");
        let owner = lossy.get_extension_by_name("a.owner").expect("declared");
        let file = lossy.get_file_by_name("a.proto").expect("added");
        assert!(!file.options().has_extension(&owner));
        let mut pool = DescriptorPool::global();
        add_to_pool(&mut pool, [served]).expect("builds");
        let file = pool.get_file_by_name("a.proto").expect("added");
        let owner = pool.get_extension_by_name("a.owner").expect("declared");
        let options = file.options();
        let value = options.get_extension(&owner);
        assert_eq!(value.as_str(), Some("me"));
    }

    /// `name` importing `imports`, every one of them publicly.
    fn importing(name: &str, imports: &[&str]) -> ServedFile {
        let file = FileDescriptorProto {
            name: Some(name.to_owned()),
            dependency: imports.iter().map(|&import| import.to_owned()).collect(),
            public_dependency: (0..imports.len() as i32).collect(),
            ..FileDescriptorProto::default()
        };
        ServedFile::decode(file.encode_to_vec()).expect("decodes")
    }

    #[test]
    fn files_importing_each_other_in_a_cycle_are_refused_naming_them() {
        // A cycle of public imports sent prost-reflect's build into endless recursion: the
        // process died of a stack overflow (a hostile reflection server crashed the CLI).
        let cycles = [
            vec![importing("a.proto", &["a.proto"])],
            vec![
                importing("a.proto", &["b.proto"]),
                importing("b.proto", &["a.proto"]),
            ],
            vec![
                importing("top.proto", &["a.proto"]),
                importing("a.proto", &["b.proto"]),
                importing("b.proto", &["c.proto"]),
                importing("c.proto", &["a.proto"]),
            ],
        ];
        for files in cycles {
            let names: Vec<String> = files.iter().map(|f| f.name().to_owned()).collect();
            let err = add_to_pool(&mut DescriptorPool::new(), files).expect_err("a cycle");
            assert!(err.contains("import each other in a cycle"), "{err}");
            for name in &names {
                assert!(err.contains(name.as_str()), "{name} in {err}");
            }
        }
        // Imports that only share files (a diamond) build.
        let diamond = [
            importing("top.proto", &["l.proto", "r.proto"]),
            importing("l.proto", &["base.proto"]),
            importing("r.proto", &["base.proto"]),
            importing("base.proto", &[]),
        ];
        add_to_pool(&mut DescriptorPool::new(), diamond).expect("a diamond builds");
    }

    #[test]
    fn a_custom_option_the_pool_cannot_read_is_left_out_not_fatal() {
        // `owner` is a string; the value sent is a varint.
        let mut option = Vec::new();
        prost::encoding::int32::encode(50001, &7, &mut option);
        let bytes = file_with_option_bytes(&option);
        let mut strict = DescriptorPool::global();
        let mut set = Vec::new();
        prost::encoding::bytes::encode(1, &bytes, &mut set);
        assert!(strict.decode_file_descriptor_set(set.as_slice()).is_err());
        let served = ServedFile::decode(bytes).expect("decodes");
        let mut pool = DescriptorPool::global();
        add_to_pool(&mut pool, [served]).expect("builds without the option");
        assert!(pool.get_message_by_name("a.M").is_some());
    }
}
