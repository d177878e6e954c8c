//! Two runtimes alive at once, as two `#[tokio::test]` functions that cargo runs in parallel
//! threads: the first ([`Beside`]) runs a turn, then keeps driving its tasks (its test is still
//! running) until told to end, when its runtime is dropped (its test function returned).
//!
//! What the first runtime made for a client shared with the second (connections, the pool's
//! task, a UDP socket's registration) lives on it: the second runtime's calls use them while
//! it lives, and must not depend on them once it is gone.

use super::support::{Flavor, BOUND};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A runtime in a thread of its own, alive until [`end`](Beside::end).
pub(crate) struct Beside {
    end: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Beside {
    /// Starts a runtime of `flavor`, runs `turn` on it (bounded by [`BOUND`]) and returns once
    /// the turn is over, with what it returned; the runtime keeps running (idle, driving its
    /// tasks) until `end`.
    pub(crate) fn start<F, T>(
        flavor: Flavor,
        turn: impl FnOnce() -> F + Send + 'static,
    ) -> (Beside, T)
    where
        F: Future<Output = T>,
        T: Send + 'static,
    {
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let (done, turn_done) = std::sync::mpsc::channel::<T>();
        let thread = std::thread::spawn(move || {
            let runtime = flavor.build();
            runtime.block_on(async move {
                let out = tokio::time::timeout(BOUND, turn())
                    .await
                    .unwrap_or_else(|_| panic!("the first runtime's turn hung for {BOUND:?}"));
                let _ = done.send(out);
                // Bounded: a test that never ends this runtime still ends.
                let _ = tokio::time::timeout(BOUND * 3, ended).await;
            });
            drop(runtime);
        });
        let mut beside = Beside {
            end: Some(end),
            thread: Some(thread),
        };
        match turn_done.recv_timeout(BOUND * 2) {
            Ok(out) => (beside, out),
            Err(_) => {
                // The turn panicked (or hung): report its panic.
                beside.join();
                panic!("the first runtime's turn did not finish");
            }
        }
    }

    /// Ends the runtime (its test function returned): its tasks are dropped with it. Returns
    /// once it is gone; call from within another runtime.
    pub(crate) async fn end(mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(());
        }
        let thread = self.thread.take();
        let joined = tokio::task::spawn_blocking(move || thread.map(std::thread::JoinHandle::join))
            .await
            .expect("join task");
        if let Some(Err(panic)) = joined {
            std::panic::resume_unwind(panic);
        }
    }

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            let _ = end.send(());
        }
        if !std::thread::panicking() {
            self.join();
        }
    }
}

/// Awaits `call`, which must end by `deadline` (with some slack for a loaded machine): a call
/// whose connection went with another runtime must not hang past it.
pub(crate) async fn by_deadline<T>(
    what: &str,
    deadline: Instant,
    call: impl Future<Output = T>,
) -> T {
    let slack = Duration::from_secs(2);
    tokio::time::timeout_at(deadline + slack, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting {slack:?} past its deadline"))
}
