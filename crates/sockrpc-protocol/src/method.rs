//! `MethodPath`: the name a call is routed by, `/package.Service/Method`.

use bytes::Bytes;
use std::fmt;

/// A method path, `/package.Service/Method`, held as bytes so that a path read off the wire is a
/// slice of the frame rather than a fresh allocation. The position of the second `/` is found
/// once, when the path is checked, so routing by service and method searches nothing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MethodPath {
    bytes: Bytes,
    /// Index of the `/` between service and method; 0 for an invalid static path (no valid one
    /// has it there).
    split: usize,
}

/// Why a method path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid method path {0:?}: expected /package.Service/Method in UTF-8")]
pub struct InvalidPath(pub String);

impl MethodPath {
    /// A path from a string known at compile time, split at compile time when it is a
    /// constant (generated code pays nothing). An invalid one still compiles and is kept, but a
    /// client refuses to send it ([`is_valid`](MethodPath::is_valid)): on the wire a server
    /// would refuse it.
    pub const fn from_static(path: &'static str) -> MethodPath {
        let bytes = path.as_bytes();
        MethodPath {
            bytes: Bytes::from_static(bytes),
            split: static_split(bytes),
        }
    }

    /// Whether this is a valid path: `/package.Service/Method`, neither part empty, in UTF-8.
    /// A path read off the wire always is; one made by [`from_static`](MethodPath::from_static)
    /// may not be.
    pub fn is_valid(&self) -> bool {
        self.split != 0
    }

    /// The same path in storage of its own (a path decoded off the wire shares the read
    /// buffer; one that is held for long should not keep that buffer alive).
    pub fn unshared(&self) -> MethodPath {
        MethodPath {
            bytes: Bytes::copy_from_slice(&self.bytes),
            split: self.split,
        }
    }

    /// Checks and wraps a path: UTF-8, a leading `/`, exactly one more `/`, neither part empty.
    pub fn try_from_bytes(bytes: Bytes) -> Result<MethodPath, InvalidPath> {
        match split_of(&bytes) {
            Some(split) => Ok(MethodPath { bytes, split }),
            None => Err(InvalidPath(String::from_utf8_lossy(&bytes).into_owned())),
        }
    }

    /// The whole path.
    pub fn as_str(&self) -> &str {
        // Both constructors guarantee UTF-8; the fallback is unreachable but keeps this safe code.
        std::str::from_utf8(&self.bytes).unwrap_or("")
    }

    /// The path's bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// `package.Service`.
    pub fn service(&self) -> &str {
        std::str::from_utf8(self.service_bytes()).unwrap_or("")
    }

    /// `package.Service` as bytes: what a router looks up, with no UTF-8 check repeated.
    pub fn service_bytes(&self) -> &[u8] {
        let start = usize::from(self.bytes.first() == Some(&b'/')).min(self.split);
        &self.bytes[start..self.split]
    }

    /// `Method`.
    pub fn method(&self) -> &str {
        std::str::from_utf8(self.method_bytes()).unwrap_or("")
    }

    /// `Method` as bytes: what generated servers match on, with no UTF-8 check repeated.
    pub fn method_bytes(&self) -> &[u8] {
        let start = if self.bytes.get(self.split) == Some(&b'/') {
            self.split + 1
        } else {
            self.split
        };
        &self.bytes[start..]
    }
}

/// A method path known at compile time, with its split found when it is made: a `Copy` handle
/// that turns into a [`MethodPath`] without searching the path again. Made in a constant (as
/// generated clients do), it costs nothing per call; [`MethodPath::from_static`] searches the
/// path each time it runs, which a client paid on every call.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaticMethodPath {
    path: &'static str,
    /// As [`MethodPath`]'s: 0 for an invalid path.
    split: usize,
}

impl StaticMethodPath {
    /// `path`, checked as [`MethodPath::from_static`] checks it (an invalid path is kept, and
    /// refused when sent).
    pub const fn new(path: &'static str) -> StaticMethodPath {
        StaticMethodPath {
            path,
            split: static_split(path.as_bytes()),
        }
    }

