//! How `.proto` files are read: protox's lookup along the include paths, plus what protoc
//! accepts and protox does not, and a clear word on what neither of us reads.
//!
//! - A file starting with a UTF-8 byte order mark (as some Windows editors save them) is read
//!   without it, as protoc does; protox would stop at `1:1: invalid token`. Places in errors
//!   count from after the mark, as an editor shows the text.
//! - A file declaring `edition = "2023"` (protobuf editions) is refused with an error naming the
//!   file and saying editions are not supported, where protox's parser would complain of an
//!   unexpected `edition`.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// The UTF-8 encoding of U+FEFF.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// The paths of the files read without their byte order mark: protox records no path for a
/// file given as text, so `cargo:rerun-if-changed` takes them from here.
pub(crate) type StrippedPaths = Rc<RefCell<Vec<PathBuf>>>;

/// The resolver for `includes`, in order, then the `google/protobuf/*.proto` files protox
/// carries (what `protox::Compiler::new` builds), reading files as described above.
pub(crate) fn resolver(
    includes: &[impl AsRef<Path>],
    stripped: &StrippedPaths,
) -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    for include in includes {
        let dir = include.as_ref().to_owned();
        chain.add(IncludeDir {
            inner: IncludeFileResolver::new(dir.clone()),
            dir,
            stripped: Rc::clone(stripped),
        });
    }
    chain.add(GoogleFileResolver::new());
    chain
}

/// Where a requested `.proto` is read from, for `cargo:rerun-if-changed`: the path as given when
/// a file is there, else the first include path holding it (protox takes a path relative to an
/// include path, as `grpc/testing/test.proto` with `../protos` included), else as given (the
/// build then fails saying so). Printed as given although it names no file, it would make cargo
/// find the file missing and run the build script, and compile the crate, on every build.
pub(crate) fn requested_path(proto: &Path, includes: &[impl AsRef<Path>]) -> PathBuf {
    if proto.is_file() {
        return proto.to_owned();
    }
    includes
        .iter()
        .map(|dir| dir.as_ref().join(proto))
        .find(|path| path.is_file())
        .unwrap_or_else(|| proto.to_owned())
}

/// One include path: protox's resolver, with a look at the file's start first.
struct IncludeDir {
    dir: PathBuf,
    inner: IncludeFileResolver,
    stripped: StrippedPaths,
}

impl FileResolver for IncludeDir {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let path = self.dir.join(name);
        // Missing, unreadable or not UTF-8: protox reports each its own way.
        let Ok(bytes) = std::fs::read(&path) else {
            return self.inner.open_file(name);
        };
        let bom = bytes.starts_with(BOM);
        let Ok(text) = std::str::from_utf8(bytes.strip_prefix(BOM).unwrap_or(&bytes)) else {
            return self.inner.open_file(name);
        };
        if let Some(error) = edition_error(name, text) {
            return Err(protox::Error::new(error));
        }
        if !bom {
            return self.inner.open_file(name);
        }
        self.stripped.borrow_mut().push(path);
        File::from_source(name, text)
    }
}

/// The error for a file whose first statement is `edition = ..;`, placed protoc-style at it.
fn edition_error(name: &str, text: &str) -> Option<String> {
    let at = first_token(text);
    let rest = &text[at..];
    let after = rest.strip_prefix("edition")?;
    if !after.trim_start().starts_with('=') {
        return None;
    }
    let statement = rest.split(';').next().unwrap_or(rest).trim();
    let line = text[..at].matches('\n').count() + 1;
    let column = text[..at]
        .rsplit('\n')
        .next()
        .map_or(0, |line| line.chars().count())
        + 1;
    Some(format!(
        "{name}:{line}:{column}: `{statement};`: protobuf editions are not supported (protox, \
         which sockrpc-build parses .proto files with, reads proto2 and proto3 only); declare \
         `syntax = \"proto3\";` or `syntax = \"proto2\";` instead"
    ))
}

/// Where the first token of `text` starts, past whitespace and comments.
fn first_token(text: &str) -> usize {
    let mut at = 0;
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("//") {
            at += trimmed.find('\n').unwrap_or(trimmed.len());
        } else if let Some(comment) = trimmed.strip_prefix("/*") {
            at += comment.find("*/").map_or(trimmed.len(), |end| end + 4);
        } else {
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_requested_file_is_watched_where_it_is_read() {
        let root = tempfile::tempdir().expect("temp dir");
        let (first, second) = (root.path().join("first"), root.path().join("second"));
        std::fs::create_dir_all(second.join("pkg")).expect("dirs");
        std::fs::create_dir_all(&first).expect("dirs");
        let proto = second.join("pkg/a.proto");
        std::fs::write(&proto, "syntax = \"proto3\";").expect("write");
        let includes = [&first, &second];
        // Named relative to an include path: the file under it, not a path that names nothing.
        assert_eq!(requested_path(Path::new("pkg/a.proto"), &includes), proto);
        // Named as it is: kept.
        assert_eq!(requested_path(&proto, &includes), proto);
        // Nowhere: as given.
        let missing = Path::new("pkg/missing.proto");
        assert_eq!(requested_path(missing, &includes), missing);
    }

    #[test]
    fn editions_are_found_past_comments() {
        let text = "// header\n/* block\n */  edition = \"2023\";\npackage x;";
        let error = edition_error("x.proto", text).expect("an edition");
        assert!(
            error.starts_with("x.proto:3:6: `edition = \"2023\";`: protobuf editions"),
            "{error}"
        );
        assert!(edition_error("x.proto", "syntax = \"proto3\";").is_none());
        assert!(edition_error("x.proto", "editions_are_not = 1;").is_none());
        assert!(edition_error("x.proto", "/* unclosed").is_none());
        assert!(edition_error("x.proto", "").is_none());
    }
}
