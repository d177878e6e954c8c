//! What the tests share: a loopback server, a channel to it, bounded steps.

/// A running server on `127.0.0.1:0` (`sockrpc_tests::serve`).
pub(crate) use sockrpc_tests::serve::Running;

/// Bound on every single step of these tests.
pub(crate) use sockrpc_tests::bounded::{bounded, channel, collect};

/// Serves `builder` on a fresh loopback port.
pub(crate) fn start(
    builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>,
) -> Running {
    Running::start(builder)
}
