//! A bound on every single step of a test (a call, a message, a shutdown), so that a hang
//! fails the test with what hung instead of holding CI until its own timeout.

use std::future::Future;
use std::time::Duration;

/// Bound on every single step.
pub const STEP: Duration = Duration::from_secs(10);

/// Runs `future`, failing the test (naming `what`) if it takes longer than [`STEP`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// Reads a response stream to its end, each message within [`STEP`].
pub async fn collect<T>(what: &str, mut stream: sockrpc::Streaming<T>) -> Vec<T>
where
    T: prost::Message + Default + 'static,
{
    let mut out = Vec::new();
    while let Some(item) = bounded(what, stream.message()).await.expect(what) {
        out.push(item);
    }
    out
}

/// A channel to `server`, connected within [`STEP`].
pub async fn channel(server: &crate::serve::Running) -> sockrpc::Channel {
    bounded(
        "connect",
        sockrpc::Channel::connect(format!("tcp://{}", server.addr)),
    )
    .await
    .expect("connect")
}
