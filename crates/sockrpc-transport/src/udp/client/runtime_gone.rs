//! The end of a client's runtime: calls in flight end `UNAVAILABLE` at once, new calls
//! answer `NotSuitable`.
//!
//! Why: a client's socket is registered with the reactor of the runtime that made it, and
//! only that reactor hands it answers. A client shared with another runtime (a channel kept in
//! a static, used by two `#[tokio::test]` functions that run at the same time) carries that
//! runtime's calls too; once the first runtime shuts down (its test returned), nothing can
//! read their answers, and they waited out their deadline (or the retransmit window) for
//! nothing. As a call in flight on a connection that broke, they now fail `UNAVAILABLE` when
//! the runtime ends (the server may have run them: they are not sent again), and a call
//! that has sent nothing yet is handed back (`NotSuitable`) to go over the stream.
//!
//! ```text
//!  client made ─▶ watcher task on its runtime, ending only with the client
//!  runtime shuts down ─▶ watcher dropped unfinished ─▶ every slot: Incoming::Gone (woken)
//!                                                   └▶ in_fallback() true from now on
//! ```
//!
//! New calls learn it from the flag every call already reads (`falling_back`): no new cost
//! per call.

use super::{lock, Shared};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Waker;
use tokio::sync::watch;

/// Starts the watcher of `shared`'s runtime, on that runtime (`runtime`); `alive` is dropped
/// with the client, which ends the watcher quietly. Outside any runtime nothing is watched.
pub(super) fn watch(
    shared: &Arc<Shared>,
    runtime: Option<&tokio::runtime::Handle>,
    mut alive: watch::Receiver<()>,
) {
    let Some(runtime) = runtime else { return };
    let ended = RuntimeEnded(Arc::downgrade(shared));
    drop(runtime.spawn(async move {
        while alive.changed().await.is_ok() {}
        ended.disarm();
    }));
}

/// Ends the calls of the client when dropped armed: the watcher was dropped unfinished, which
/// a runtime does to its tasks as it shuts down.
struct RuntimeEnded(Weak<Shared>);

impl RuntimeEnded {
    /// The watcher ended by itself: the client is gone.
    fn disarm(mut self) {
        self.0 = Weak::new();
    }
}

impl Drop for RuntimeEnded {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.runtime_gone();
        }
    }
}

impl Shared {
    /// The client's runtime shut down: see the module's documentation.
    pub(super) fn runtime_gone(&self) {
        self.gone.store(true, Ordering::Release);
        // Read by every call first (`in_fallback`), which then looks at `gone`.
        self.falling_back.store(true, Ordering::Release);
        let mut wake = Vec::new();
        lock(&self.pending).runtime_gone(&mut wake);
        wake.into_iter().for_each(Waker::wake);
        tracing::debug!("the UDP client's runtime shut down: its calls end, new ones go elsewhere");
    }
}
