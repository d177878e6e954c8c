//! The registered descriptors, indexed the way reflection asks for them: a file by its name, the
//! file declaring a symbol, the file declaring an extension, and the services.
//!
//! Every file is kept encoded, as registered: an answer copies bytes (reference-counted) and
//! never re-encodes, so what `prost_types` cannot hold (extension options such as
//! `google.api.http`, a team's own method options) reaches the client as the generated set
//! carries it. The answer for a file carries it first, then the files it imports, transitively
//! (grpc-go's order), except those the same stream carried already ([`SentFiles`]), so a
//! client can build a descriptor pool from the answers of its stream.

use bytes::Bytes;
use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

/// A registered set that does not decode.
#[derive(Debug, Clone)]
pub struct IndexError(String);

impl IndexError {
    /// An error saying `message`.
    pub(crate) fn new(message: String) -> IndexError {
        IndexError(message)
    }
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IndexError {}

/// A `FileDescriptorSet` whose files stay encoded: `repeated bytes` has the wire form of
/// `repeated FileDescriptorProto` (field 1, length-delimited).
#[derive(Clone, PartialEq, Message)]
struct EncodedSet {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    file: Vec<Bytes>,
}

#[derive(Debug)]
struct File {
    encoded: Bytes,
    dependencies: Vec<String>,
}

/// Descriptors by file name, symbol and extension.
#[derive(Debug, Default)]
pub struct DescriptorIndex {
    files: HashMap<String, File>,
    /// Fully qualified symbol (no leading dot) → the file declaring it.
    symbols: HashMap<String, String>,
    /// (extended message, field number) → the file declaring the extension.
    extensions: HashMap<(String, i32), String>,
    services: BTreeSet<String>,
}

impl DescriptorIndex {
    /// An empty index.
    pub fn new() -> DescriptorIndex {
        DescriptorIndex::default()
    }

    /// Adds every file of an encoded `FileDescriptorSet`. A file already registered (the same
    /// import through two sets) is kept once.
    pub fn add_encoded_set(&mut self, set: &[u8]) -> Result<(), IndexError> {
        let undecodable = |err: prost::DecodeError| {
            IndexError(format!("a descriptor set does not decode: {err}"))
        };
        let set = EncodedSet::decode(set).map_err(undecodable)?;
        // Every file decodes before any is added: a bad set adds nothing.
        let files = set
            .file
            .into_iter()
            .map(|encoded| Ok((FileDescriptorProto::decode(encoded.clone())?, encoded)))
            .collect::<Result<Vec<_>, prost::DecodeError>>()
            .map_err(undecodable)?;
        for (file, encoded) in files {
            self.add_file_encoded(file, encoded);
        }
        Ok(())
    }

    /// Adds one file.
    pub fn add_file(&mut self, file: FileDescriptorProto) {
        let encoded = Bytes::from(file.encode_to_vec());
        self.add_file_encoded(file, encoded);
    }

    /// Adds one file, answered with `encoded` (its bytes as registered, extension options
    /// included).
    fn add_file_encoded(&mut self, file: FileDescriptorProto, encoded: Bytes) {
        let name = file.name().to_owned();
        if self.files.contains_key(&name) {
            return;
        }
        let package = file.package();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!("{package}.")
        };
        for message in &file.message_type {
            self.add_message(&prefix, message, &name);
        }
        for en in &file.enum_type {
            self.add_enum(&prefix, en, &name);
        }
        for service in &file.service {
            let full = format!("{prefix}{}", service.name());
            for method in &service.method {
                self.symbol(format!("{full}.{}", method.name()), &name);
            }
            self.services.insert(full.clone());
            self.symbol(full, &name);
        }
        for extension in &file.extension {
            self.extension(extension, &prefix, &name);
        }
        let dependencies = file.dependency.clone();
        self.files.insert(
            name,
            File {
                encoded,
                dependencies,
            },
        );
    }

    fn add_message(&mut self, prefix: &str, message: &DescriptorProto, file: &str) {
        let full = format!("{prefix}{}", message.name());
        let inner = format!("{full}.");
        for nested in &message.nested_type {
            self.add_message(&inner, nested, file);
        }
        for en in &message.enum_type {
            self.add_enum(&inner, en, file);
        }
        for extension in &message.extension {
            self.extension(extension, &inner, file);
        }
        // Fields and oneofs are symbols too (grpc-go's server finds any descriptor by its full
        // name): `describe pkg.Message.field` works as grpcurl's does.
        for field in &message.field {
            self.symbol(format!("{inner}{}", field.name()), file);
        }
        for oneof in &message.oneof_decl {
            self.symbol(format!("{inner}{}", oneof.name()), file);
        }
        self.symbol(full, file);
    }

