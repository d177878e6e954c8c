//! What the tests share: a loopback server, a channel to it, bounded steps.

use std::future::Future;
use std::time::Duration;

use sockrpc::Streaming;

/// A running server on `127.0.0.1:0` (`sockrpc_tests::serve`).
pub(crate) use sockrpc_tests::serve::Running;

/// Bound on every single step of these tests.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Serves `builder` on a fresh loopback port.
pub(crate) fn start(
    builder: sockrpc::service::ServerBuilder<tower::layer::util::Identity>,
) -> Running {
    Running::start(builder)
}

/// `future`, which must finish within [`STEP`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// A channel to `server`.
pub(crate) async fn channel(server: &Running) -> sockrpc::Channel {
    bounded(
        "connect",
        sockrpc::Channel::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect")
}

/// Reads a response stream to its end, each message within [`STEP`].
pub(crate) async fn collect<T>(what: &str, mut stream: Streaming<T>) -> Vec<T>
where
    T: prost::Message + Default + 'static,
{
    let mut out = Vec::new();
    while let Some(item) = bounded(what, stream.message()).await.expect(what) {
        out.push(item);
    }
    out
}
