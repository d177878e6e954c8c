//! `StreamWaiters`: stream senders waiting for connection credit, woken all at once when it
//! comes (credit comes once per half window, not per flush), and forgotten as their calls end.
//! Senders waiting for the write buffer to drain wait in a `TurnQueue` instead (`turns.rs`).
//!
//! Why kept by call, not by waker alone: a sender whose call ends while it waits (cancelled,
//! answered, past its deadline) never comes back for its place. A server that keeps the
//! connection window spent (a stream whose handler does not read) sends no credit while other
//! streams open, wait and give up, so nothing would wake and clear what they left: a waker per
//! call, each keeping its task's memory alive, for as long as the window stays spent. Kept by
//! call, a sender's place goes with its call (`State::remove_call`), and what waits is bounded
//! by the calls in flight. A map by call id: with thousands of streams waiting, a sender coming
//! back, or a call ending, costs one lookup, not a scan.

use foldhash::HashMap;
use std::task::Waker;

/// Senders waiting, by call id; see the module docs.
#[derive(Debug, Default)]
pub(super) struct StreamWaiters {
    waiting: HashMap<u32, Waker>,
}

impl StreamWaiters {
    /// Call `id`'s sender waits, to be woken through `waker` (kept current when it changes).
    pub(super) fn wait(&mut self, id: u32, waker: &Waker) {
        match self.waiting.get_mut(&id) {
            Some(kept) => {
                if !kept.will_wake(waker) {
                    kept.clone_from(waker);
                }
            }
            None => {
                self.waiting.insert(id, waker.clone());
            }
        }
    }

    /// Wakes every waiting sender, to look again.
    pub(super) fn wake_all(&mut self) {
        self.waiting.drain().for_each(|(_, waker)| waker.wake());
    }

    /// Call `id` ended: its sender waits no more.
    pub(super) fn forget(&mut self, id: u32) {
        if !self.waiting.is_empty() {
            self.waiting.remove(&id);
        }
    }

    /// Senders waiting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no sender waits.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::StreamWaiters;
    use crate::wake_count::counting_waker;

    #[test]
    fn one_place_per_call_woken_together_and_gone_with_its_call() {
        let mut waiters = StreamWaiters::default();
        let (a, wa) = counting_waker();
        let (b, wb) = counting_waker();
        waiters.wait(1, &wa);
        waiters.wait(1, &wa);
        waiters.wait(2, &wb);
        waiters.wait(3, &wb);
        assert_eq!(waiters.len(), 3);
        waiters.forget(3);
        assert_eq!(waiters.len(), 2);
        waiters.wake_all();
        assert_eq!((a.count(), b.count()), (1, 1));
        assert!(waiters.is_empty());
    }
}
