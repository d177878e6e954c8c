//! Unix socket names in endpoint URIs, as gRPC's naming doc and grpc-go's unix resolver take
//! them, and written back so that an endpoint's `Display` parses to the same socket.
//!
//! grpc-go reads a target with Go's `net/url` and takes the URL's path, or its opaque part when
//! it has no path. So after `unix:` (and `unix-abstract:`) a name that begins with `/` is a
//! path, percent-decoded (`unix:///tmp/a%20b.sock` is the file `/tmp/a b.sock`, and a bad
//! escape fails the parse), and a name that does not is opaque, taken as written
//! (`unix:a%20b.sock` is the file `a%20b.sock`, relative to the working directory). A
//! non-empty authority (`unix://tmp/x.sock`) is refused, as grpc-go refuses it. gRPC C-core
//! percent-decodes the opaque form too; grpc-go, which sockrpc follows, does not. A `?query`
//! and a `#fragment` are not part of the name (Go's URL keeps them apart, and grpc-go drops
//! them; a bad escape in the fragment fails the parse, as it fails Go's). On Linux an opaque
//! `unix:@NAME` is the abstract socket `NAME`, as grpc-go dials it (Go's `net` reads a Unix
//! address that begins with `@` as abstract): the same socket as `unix-abstract:NAME`. Kept
//! apart from `endpoint.rs`, which holds the endpoint's settings.

use crate::unix_abstract::{abstract_name, abstract_path, check_name};
use sockrpc_protocol::Status;
use std::ffi::OsString;
use std::fmt::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The Unix socket forms [`Endpoint::from_uri`](crate::Endpoint::from_uri) takes, as gRPC's
/// naming doc has them; named in every error about a `unix:` URI.
pub(crate) const UNIX_FORMS: &str =
    "write unix:PATH (relative or absolute) or unix:///ABSOLUTE/PATH";

/// The form of a Linux abstract socket's name, named in every error about one.
const ABSTRACT_FORM: &str = "write unix-abstract:NAME";

/// Whether `unix:@NAME` names the abstract socket `NAME`: where Go's `net` reads a leading `@`
/// so (Linux, and Android). Elsewhere `@NAME` is a file's relative path, as there.
const ABSTRACT_AT: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// A scheme that names a Unix socket, and how its errors speak of the socket.
#[derive(Clone, Copy)]
struct Scheme {
    /// `unix:` or `unix-abstract:`.
    prefix: &'static str,
    /// What the name is called: `socket path`, `abstract socket name`.
    what: &'static str,
    /// The forms taken, as its errors name them.
    forms: &'static str,
}

const UNIX: Scheme = Scheme {
    prefix: "unix:",
    what: "socket path",
    forms: UNIX_FORMS,
};

const ABSTRACT: Scheme = Scheme {
    prefix: "unix-abstract:",
    what: "abstract socket name",
    forms: ABSTRACT_FORM,
};

