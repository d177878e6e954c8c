//! `MethodPath`: the name a call is routed by, `/package.Service/Method`.

use bytes::Bytes;
use std::fmt;

/// A method path, `/package.Service/Method`, held as bytes so that a path read off the wire is a
/// slice of the frame rather than a fresh allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MethodPath(Bytes);

/// Why a method path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid method path {0:?}: expected /package.Service/Method in UTF-8")]
pub struct InvalidPath(pub String);

impl MethodPath {
    /// A path from a string known at compile time; not checked, so generated code pays nothing.
    pub const fn from_static(path: &'static str) -> MethodPath {
        MethodPath(Bytes::from_static(path.as_bytes()))
    }

    /// The same path in storage of its own (a path decoded off the wire shares the read
    /// buffer; one that is held for long should not keep that buffer alive).
    pub fn unshared(&self) -> MethodPath {
        MethodPath(Bytes::copy_from_slice(&self.0))
    }

    /// Checks and wraps a path: UTF-8, a leading `/`, exactly one more `/`, neither part empty.
    pub fn try_from_bytes(bytes: Bytes) -> Result<MethodPath, InvalidPath> {
        let valid = std::str::from_utf8(&bytes).ok().is_some_and(is_valid);
        if valid {
            Ok(MethodPath(bytes))
        } else {
            Err(InvalidPath(String::from_utf8_lossy(&bytes).into_owned()))
        }
    }

    /// The whole path.
    pub fn as_str(&self) -> &str {
        // Both constructors guarantee UTF-8; the fallback is unreachable but keeps this safe code.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The path's bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// `package.Service`.
    pub fn service(&self) -> &str {
        let path = self.as_str();
        let rest = path.strip_prefix('/').unwrap_or(path);
        rest.rsplit_once('/').map_or(rest, |(service, _)| service)
    }

    /// `Method`.
    pub fn method(&self) -> &str {
        let path = self.as_str();
        path.rsplit_once('/').map_or(path, |(_, method)| method)
    }
}

fn is_valid(path: &str) -> bool {
    match path.strip_prefix('/').and_then(|rest| rest.split_once('/')) {
        Some((service, method)) => {
            !service.is_empty() && !method.is_empty() && !method.contains('/')
        }
        None => false,
    }
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
        for bad in ["", "/", "//", "/a/", "//b", "a/b", "/a/b/c", "/a"] {
            assert!(
                MethodPath::try_from_bytes(Bytes::from(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(MethodPath::try_from_bytes(Bytes::from_static(&[b'/', 0xff, b'/', b'm'])).is_err());
    }
}
