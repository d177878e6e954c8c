//! Calls waiting for room under the server's limit of calls in flight, or for the connection's
//! write buffer to drain below its high-water mark (`HIGH_WATER`, `outbox.rs`): a server that
//! reads slower than calls are made holds them back here, unsent, as an HTTP/2 connection's
//! flow-control window does, instead of failing them.
//!
//! A server announces in its SETTINGS how many calls it takes in flight on a connection
//! (`ServerConfig::max_concurrent_calls`) and refuses a call past it with `RESOURCE_EXHAUSTED`.
//! As an HTTP/2 client holds a stream back while the peer's `SETTINGS_MAX_CONCURRENT_STREAMS`
//! is reached, a call that finds the connection at the limit waits here, without sending
//! anything, until a call ends, its deadline passes, or the connection closes: a unary call in
//! its own future (`call.rs`), a streaming call in a [`RoomFuture`] whose [`RoomPass`] keeps
//! the room until the stream opens. An open stream's next message waits for the buffer too
//! (`State::wait_for_drain`, from `StreamSender::poll_ready`): each stream's window bounds
//! what one stream sends ahead, not what thousands of them send together.
//!
//! Waiters are woken in the order they came, one per call that ends, and the room a call's end
//! frees is kept for the waiter woken into it (`reserved`): a new call queues behind waiters
//! and reservations, so it cannot take that room first and starve the queue. A waiter that gives
//! up after it was woken hands its room to the next. Waiters are kept by ticket, in the order
//! tickets were given, so one that leaves (thousands may expire together) or comes back costs a
//! lookup, not a scan.
//!
//! A graceful close by the connection's owner ([`ClientConnection::close`], a channel's
//! `close`) drains the queue rather than failing it: as grpc-java's `shutdown` lets calls
//! already started finish, a call that was waiting for room when the connection closed keeps
//! its place, and is sent when room comes (only calls that come after the close are refused).
//! The driver ends once the queue is empty too ([`RoomQueue::drains`]). Any other close (the
//! connection failed, the server sent GOAWAY, `close_now`) ends the draining: the waiters fail
//! ([`unsent_status`]), `close_now`'s with its own status (`CANCELLED` for a channel).

use super::ClientConnection;
use sockrpc_protocol::Status;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::time::{Instant, Sleep};

/// Why a call that waited for room gave up.
pub(super) const ROOM_DEADLINE: &str =
    "deadline exceeded while waiting for room on this connection (under the server's limit of \
     calls in flight, or for its write buffer to drain below 8 MiB)";

/// Why a call that has not been sent cannot be now: the connection closed. Not processed (the
/// call may go on another connection) and [never sent](Status::never_sent): no byte of it was
/// written, so a balanced channel picks again without counting an attempt. Unless the owner
/// closed the connection at once (`close_now`): the call then fails with that status, as the
/// calls in flight do.
pub(super) fn unsent_status(state: &super::State, closed: &Status) -> Status {
    match &state.aborted {
        Some(aborted) => aborted.clone(),
        None => Status::not_processed(format!(
            "connection closed before the call was sent: {}",
            closed.message()
        ))
        .never_sent(),
    }
}

/// Whether a call waiting for room has reached its `deadline` (none: never), polling the timer
/// it makes on first use, so that the call is woken when the deadline comes.
pub(super) fn deadline_passed(
    timer: &mut Option<Pin<Box<Sleep>>>,
    deadline: Option<Instant>,
    cx: &mut Context<'_>,
) -> bool {
    let Some(deadline) = deadline else {
        return false;
    };
    let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    timer.as_mut().poll(cx).is_ready()
}

/// Room under the server's call limit, kept for one streaming call until it opens
/// ([`ClientConnection::open_stream_in`]); dropped unused, it goes to the next waiter.
#[must_use = "the room is kept until the pass is used or dropped"]
pub struct RoomPass {
    conn: ClientConnection,
    used: bool,
}

impl RoomPass {
    /// Whether the room was kept on `conn`.
    pub(super) fn is_for(&self, conn: &ClientConnection) -> bool {
        Arc::ptr_eq(self.conn.shared(), conn.shared())
    }

    /// The call opens now: the room it kept becomes its place among the calls in flight.
    /// Called under the connection's lock.
    pub(super) fn use_in(mut self, state: &mut super::State) {
        self.used = true;
        state.room.release();
    }
}

impl Drop for RoomPass {
    fn drop(&mut self) {
        if !self.used {
            let shared = self.conn.shared();
            let mut state = shared.lock();
            state.room.release();
            state.wake_for_room(shared);
        }
    }
}

impl std::fmt::Debug for RoomPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomPass").finish_non_exhaustive()
    }
}

