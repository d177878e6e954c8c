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
//!
//! While reading waits for aborted tasks, the connection waits on the oldest one's
//! `JoinHandle` ([`Aborted::poll_oldest_gone`]) and is woken when it is gone. It used to wake
//! itself and look again, so a handler slow to go (one whose drop blocks its worker, say) kept
//! a second worker spinning for as long (`tests/hostile/reset_pause_idle.rs`).

use super::conn::Connection;
use crate::dispatch::Dispatch;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::task::JoinHandle;

/// Handles of aborted call tasks not yet seen finished, oldest first.
#[derive(Debug, Default)]
pub(super) struct Aborted {
    tasks: VecDeque<JoinHandle<()>>,
}

impl Aborted {
    /// Aborts `task` and keeps its slot until it is gone. The finished tasks at the front go
    /// first: a handle keeps its task's allocation alive, and a connection whose calls are
    /// cancelled now and then (a client's timeouts) must not hold one per cancel until the
    /// ceiling is near (twice a default limit of 4096).
    pub(super) fn abort(&mut self, task: JoinHandle<()>) {
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
        while self.tasks.front().is_some_and(JoinHandle::is_finished) {
            self.tasks.pop_front();
        }
        self.tasks.len()
    }

    /// `Ready` once the oldest aborted task is gone (it is let go of), or when none is left;
    /// otherwise `Pending`, and `cx` is woken when it goes. Only the oldest: [`settle`]
    /// (Self::settle) lets go of tasks from the front, so the count falls when it goes.
    pub(super) fn poll_oldest_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(oldest) = self.tasks.front_mut() else {
            return Poll::Ready(());
        };
        // Cancelled (or, had it ended first, finished or panicked): gone either way.
        if Pin::new(oldest).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.tasks.pop_front();
        Poll::Ready(())
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

    /// Whether a new call is to be refused at once for the connection's load-shedding limit
    /// (`shed_past_calls`), which the client was not told.
    pub(super) fn past_shed_limit(&self) -> bool {
        self.config.shed_past_calls.is_some_and(|limit| {
            self.opened.len() + self.running_hint.get() >= limit && self.in_flight() >= limit
        })
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

    /// Whether reading must wait for aborted tasks still in the way: then `cx` is woken when
    /// the oldest is gone, and the connection has nothing to do until then.
    pub(super) fn wait_for_aborted(&mut self, cx: &mut Context<'_>) -> bool {
        while self.aborted_in_the_way() {
            if self.aborted.poll_oldest_gone(cx).is_pending() {
                return true;
            }
        }
        false
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
            let mut task = tokio::spawn(async {});
            (&mut task).await.expect("the task ends");
            aborted.abort(task);
        }
        assert_eq!(aborted.len(), 1, "finished handles were kept");
        let pending = tokio::spawn(std::future::pending::<()>());
        let watch = pending.abort_handle();
        aborted.abort(pending);
        assert_eq!(aborted.len(), 1);
        // Aborted, but not dropped until a worker runs it: still counted until then.
        while !watch.is_finished() {
            tokio::task::yield_now().await;
        }
        assert_eq!(aborted.settle(), 0);
    }

    /// The connection waits on the oldest aborted task: woken once when it is gone, not
    /// before, and then lets go of it.
    #[tokio::test]
    async fn the_oldest_aborted_task_wakes_its_waiter_when_gone() {
        let (count, waker) = crate::wake_count::counting_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        let mut aborted = Aborted::default();
        assert!(aborted.poll_oldest_gone(&mut cx).is_ready(), "none left");
        let task = tokio::spawn(std::future::pending::<()>());
        let watch = task.abort_handle();
        aborted.tasks.push_back(task);
        assert!(aborted.poll_oldest_gone(&mut cx).is_pending());
        tokio::task::yield_now().await;
        assert_eq!(count.count(), 0, "woken before the task was gone");
        watch.abort();
        while !watch.is_finished() {
            tokio::task::yield_now().await;
        }
        assert_eq!(count.count(), 1, "not woken when the task went");
        assert!(aborted.poll_oldest_gone(&mut cx).is_ready());
        assert_eq!(aborted.len(), 0);
    }
}