/// The socket path of the `unix:` URI `uri`, `rest` being what follows `unix:` (for an
/// opaque `@NAME` on Linux, the abstract socket's, a NUL first).
pub(crate) fn socket_path(uri: &str, rest: &str) -> Result<PathBuf, Status> {
    let bytes = name(UNIX, uri, rest)?;
    if let (true, Some(abstract_name)) = (ABSTRACT_AT, bytes.strip_prefix(b"@")) {
        check_name(abstract_name).map_err(|why| {
            Status::invalid_argument(format!(
                "invalid endpoint {uri:?}: {why} (unix:@NAME is the abstract socket NAME); \
                 {ABSTRACT_FORM}"
            ))
        })?;
        return Ok(abstract_path(abstract_name));
    }
    if bytes.contains(&0) {
        // A NUL cannot be in a file's path; a NUL first would name an abstract socket.
        return Err(Status::invalid_argument(format!(
            "invalid endpoint {uri:?}: a socket path cannot contain a NUL byte; {UNIX_FORMS}"
        )));
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// The abstract name of the `unix-abstract:` URI `uri` (without the leading NUL the socket
/// address has), `rest` being what follows `unix-abstract:`; refused off Linux.
pub(crate) fn abstract_socket_name(uri: &str, rest: &str) -> Result<Vec<u8>, Status> {
    let bytes = name(ABSTRACT, uri, rest)?;
    check_name(&bytes).map_err(|why| {
        Status::invalid_argument(format!("invalid endpoint {uri:?}: {why}; {ABSTRACT_FORM}"))
    })?;
    Ok(bytes)
}

/// The name a Unix socket URI gives: `rest` as written when opaque, percent-decoded when it is
/// a path (after an empty authority, or beginning with `/`). `unix://tmp/x.sock` names the host
/// `tmp`, which a Unix socket cannot have: it is refused here, as grpc-go refuses it ("invalid
/// (non-empty) authority"), rather than taken as the relative path `tmp/x.sock` and failing
/// at connect time with ENOENT.
fn name(scheme: Scheme, uri: &str, rest: &str) -> Result<Vec<u8>, Status> {
    let Scheme {
        prefix,
        what,
        forms,
    } = scheme;
    let bad_escape = |escape: String, part: &str| {
        Status::invalid_argument(format!(
            "invalid endpoint {uri:?}: invalid percent-escape {escape:?} in the {part} (write \
             %25 for a '%')"
        ))
    };
    // As Go's URL parser: the fragment goes first (its escapes checked), then the query.
    let rest = match rest.split_once('#') {
        Some((before, fragment)) => {
            percent_decode(fragment).map_err(|escape| bad_escape(escape, "fragment"))?;
            before
        }
        None => rest,
    };
    let rest = rest.split_once('?').map_or(rest, |(before, _query)| before);
    let path = match rest.strip_prefix("//") {
        None => rest,
        Some(after) => {
            let authority = after.find('/').map_or(after, |at| &after[..at]);
            if !authority.is_empty() {
                let examples = if prefix == UNIX.prefix {
                    format!(
                        "{:?} or {:?}",
                        format!("unix:///{after}"),
                        format!("unix:{after}")
                    )
                } else {
                    format!("{:?}", format!("{prefix}{after}"))
                };
                return Err(Status::invalid_argument(format!(
                    "invalid endpoint {uri:?}: invalid (non-empty) authority {authority:?}: a \
                     Unix socket has no host; {forms} (e.g. {examples})"
                )));
            }
            &after[authority.len()..]
        }
    };
    if path.is_empty() {
        return Err(Status::invalid_argument(format!(
            "invalid endpoint {uri:?}: no {what}; {forms}"
        )));
    }
    if !path.starts_with('/') {
        return Ok(path.as_bytes().to_vec());
    }
    percent_decode(path).map_err(|escape| bad_escape(escape, what))
}

/// `text` with every `%XX` replaced by the byte it stands for; a `%` without two hex digits
/// after it is an error, given as the escape written.
fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        if byte != b'%' {
            decoded.push(byte);
            at += 1;
            continue;
        }
        let digit = |offset: usize| {
            bytes
                .get(at + offset)
                .and_then(|&b| char::from(b).to_digit(16))
        };
        match (digit(1), digit(2)) {
            (Some(high), Some(low)) => {
                // Two hex digits: at most 0xff.
                decoded.push(u8::try_from(high * 16 + low).unwrap_or(u8::MAX));
                at += 3;
            }
            _ => return Err(text[at..].chars().take(3).collect()),
        }
    }
    Ok(decoded)
}

/// Writes `bytes` as the path of a URI, which is percent-decoded when parsed: `%`, control
/// characters and bytes that are not UTF-8 percent-encoded, the rest as it is.
fn write_encoded(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            // `?` and `#` would end the path.
            if matches!(c, '%' | '?' | '#') || c.is_control() {
                for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                    write!(f, "%{byte:02X}")?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        for byte in chunk.invalid() {
            write!(f, "%{byte:02X}")?;
        }
    }
    Ok(())
}

/// Writes the URI of the Unix socket `path` (a NUL first: the abstract name after it) in a
/// form that parses back to it: `unix:///abs` (percent-encoded), `unix:rel` (opaque, as it is:
/// `unix://rel` would name the host of `rel`'s first component; `unix:./@rel` for a name that
/// begins with `@`), `unix-abstract:NAME`. A relative path with `?` or `#` in it has no form
/// grpc-go reads back (its opaque part is not decoded): it is written as it is.
pub(crate) fn write_uri(f: &mut fmt::Formatter<'_>, path: &Path) -> fmt::Result {
    let (prefix, bytes) = match abstract_name(path) {
        Some(name) => (ABSTRACT.prefix, name),
        None => (UNIX.prefix, path.as_os_str().as_bytes()),
    };
    f.write_str(prefix)?;
    if bytes.starts_with(b"/") {
        // An empty authority first: a path beginning `//` must not read as one.
        f.write_str("//")?;
        write_encoded(f, bytes)
    } else {
        if ABSTRACT_AT && prefix == UNIX.prefix && bytes.starts_with(b"@") {
            // A file `@x` in the working directory: `unix:@x` would name an abstract socket.
            f.write_str("./")?;
        }
        f.write_str(&String::from_utf8_lossy(bytes))
    }
}
