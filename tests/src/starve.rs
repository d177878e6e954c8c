//! Whether a loop of calls that each end at once yields to the other tasks of its thread: on a
//! current-thread runtime a loop that never yields starves every task it shares the thread with
//! (a connection's driver, a pool's reconnecting task).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Calls a loop makes at most before it counts as never having yielded.
pub const LOOP_BOUND: usize = 100_000;

/// Spawns a task, then makes calls with `call` (each one checks its own outcome) until that task
/// has run; fails if [`LOOP_BOUND`] calls go by first, or if the task ran before the first call.
/// Returns how many calls it took.
pub async fn calls_until_another_task_runs<F, Fut>(mut call: F) -> usize
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let other_ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&other_ran);
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    let mut calls = 0;
    while !other_ran.load(Ordering::SeqCst) {
        assert!(
            calls < LOOP_BOUND,
            "{LOOP_BOUND} calls ended at once without the loop ever yielding"
        );
        call(calls).await;
        calls += 1;
    }
    assert!(calls > 0, "the spawned task ran before the first call");
    calls
}
