//! What `serve --uds` and `bench --uds-target` take: a socket file's path, as written, or on
//! Linux `unix-abstract:NAME` for an abstract socket (gRPC's form: a name, no file; a file
//! named so is `./unix-abstract:NAME`). Either travels as a path, an abstract name as NUL and
//! the name, as `Endpoint::unix_path` carries it, so binding and connecting take both alike.

use sockrpc::Endpoint;
use std::path::{Path, PathBuf};

/// The scheme of an abstract socket's name.
const ABSTRACT: &str = "unix-abstract:";

/// Parses a `--uds` value: `unix-abstract:NAME` as `Endpoint::from_uri` reads it (refused off
/// Linux, or for a name that cannot be one), else the path as written.
pub(crate) fn parse(text: &str) -> Result<PathBuf, String> {
    if !text.starts_with(ABSTRACT) {
        return Ok(PathBuf::from(text));
    }
    Endpoint::from_uri(text)
        .map_err(|status| status.message().to_owned())?
        .unix_path
        .ok_or_else(|| format!("{text:?} names no Unix socket"))
}

/// How a `--uds` socket is shown (`serve`'s `uds=`, errors): its path, or `unix-abstract:NAME`,
/// which [`parse`] takes back.
pub(crate) fn show(path: &Path) -> String {
    match sockrpc::transport::abstract_name(path) {
        Some(_) => Endpoint::unix(path).to_string(),
        None => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_as_written_or_an_abstract_name() {
        assert_eq!(parse("/run/x.sock"), Ok(PathBuf::from("/run/x.sock")));
        assert_eq!(parse("rel%20x.sock"), Ok(PathBuf::from("rel%20x.sock")));
        assert_eq!(show(Path::new("/run/x.sock")), "/run/x.sock");
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let path = parse("unix-abstract:bench").expect("a name");
            assert_eq!(
                sockrpc::transport::abstract_name(&path),
                Some(&b"bench"[..])
            );
            assert_eq!(show(&path), "unix-abstract:bench");
            let err = parse("unix-abstract:").expect_err("no name");
            assert!(err.contains("no abstract socket name"), "{err}");
        }
    }
}