    /// The whole path.
    pub const fn as_str(&self) -> &'static str {
        self.path
    }

    /// The path as a [`MethodPath`]: no search, no allocation.
    pub const fn method_path(&self) -> MethodPath {
        MethodPath {
            bytes: Bytes::from_static(self.path.as_bytes()),
            split: self.split,
        }
    }
}

impl fmt::Debug for StaticMethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.path, f)
    }
}

/// [`split_of`] for a `&str` at compile time: 0 for an invalid path (no valid path has its
/// second `/` at 0, its service is not empty).
const fn static_split(path: &[u8]) -> usize {
    if path.is_empty() || path[0] != b'/' {
        return 0;
    }
    let mut split = 0;
    let mut i = 1;
    while i < path.len() {
        if path[i] == b'/' {
            if split != 0 {
                return 0;
            }
            split = i;
        }
        i += 1;
    }
    if split < 2 || split + 1 == path.len() {
        return 0;
    }
    split
}

/// The index of the `/` between service and method of a valid path, or `None`.
///
/// Paths are ASCII in practice, so that is checked first (a word at a time) and one search for
/// `/` follows; only a path with other bytes pays for a full UTF-8 check.
fn split_of(path: &[u8]) -> Option<usize> {
    if !path.is_ascii() {
        std::str::from_utf8(path).ok()?;
    }
    let rest = path.strip_prefix(b"/")?;
    let split = rest.iter().position(|&b| b == b'/')?;
    let method = &rest[split + 1..];
    let valid = split > 0 && !method.is_empty() && !method.contains(&b'/');
    valid.then_some(1 + split)
}

impl fmt::Debug for MethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MethodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let path = MethodPath::from_static("/helloworld.Greeter/SayHello");
        assert_eq!(path.service(), "helloworld.Greeter");
        assert_eq!(path.method(), "SayHello");
        let read = MethodPath::try_from_bytes(Bytes::from("/helloworld.Greeter/SayHello"));
        assert_eq!(
            read.as_ref().map(MethodPath::service),
            Ok("helloworld.Greeter")
        );
        assert_eq!(read.as_ref().map(MethodPath::method), Ok("SayHello"));
        assert_eq!(read, Ok(path));
        let odd = MethodPath::from_static("no-slash");
        assert_eq!((odd.service(), odd.method()), ("", "no-slash"));
        for bad in [
            "", "/", "//", "/a/", "//b", "a/b", "/a/b/c", "/a", "no-slash", "/a//",
        ] {
            assert!(
                MethodPath::try_from_bytes(Bytes::from(bad)).is_err(),
                "{bad}"
            );
            assert!(!MethodPath::from_static(bad).is_valid(), "{bad}");
        }
        for good in ["/a/b", "/helloworld.Greeter/SayHello", "/pkg.Sérvice/Mé"] {
            assert!(MethodPath::from_static(good).is_valid(), "{good}");
        }
        assert!(MethodPath::try_from_bytes(Bytes::from_static(&[b'/', 0xff, b'/', b'm'])).is_err());
        // Not ASCII but UTF-8: valid, split at the right byte.
        let wide = MethodPath::try_from_bytes(Bytes::from("/pkg.Sérvice/Mé")).map(|p| {
            (
                p.service().to_owned(),
                p.method().to_owned(),
                p.method_bytes().len(),
            )
        });
        assert_eq!(wide, Ok(("pkg.Sérvice".to_owned(), "Mé".to_owned(), 3)));
        // A `StaticMethodPath` splits as `from_static` does.
        for path in [
            "/a/b",
            "/helloworld.Greeter/SayHello",
            "/a/b/c",
            "no-slash",
            "",
        ] {
            let fixed = StaticMethodPath::new(path);
            assert_eq!(fixed.as_str(), path);
            let made = fixed.method_path();
            let searched = MethodPath::from_static(path);
            assert_eq!(made, searched, "{path}");
            assert_eq!(made.is_valid(), searched.is_valid(), "{path}");
            assert_eq!(
                (made.service(), made.method()),
                (searched.service(), searched.method())
            );
        }
    }
}