    /// An enum and its values. A value is a sibling of its enum (`pkg.RED` for `pkg.Colour`'s
    /// `RED`), as protoc, grpc-go and protobuf-go name it; it is also found under its enum
    /// (`pkg.Colour.RED`), the name some reflection clients ask for.
    fn add_enum(&mut self, scope: &str, en: &EnumDescriptorProto, file: &str) {
        let full = format!("{scope}{}", en.name());
        for value in &en.value {
            self.symbol(format!("{scope}{}", value.name()), file);
            self.symbol(format!("{full}.{}", value.name()), file);
        }
        self.symbol(full, file);
    }

    fn extension(&mut self, field: &prost_types::FieldDescriptorProto, prefix: &str, file: &str) {
        let extendee = field.extendee().trim_start_matches('.').to_owned();
        self.extensions
            .insert((extendee, field.number()), file.to_owned());
        self.symbol(format!("{prefix}{}", field.name()), file);
    }

    fn symbol(&mut self, symbol: String, file: &str) {
        self.symbols
            .entry(symbol)
            .or_insert_with(|| file.to_owned());
    }

    /// The services the registered files declare, sorted.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(String::as_str)
    }

    /// The file named `name`, then its imports, transitively, but those `sent` on this stream
    /// already.
    pub fn file_by_name(&self, name: &str, sent: &mut SentFiles) -> Option<Vec<Bytes>> {
        self.files
            .contains_key(name)
            .then(|| self.with_imports(name, sent))
    }

    /// The file declaring `symbol` (a message, field, oneof, enum, enum value, service, method
    /// or extension, fully qualified), then its imports not `sent` yet.
    pub fn file_containing_symbol(&self, symbol: &str, sent: &mut SentFiles) -> Option<Vec<Bytes>> {
        let symbol = symbol.trim_start_matches('.');
        let file = self.symbols.get(symbol)?;
        Some(self.with_imports(file, sent))
    }

    /// The file declaring extension `number` of `message`, then its imports not `sent` yet.
    pub fn file_containing_extension(
        &self,
        message: &str,
        number: i32,
        sent: &mut SentFiles,
    ) -> Option<Vec<Bytes>> {
        let key = (message.trim_start_matches('.').to_owned(), number);
        let file = self.extensions.get(&key)?;
        Some(self.with_imports(file, sent))
    }

    /// The extension numbers registered for `message`, or `None` when the message is unknown.
    pub fn extension_numbers(&self, message: &str) -> Option<Vec<i32>> {
        let message = message.trim_start_matches('.');
        self.symbols.get(message)?;
        let mut numbers: Vec<i32> = self
            .extensions
            .keys()
            .filter(|(extendee, _)| extendee == message)
            .map(|(_, number)| *number)
            .collect();
        numbers.sort_unstable();
        Some(numbers)
    }

    /// `name` first, then the files it imports, transitively, breadth-first (grpc-go's order,
    /// which clients that read the first file as the answer rely on), leaving out those `sent`
    /// already holds and recording what goes. Each file is visited once.
    fn with_imports(&self, name: &str, sent: &mut SentFiles) -> Vec<Bytes> {
        let mut visited = HashSet::from([name]);
        let mut queue = std::collections::VecDeque::from([name]);
        let mut out = Vec::new();
        while let Some(file) = queue.pop_front() {
            let Some(entry) = self.files.get(file) else {
                continue;
            };
            // The file asked for goes every time; an import only once per stream.
            if out.is_empty() || !sent.0.contains(file) {
                sent.0.insert(file.to_owned());
                out.push(entry.encoded.clone());
            }
            for dependency in &entry.dependencies {
                if visited.insert(dependency.as_str()) {
                    queue.push_back(dependency.as_str());
                }
            }
        }
        out
    }
}

