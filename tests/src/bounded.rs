//! A bound on every single step of a test (a call, a message, a shutdown), so that a hang
//! fails the test with what hung instead of holding CI until its own timeout.

use std::future::Future;
use std::time::Duration;

/// Bound on every single step.
pub const STEP: Duration = Duration::from_secs(10);

/// The slices a bound is waited in (see [`within`]).
pub const SLICES: u32 = 100;

/// Real time given to the kernel between two slices of a bound (see [`within`]).
pub const BREATH: Duration = Duration::from_millis(1);

/// Runs `future`, failing the test (naming `what`) if it takes longer than [`STEP`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    within(STEP, what, future).await
}

/// Runs `future`, failing the test (naming `what`) if it takes longer than `bound`, waited in
/// slices with a breath of real time between them, so that tokio's paused clock cannot jump to
/// the bound while bytes are still on their way through the loopback interface.
///
/// On the paused clock, a runtime with nothing to do moves the clock to its next timer at once.
/// A test whose next timer is its own bound, waiting for bytes the kernel has not delivered
/// yet (a loaded machine defers loopback delivery to `ksoftirqd`), failed "did not finish
/// within 10s" in well under a second of real time. Between slices, a blocking sleep of
/// [`BREATH`] holds the clock still (tokio does not move a paused clock while a blocking task
/// runs) while the runtime goes on reading: the bound is the same time on the paused clock,
/// and on a real one [`SLICES`] breaths longer at most.
pub async fn within<T>(bound: Duration, what: &str, future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let slice = bound / SLICES;
    for _ in 0..SLICES {
        if let Ok(done) = tokio::time::timeout(slice, future.as_mut()).await {
            return done;
        }
        // A join error here is the sleep's own panic, which cannot happen.
        let _ = tokio::task::spawn_blocking(|| std::thread::sleep(BREATH)).await;
    }
    panic!("{what} did not finish within {bound:?}")
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