/// Waits for room under the server's call limit on one connection
/// ([`ClientConnection::room`]): at once when the connection is under it, else in the room
/// queue, up to `deadline`. Fails "not processed" when the connection closes meanwhile (the
/// call may go elsewhere) and `DEADLINE_EXCEEDED` when the deadline passes.
pub struct RoomFuture {
    conn: ClientConnection,
    ticket: Option<u64>,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl RoomFuture {
    pub(super) fn new(conn: ClientConnection, deadline: Option<Instant>) -> RoomFuture {
        RoomFuture {
            conn,
            ticket: None,
            deadline,
            timer: None,
        }
    }
}

impl std::fmt::Debug for RoomFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomFuture")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl Future for RoomFuture {
    type Output = Result<RoomPass, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let shared = Arc::clone(this.conn.shared());
        let mut state = shared.lock();
        // A call queued before a graceful close stays queued: it was started, and drains.
        let draining = this.ticket.is_some() && state.room.is_draining();
        if let Some(status) = state.closed.as_ref().filter(|_| !draining) {
            let status = unsent_status(&state, status);
            if let Some(ticket) = this.ticket.take() {
                if state.room.leave(ticket) {
                    state.wake_for_room(&shared);
                }
                state.note_waiting(&shared);
            }
            return Poll::Ready(Err(status));
        }
        let go = match this.ticket {
            None => !state.at_limit(&shared) && state.room.is_empty(),
            Some(ticket) => {
                if !state.room.come_back(ticket, cx.waker()) {
                    false
                } else if state.at_limit(&shared) {
                    state.room.rejoin(ticket, cx.waker());
                    false
                } else {
                    true
                }
            }
        };
        if go {
            state.room.hold();
            this.ticket = None;
            state.note_waiting(&shared);
            return Poll::Ready(Ok(RoomPass {
                conn: this.conn.clone(),
                used: false,
            }));
        }
        let ticket = *this
            .ticket
            .get_or_insert_with(|| state.room.join(cx.waker()));
        state.note_waiting(&shared);
        drop(state);
        if !deadline_passed(&mut this.timer, this.deadline, cx) {
            return Poll::Pending;
        }
        this.ticket = None;
        super::call::leave_queue(&shared, ticket);
        Poll::Ready(Err(Status::deadline_exceeded(ROOM_DEADLINE)))
    }
}

impl Drop for RoomFuture {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            super::call::leave_queue(self.conn.shared(), ticket);
        }
    }
}

/// The queue of calls waiting for room on one connection, under the connection's lock.
#[derive(Debug, Default)]
pub(super) struct RoomQueue {
    next_ticket: u64,
    /// By ticket: the first is the longest waiting.
    waiters: BTreeMap<u64, Waker>,
    /// Room kept: for waiters woken into it that have not come back for it yet, and for
    /// [`RoomPass`]es not yet used. Counted against the limit as calls in flight are.
    reserved: usize,
    /// The owner closed the connection gracefully: the calls queued (and passes held) then go
    /// on as room comes, though no new call may join.
    draining: bool,
}

impl RoomQueue {
    /// A graceful close: the calls queued now are sent as room comes ([`drains`](Self::drains)).
    pub(super) fn start_draining(&mut self) {
        self.draining = true;
    }

    /// Any other close: the calls queued fail (they are woken by [`wake_all`](Self::wake_all)).
    pub(super) fn stop_draining(&mut self) {
        self.draining = false;
    }

    /// Whether queued calls may still be sent on a connection closed to new calls.
    pub(super) fn is_draining(&self) -> bool {
        self.draining
    }

    /// Whether calls started before a graceful close still wait here (queued, or woken into
    /// room, or holding a pass): the connection must not end before they are sent.
    pub(super) fn drains(&self) -> bool {
        self.draining && (!self.waiters.is_empty() || self.reserved > 0)
    }

