//! `Idempotency` and `RpcMethod`: what a generated client knows about each method, handed to
//! the middleware with every call.
//!
//! Why it travels with the call: a retry layer must know whether running a method twice is
//! harmless before it sends it again, and the `.proto` says so (`option idempotency_level`).
//! Generated clients pass the level in; the [`Call`](crate::Call) carries it in a one-byte
//! field, so middleware reads it without a lookup table and without any configuration.

use sockrpc_protocol::{MethodPath, StaticMethodPath};

/// How safe it is to run a method more than once, from `google.protobuf.MethodOptions`'
/// `idempotency_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Idempotency {
    /// Not marked (`IDEMPOTENCY_UNKNOWN`): a second run may do the work twice, so only calls the
    /// server provably never started are sent again.
    #[default]
    Unknown,
    /// `NO_SIDE_EFFECTS`: a pure read; may be retried and hedged.
    NoSideEffects,
    /// `IDEMPOTENT`: running it twice leaves the same state as once; may be retried.
    Idempotent,
}

impl Idempotency {
    /// Whether a call that may have run can be run again (`NO_SIDE_EFFECTS` or `IDEMPOTENT`).
    pub fn is_retry_safe(self) -> bool {
        !matches!(self, Idempotency::Unknown)
    }

    /// Whether several copies may run at once (`NO_SIDE_EFFECTS` only): what hedging needs.
    pub fn is_hedge_safe(self) -> bool {
        matches!(self, Idempotency::NoSideEffects)
    }
}

/// A method as a client calls it: its path and its idempotency level. Generated clients build
/// one per rpc in a constant, so its path is checked and split at compile time (not on every
/// call); a bare `&'static str` path converts into one of unknown idempotency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcMethod {
    path: StaticMethodPath,
    idempotency: Idempotency,
}

impl RpcMethod {
    /// The method at `path` (`/package.Service/Method`) with `idempotency`.
    pub const fn new(path: &'static str, idempotency: Idempotency) -> RpcMethod {
        RpcMethod {
            path: StaticMethodPath::new(path),
            idempotency,
        }
    }

    /// `/package.Service/Method`.
    pub const fn path(&self) -> &'static str {
        self.path.as_str()
    }

    /// The path as a call carries it (split when this was made: nothing searched here).
    pub const fn method_path(&self) -> MethodPath {
        self.path.method_path()
    }

    /// The level the `.proto` gives it.
    pub const fn idempotency(&self) -> Idempotency {
        self.idempotency
    }
}

impl From<&'static str> for RpcMethod {
    fn from(path: &'static str) -> RpcMethod {
        RpcMethod::new(path, Idempotency::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built in a constant, a method carries its path split already, as
    /// `MethodPath::from_static` would split it.
    #[test]
    fn a_constant_method_carries_its_split_path() {
        const ECHO: RpcMethod = RpcMethod::new("/pkg.Svc/Echo", Idempotency::Idempotent);
        let path = ECHO.method_path();
        assert_eq!((path.service(), path.method()), ("pkg.Svc", "Echo"));
        assert_eq!(path, MethodPath::from_static(ECHO.path()));
        assert!(path.is_valid());
        let bad = RpcMethod::from("/a/b/c");
        assert!(!bad.method_path().is_valid());
        assert_eq!(bad.idempotency(), Idempotency::Unknown);
    }
}
