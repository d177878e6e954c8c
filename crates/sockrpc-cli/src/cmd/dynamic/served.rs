//! The files reflection sends, kept as the bytes they came as.
//!
//! `prost_types::FileDescriptorProto` has no room for extensions, so decoding into it drops
//! every custom option's value (`option (google.api.http) = { .. }` on an rpc, `[(pkg.ext) =
//! ..]` on a field), and a pool built from it has none to describe. A file is decoded into it
//! for its name and imports alone; the pool is built from the bytes, which prost-reflect
//! decodes with the options whole.

use prost::Message;
use prost_reflect::{DescriptorError, DescriptorPool};
use sockrpc::codegen::prost_types::FileDescriptorProto;

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
pub(crate) fn add_to_pool(
    pool: &mut DescriptorPool,
    files: impl IntoIterator<Item = ServedFile>,
) -> Result<(), DescriptorError> {
    let files: Vec<ServedFile> = files.into_iter().collect();
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
        Err(_) => pool.add_file_descriptor_protos(files.into_iter().map(|file| file.proto)),
    }
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