    /// Queues a new call at the back; its ticket.
    pub(super) fn join(&mut self, waker: &Waker) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiters.insert(ticket, waker.clone());
        ticket
    }

    /// A queued call is polled again. `false`: it still waits (its waker is updated). `true`: it
    /// was woken, and the room kept for it is now its to take (or, if the limit fell meanwhile,
    /// to [`rejoin`](Self::rejoin) the queue).
    pub(super) fn come_back(&mut self, ticket: u64, waker: &Waker) -> bool {
        if let Some(queued) = self.waiters.get_mut(&ticket) {
            if !queued.will_wake(waker) {
                queued.clone_from(waker);
            }
            return false;
        }
        self.reserved = self.reserved.saturating_sub(1);
        true
    }

    /// A woken call that found no room after all (the limit fell) goes back to its place:
    /// ahead of every call that came after it.
    pub(super) fn rejoin(&mut self, ticket: u64, waker: &Waker) {
        self.waiters.insert(ticket, waker.clone());
    }

    /// Removes a call that gave up (dropped, or past its deadline) without coming back.
    /// Returns whether it had been woken: the room kept for it must then go to another waiter.
    pub(super) fn leave(&mut self, ticket: u64) -> bool {
        match self.waiters.remove(&ticket) {
            Some(_) => false,
            None => {
                self.reserved = self.reserved.saturating_sub(1);
                true
            }
        }
    }

    /// Wakes up to `room` waiters, the longest waiting first, and keeps that room for them.
    pub(super) fn wake(&mut self, room: usize) {
        for _ in 0..room {
            match self.waiters.pop_first() {
                Some((_, waker)) => {
                    self.reserved += 1;
                    waker.wake();
                }
                None => break,
            }
        }
    }

    /// Wakes every waiter: the connection closed, and each must go elsewhere.
    pub(super) fn wake_all(&mut self) {
        let n = self.waiters.len();
        self.wake(n);
    }

    /// Keeps room for a call about to open (a [`RoomPass`]).
    pub(super) fn hold(&mut self) {
        self.reserved += 1;
    }

    /// Gives back room kept by [`hold`](Self::hold): the call opened, or will not.
    pub(super) fn release(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// Room kept for woken waiters and held passes.
    pub(super) fn reserved(&self) -> usize {
        self.reserved
    }

    /// Calls waiting.
    pub(super) fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether no call waits.
    pub(super) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::RoomQueue;
    use crate::wake_count::{counting_waker as waker, WakeCount};

    fn woken(count: &WakeCount) -> usize {
        count.count()
    }

    #[test]
    fn waiters_are_woken_in_order_one_per_room_which_is_kept_for_them() {
        let mut queue = RoomQueue::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let (c, wc) = waker();
        let ta = queue.join(&wa);
        let tb = queue.join(&wb);
        queue.join(&wc);
        queue.wake(2);
        assert_eq!([woken(&a), woken(&b), woken(&c)], [1, 1, 0]);
        assert_eq!(queue.reserved(), 2);
        assert!(queue.come_back(ta, &wa), "woken: the room is its");
        assert!(queue.come_back(tb, &wb));
        assert_eq!(queue.reserved(), 0);
        assert_eq!(queue.len(), 1);
        queue.wake(5);
        assert_eq!(woken(&c), 1);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_call_polled_before_its_wake_up_keeps_its_place() {
        let mut queue = RoomQueue::default();
        let (_, wa) = waker();
        let (b, wb) = waker();
        let ta = queue.join(&wa);
        queue.join(&wb);
        assert!(!queue.come_back(ta, &wa), "not woken: still waits");
        queue.wake(1);
        assert_eq!(woken(&b), 0, "the first in line is woken first");
        assert!(queue.come_back(ta, &wa));
    }

    #[test]
    fn a_woken_call_that_finds_no_room_goes_back_ahead_of_later_calls() {
        let mut queue = RoomQueue::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let ta = queue.join(&wa);
        queue.join(&wb);
        queue.wake(1);
        assert!(queue.come_back(ta, &wa));
        queue.rejoin(ta, &wa);
        queue.wake(1);
        assert_eq!([woken(&a), woken(&b)], [2, 0]);
    }

    #[test]
    fn woken_calls_that_rejoin_keep_the_order_they_came_in() {
        let mut queue = RoomQueue::default();
        let (a, wa) = waker();
        let (b, wb) = waker();
        let (_, wc) = waker();
        let ta = queue.join(&wa);
        let tb = queue.join(&wb);
        queue.join(&wc);
        queue.wake(2);
        assert!(queue.come_back(tb, &wb));
        queue.rejoin(tb, &wb);
        assert!(queue.come_back(ta, &wa));
        queue.rejoin(ta, &wa);
        queue.wake(1);
        assert_eq!(
            [woken(&a), woken(&b)],
            [2, 1],
            "a came first, and is woken first"
        );
    }

    #[test]
    fn a_call_that_leaves_says_whether_it_took_a_wake_up() {
        let mut queue = RoomQueue::default();
        let (_, wa) = waker();
        let (b, wb) = waker();
        let ta = queue.join(&wa);
        let tb = queue.join(&wb);
        assert!(!queue.leave(tb), "still queued: took nothing");
        queue.wake(1);
        assert_eq!(queue.reserved(), 1);
        assert!(queue.leave(ta), "woken: its room must go on");
        assert_eq!(queue.reserved(), 0);
        assert_eq!(woken(&b), 0);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_held_pass_is_kept_room_until_released() {
        let mut queue = RoomQueue::default();
        queue.hold();
        queue.hold();
        assert_eq!(queue.reserved(), 2);
        queue.release();
        assert_eq!(queue.reserved(), 1);
        let (a, wa) = waker();
        let ta = queue.join(&wa);
        queue.wake(1);
        assert_eq!(
            (woken(&a), queue.reserved()),
            (1, 2),
            "a woken waiter keeps room too"
        );
        assert!(queue.come_back(ta, &wa));
        queue.release();
        assert_eq!(queue.reserved(), 0);
    }

    #[test]
    fn a_closing_connection_wakes_every_waiter() {
        let mut queue = RoomQueue::default();
        let counts: Vec<_> = (0..3)
            .map(|_| {
                let (count, w) = waker();
                queue.join(&w);
                count
            })
            .collect();
        queue.wake_all();
        assert!(counts.iter().all(|c| woken(c) == 1));
        assert!(queue.is_empty());
    }
}