/// The files one reflection stream has sent: a later answer on the stream leaves out the
/// imports it carried already, as grpc-go's server does (its client keeps what it was given).
/// Without it a closure of large files went out whole with every answer, and past the 4 MiB
/// message limit the stream died.
#[derive(Debug, Default)]
pub struct SentFiles(HashSet<String>);

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::FileDescriptorSet;

    #[test]
    fn a_file_is_answered_with_the_bytes_it_was_registered_with() {
        let file = FileDescriptorProto {
            name: Some("opt.proto".into()),
            package: Some("opt".into()),
            ..Default::default()
        };
        // What prost_types cannot hold, as an extension option is to it: field 999, a string.
        let mut encoded = file.encode_to_vec();
        encoded.extend_from_slice(&[0xba, 0x3e, 7]);
        encoded.extend_from_slice(b"keep-me");
        let set = EncodedSet {
            file: vec![Bytes::from(encoded.clone())],
        };
        let mut index = DescriptorIndex::new();
        index
            .add_encoded_set(&set.encode_to_vec())
            .expect("valid set");
        let answer = index
            .file_by_name("opt.proto", &mut SentFiles::default())
            .expect("registered");
        assert_eq!(answer, [Bytes::from(encoded)]);
        // A set with a file that does not decode adds nothing.
        let bad = EncodedSet {
            file: vec![Bytes::from_static(b"\x0a\x05ab")],
        };
        let mut index = DescriptorIndex::new();
        assert!(index.add_encoded_set(&bad.encode_to_vec()).is_err());
        assert_eq!(index.services().count(), 0);
    }
    use prost_types::{MethodDescriptorProto, ServiceDescriptorProto};

    fn names(files: &[Bytes]) -> Vec<String> {
        files
            .iter()
            .map(|bytes| {
                FileDescriptorProto::decode(bytes.clone())
                    .expect("decodes")
                    .name()
                    .to_owned()
            })
            .collect()
    }

    fn colour(name: &str, value: &str) -> EnumDescriptorProto {
        EnumDescriptorProto {
            name: Some(name.into()),
            value: vec![prost_types::EnumValueDescriptorProto {
                name: Some(value.into()),
                number: Some(0),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn index() -> DescriptorIndex {
        let base = FileDescriptorProto {
            name: Some("base.proto".into()),
            package: Some("base".into()),
            message_type: vec![DescriptorProto {
                name: Some("Outer".into()),
                nested_type: vec![DescriptorProto {
                    name: Some("Inner".into()),
                    ..Default::default()
                }],
                field: vec![prost_types::FieldDescriptorProto {
                    name: Some("size".into()),
                    number: Some(1),
                    ..Default::default()
                }],
                enum_type: vec![colour("Shade", "DARK")],
                ..Default::default()
            }],
            enum_type: vec![colour("Colour", "RED")],
            ..Default::default()
        };
        let api = FileDescriptorProto {
            name: Some("api.proto".into()),
            package: Some("pkg".into()),
            dependency: vec!["base.proto".into()],
            service: vec![ServiceDescriptorProto {
                name: Some("Svc".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Get".into()),
                    input_type: Some(".base.Outer".into()),
                    output_type: Some(".base.Outer.Inner".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let set = FileDescriptorSet {
            file: vec![base, api],
        };
        let mut index = DescriptorIndex::new();
        index
            .add_encoded_set(&set.encode_to_vec())
            .expect("valid set");
        index
    }

    #[test]
    fn symbols_resolve_to_their_file_first_then_its_imports() {
        let index = index();
        let found = index
            .file_containing_symbol("pkg.Svc.Get", &mut SentFiles::default())
            .expect("method");
        assert_eq!(names(&found), ["api.proto", "base.proto"]);
        let found = index
            .file_containing_symbol(".base.Outer.Inner", &mut SentFiles::default())
            .expect("nested");
        assert_eq!(names(&found), ["base.proto"]);
        assert!(index
            .file_containing_symbol("pkg.Nope", &mut SentFiles::default())
            .is_none());
        let found = index
            .file_containing_symbol("base.Outer.size", &mut SentFiles::default())
            .expect("a field");
        assert_eq!(names(&found), ["base.proto"]);
        assert!(index
            .file_containing_symbol("base.Outer.nope", &mut SentFiles::default())
            .is_none());
        // Enum values: siblings of their enum, and under it.
        for value in [
            "base.RED",
            "base.Colour.RED",
            "base.Outer.DARK",
            "base.Outer.Shade.DARK",
        ] {
            let found = index
                .file_containing_symbol(value, &mut SentFiles::default())
                .expect("an enum value");
            assert_eq!(names(&found), ["base.proto"], "{value}");
        }
        assert!(index
            .file_containing_symbol("base.Colour.DARK", &mut SentFiles::default())
            .is_none());
        assert_eq!(index.services().collect::<Vec<_>>(), ["pkg.Svc"]);
        assert_eq!(
            names(
                &index
                    .file_by_name("api.proto", &mut SentFiles::default())
                    .expect("file")
            ),
            ["api.proto", "base.proto"]
        );
        assert_eq!(index.extension_numbers("base.Outer"), Some(vec![]));
        assert_eq!(index.extension_numbers("base.Missing"), None);
    }

    #[test]
    fn a_stream_is_sent_each_import_once_and_the_file_asked_for_every_time() {
        let index = index();
        let mut sent = SentFiles::default();
        let first = index.file_by_name("api.proto", &mut sent).expect("file");
        assert_eq!(names(&first), ["api.proto", "base.proto"]);
        let again = index.file_by_name("api.proto", &mut sent).expect("file");
        assert_eq!(names(&again), ["api.proto"], "base.proto went already");
        let base = index
            .file_containing_symbol("base.Outer", &mut sent)
            .expect("message");
        assert_eq!(
            names(&base),
            ["base.proto"],
            "the file asked for, sent before or not"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut index = DescriptorIndex::new();
        assert!(index.add_encoded_set(&[0xff, 0xff, 0xff]).is_err());
    }
}
