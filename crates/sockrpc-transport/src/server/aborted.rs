//! Calls cancelled while their handler ran in a task of its own count against
//! `max_concurrent_calls` until that task is really gone (past a limit's worth of slack, see
//! [`Connection::aborted_in_the_way`]): HTTP/2's "rapid reset" (CVE-2023-44487), as grpc-go's
//! fix counts a reset stream's handler until it returns, and stops reading meanwhile. A call is
//! never refused for them: the client is read later (`tests/hostile/reset_pace.rs`); refused
//! `RESOURCE_EXHAUSTED`, a client cancelling one call at a time on a connection limited to one
//! had every call past the second refused.
//!
//! ```text
//!  OPEN ─▶ handler pending ─▶ task (running: slot taken)
//!  CANCEL ─▶ running.remove, abort ─▶ Aborted (still counted) ─▶ task dropped: not counted
//! ```
//!
//! Aborting a task only asks for it to be dropped: a worker drops it when it next runs it. The
//! slot used to be given back at the CANCEL, so a client sending OPEN+CANCEL pairs faster than
//! the workers dropped the aborted tasks had hundreds of handlers alive (483 measured) on a
//! connection limited to 4 calls (`tests/hostile/reset_slots.rs`). A call answered normally
//! still frees its slot as its last frame is written (`call.rs`, `release`): its task ends in
//! the same poll, and its client may send the next call at once.

use super::conn::Connection;
use crate::dispatch::Dispatch;
use std::collections::VecDeque;
use tokio::task::AbortHandle;

/// Handles of aborted call tasks not yet seen finished, oldest first.
#[derive(Debug, Default)]
pub(super) struct Aborted {
    tasks: VecDeque<AbortHandle>,
}

impl Aborted {
    /// Aborts `task` and keeps its slot until it is gone. The finished tasks at the front go
    /// first: a handle keeps its task's allocation alive, and a connection whose calls are
    /// cancelled now and then (a client's timeouts) must not hold one per cancel until the
    /// ceiling is near (twice a default limit of 4096).
    pub(super) fn abort(&mut self, task: AbortHandle) {
        self.settle();
        task.abort();
        self.tasks.push_back(task);
    }

    /// Aborted tasks that may still be alive: an upper bound that costs nothing to read.
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Lets go of the oldest tasks that are finished (their handlers dropped), and returns
    /// how many are left. Only from the front, so each call costs O(1) amortized however many
    /// wait: aborted together, the oldest are dropped first, and a later one finished early
    /// is counted a little longer, never too little.
    pub(super) fn settle(&mut self) -> usize {
        while self.tasks.front().is_some_and(AbortHandle::is_finished) {
            self.tasks.pop_front();
        }
        self.tasks.len()
    }

    /// The connection ends: nothing to count any more (its tasks are aborted with it).
    pub(super) fn clear(&mut self) {
        self.tasks.clear();
    }
}

impl<D: Dispatch> Connection<D> {
    /// Whether the connection has as many calls in flight as it takes (`max_concurrent_calls`).
    pub(super) fn at_call_limit(&self) -> bool {
        let limit = self.config.max_concurrent_calls;
        self.opened.len() + self.running_hint.get() >= limit && self.in_flight() >= limit
    }

    /// Whether the calls in flight and the cancelled handlers not yet gone reach twice the
    /// limit: then no further frame is read (`take_frames`) until a worker has dropped enough of
    /// those tasks, as grpc-go stops reading while a reset stream's handler runs on. The next
    /// OPEN is never taken at that ceiling, so no more than twice the limit of handlers are ever
    /// alive, and a client is never refused for the calls it cancelled (the slack of one limit
    /// spares a burst of cancels the pause). Checked before each frame: one length read while
    /// none wait.
    pub(super) fn aborted_in_the_way(&mut self) -> bool {
        if self.aborted.len() == 0 {
            return false;
        }
        let ceiling = self.config.max_concurrent_calls.saturating_mul(2);
        let fast = self.opened.len() + self.running_hint.get();
        fast + self.aborted.len() >= ceiling && self.in_flight() + self.aborted.settle() >= ceiling
    }
}

#[cfg(test)]
mod tests {
    use super::Aborted;

    /// Finished tasks at the front are let go of as the next is aborted: a connection whose
    /// calls are cancelled one at a time keeps about one handle, not one per cancel.
    #[tokio::test]
    async fn finished_tasks_are_let_go_of_at_the_next_abort() {
        let mut aborted = Aborted::default();
        for _ in 0..100 {
            let task = tokio::spawn(async {});
            let handle = task.abort_handle();
            task.await.expect("the task ends");
            aborted.abort(handle);
        }
        assert_eq!(aborted.len(), 1, "finished handles were kept");
        let pending = tokio::spawn(std::future::pending::<()>());
        aborted.abort(pending.abort_handle());
        assert_eq!(aborted.len(), 1);
        // Aborted, but not dropped until a worker runs it: still counted until then.
        assert!(pending.await.expect_err("aborted").is_cancelled());
        assert_eq!(aborted.settle(), 0);
    }
}
