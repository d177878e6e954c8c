//! Unary calls waiting for room under the server's limit of calls in flight.
//!
//! A server announces in its SETTINGS how many calls it takes in flight on a connection
//! (`ServerConfig::max_concurrent_calls`) and refuses a call past it with `RESOURCE_EXHAUSTED`.
//! As an HTTP/2 client holds a stream back while the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! is reached, a unary call that finds the connection at the limit waits here, without sending
//! anything, until a call ends, its deadline passes, or the connection closes.
//!
//! Waiters are woken in the order they came, one per call that ends: a waiter that finds the
//! room taken again (by a call that came meanwhile) goes back to the front. A waiter that gives
//! up (dropped, or past its deadline) leaves the queue, and passes on a wake-up it was sent.

use std::collections::VecDeque;
use std::task::Waker;

/// The queue of calls waiting for room on one connection, under the connection's lock.
#[derive(Debug, Default)]
pub(super) struct RoomQueue {
    next_ticket: u64,
    waiters: VecDeque<(u64, Waker)>,
}

impl RoomQueue {
    /// Registers a waiter and returns its ticket. `ticket` is the one it had, if any: a waiter
    /// still queued keeps its place (its waker updated); one that was woken and found no room
    /// goes back to the front, ahead of calls that came after it.
    pub(super) fn wait(&mut self, ticket: Option<u64>, waker: &Waker) -> u64 {
        if let Some(ticket) = ticket {
            if let Some((_, queued)) = self.waiters.iter_mut().find(|(t, _)| *t == ticket) {
                if !queued.will_wake(waker) {
                    queued.clone_from(waker);
                }
            } else {
                self.waiters.push_front((ticket, waker.clone()));
            }
            return ticket;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters.push_back((ticket, waker.clone()));
        ticket
    }

    /// Removes a waiter that gave up. Returns whether it had already been woken (it was no
    /// longer queued): the wake-up it took must then go to another waiter.
    pub(super) fn leave(&mut self, ticket: u64) -> bool {
        match self.waiters.iter().position(|(t, _)| *t == ticket) {
            Some(at) => {
                self.waiters.remove(at);
                false
            }
            None => true,
        }
    }

    /// Wakes up to `room` waiters, the longest waiting first.
    pub(super) fn wake(&mut self, room: usize) {
        for _ in 0..room {
            match self.waiters.pop_front() {
                Some((_, waker)) => waker.wake(),
                None => break,
            }
        }
    }

    /// Wakes every waiter: the connection closed, and each must go elsewhere.
    pub(super) fn wake_all(&mut self) {
        for (_, waker) in self.waiters.drain(..) {
            waker.wake();
        }
    }

    /// Whether no call waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::RoomQueue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn waiters_are_woken_in_order_one_per_room() {
        let mut queue = RoomQueue::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let (c, wc) = waker();
        queue.wait(None, &wa);
        queue.wait(None, &wb);
        queue.wait(None, &wc);
        queue.wake(2);
        assert_eq!([woken(&a), woken(&b), woken(&c)], [1, 1, 0]);
        queue.wake(5);
        assert_eq!(woken(&c), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_woken_waiter_that_finds_no_room_goes_back_to_the_front() {
        let mut queue = RoomQueue::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let ta = queue.wait(None, &wa);
        queue.wait(None, &wb);
        queue.wake(1);
        assert_eq!(queue.wait(Some(ta), &wa), ta);
        queue.wake(1);
        assert_eq!([woken(&a), woken(&b)], [2, 0]);
    }

    #[test]
    fn a_waiter_that_leaves_says_whether_it_took_a_wake_up() {
        let mut queue = RoomQueue::default();
        let (_, wa) = waker();
        let (b, wb) = waker();
        let ta = queue.wait(None, &wa);
        let tb = queue.wait(None, &wb);
        assert!(!queue.leave(tb), "still queued: took nothing");
        queue.wake(1);
        assert!(queue.leave(ta), "woken: its wake-up must go on");
        assert_eq!(woken(&b), 0);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_closing_connection_wakes_every_waiter() {
        let mut queue = RoomQueue::default();
        let counts: Vec<_> = (0..3)
            .map(|_| {
                let (count, w) = waker();
                queue.wait(None, &w);
                count
            })
            .collect();
        queue.wake_all();
        assert!(counts.iter().all(|c| woken(c) == 1));
        assert!(queue.is_empty());
    }
}
