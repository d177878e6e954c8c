//! `--proto` files saved with a UTF-8 byte order mark (as some Windows editors save them) are
//! read without it, as protoc and `sockrpc-build` read them: protox alone stops at
//! `invalid token`, so a file a crate builds from would not serve `sockrpc call --proto`.

use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};
use std::path::{Path, PathBuf};

/// The UTF-8 encoding of U+FEFF.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// What `protox::Compiler::new(includes)` resolves with (each include path in order, then the
/// `google/protobuf/*.proto` files protox carries), reading a file past its byte order mark.
pub(crate) fn resolver(includes: &[PathBuf]) -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    for dir in includes {
        chain.add(IncludeDir {
            inner: IncludeFileResolver::new(dir.clone()),
            dir: dir.clone(),
        });
    }
    chain.add(GoogleFileResolver::new());
    chain
}

/// One include path: protox's resolver, with a look at the file's first bytes first.
struct IncludeDir {
    dir: PathBuf,
    inner: IncludeFileResolver,
}

impl FileResolver for IncludeDir {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        // Missing, unreadable, not UTF-8 or without a mark: protox reads it its own way.
        let stripped = std::fs::read(self.dir.join(name))
            .ok()
            .and_then(|bytes| Some(String::from_utf8(bytes.strip_prefix(BOM)?.to_vec())));
        match stripped {
            Some(Ok(text)) => File::from_source(name, &text),
            _ => self.inner.open_file(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_a_byte_order_mark_compiles_as_without() {
        let dir = std::env::temp_dir().join(format!("sockrpc-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let text = "syntax = \"proto3\";\r\npackage bom.v1;\r\nmessage M { string s = 1; }\r\n";
        std::fs::write(dir.join("bom.proto"), [BOM, text.as_bytes()].concat()).expect("write");
        std::fs::write(dir.join("plain.proto"), text.replace("bom.v1", "plain.v1")).expect("write");
        let mut compiler =
            protox::Compiler::with_file_resolver(resolver(std::slice::from_ref(&dir)));
        let opened = compiler.open_files(["bom.proto", "plain.proto"]);
        let _ = std::fs::remove_dir_all(&dir);
        opened.expect("both compile");
        let pool = compiler.descriptor_pool();
        assert!(pool.get_message_by_name("bom.v1.M").is_some());
        assert!(pool.get_message_by_name("plain.v1.M").is_some());
    }
}
