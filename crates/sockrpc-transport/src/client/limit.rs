//! What counts under the server's limit of calls in flight on the client's side, and waking
//! the calls that wait for room under it (`room.rs` keeps them).
//!
//! A server announces its limit in SETTINGS and counts a call from its OPEN until its END (or
//! the client's CANCEL). The client counts the same calls: those in its table, less the streams
//! whose END arrived (or that it cancelled) while their receivers hold them unread
//! (`State::ended_streams`). Without that, a stream the caller keeps without reading its status
//! would hold its place until dropped, and at the limit every other call on the connection
//! would wait for it; grpc-go frees a stream's quota when its trailers arrive.

use super::{Shared, Slot, State};
use crate::outbox::HIGH_WATER;
use std::sync::atomic::Ordering;

impl State {
    /// A slot leaving the table no longer counts among `ended_streams`.
    pub(super) fn forget_ended(&mut self, slot: &Slot) {
        if slot.stream.as_ref().is_some_and(|stream| stream.ended) {
            self.ended_streams -= 1;
        }
    }

    /// Streaming call `id` has ended (its END arrived, or this side cancelled it) while its
    /// receiver may not have read that yet: the server counts it no longer under its limit of
    /// calls in flight, so neither does [`at_limit`](Self::at_limit), and calls waiting for
    /// room may go. Otherwise a stream the caller holds without reading its status would hold
    /// its place until dropped, and at the server's limit every other call on the connection
    /// would wait for it (grpc-go frees a stream's quota when its trailers arrive).
    pub(super) fn stream_ended(&mut self, shared: &Shared, id: u32) {
        let Some(stream) = self.stream_mut(id) else {
            return;
        };
        if stream.ended || !stream.inbound.is_finished() {
            return;
        }
        stream.ended = true;
        self.ended_streams += 1;
        // Its sender sends no more (`poll_ready` fails from now on), so it never comes back
        // for a place in line for room: the place goes, and a turn it holds goes on. Kept, the
        // turns handed to ended streams whose receivers are held went to no one, and the
        // senders parked behind them waited for ever (`tests/hostile/ended_sender_turns.rs`).
        let room = self.outbox.buffered() <= HIGH_WATER;
        self.drain_waiters.forget(id, room);
        self.leave_credit_line(id);
        // The pool weighs connections by their calls in flight: this one is no longer.
        shared.in_flight.store(self.live_calls(), Ordering::Relaxed);
        self.wake_for_room(shared);
    }

    /// Calls the server still counts under its limit.
    pub(super) fn live_calls(&self) -> usize {
        self.calls.len().saturating_sub(self.ended_streams)
    }

    /// Whether the server's limit of calls in flight leaves no room for one more call beyond
    /// the room kept for calls woken from the queue and for held passes, or the write buffer
    /// is past its high-water mark: a new call waits for the server to read, as an HTTP/2
    /// stream waits for its connection's flow-control window, instead of failing.
    pub(super) fn at_limit(&self, shared: &Shared) -> bool {
        self.live_calls() + self.room.reserved() >= shared.max_calls.load(Ordering::Relaxed)
            || self.outbox.buffered() > HIGH_WATER
    }

    /// Wakes as many calls waiting for room as there is room for, and, once the buffer is down
    /// to `turns::RESUME_AT`, a few stream senders waiting for it, first parked first (none
    /// while the buffer is past its high-water mark: the flush that brings it under wakes
    /// them; each woken sender that finds room wakes the next, `turns.rs`).
    pub(super) fn wake_for_room(&mut self, shared: &Shared) {
        if self.abandoned && self.calls.is_empty() && !self.room.drains() {
            // The last call a graceful close let drain has gone: the driver may end now.
            self.outbox.wake_driver();
        }
        if (self.room.is_empty() && self.drain_waiters.is_empty())
            || self.outbox.buffered() > HIGH_WATER
        {
            return;
        }
        if !self.drain_waiters.is_empty() && self.outbox.buffered() <= crate::turns::RESUME_AT {
            self.drain_waiters.resume();
        }
        if !self.room.is_empty() {
            let limit = shared.max_calls.load(Ordering::Relaxed);
            self.room
                .wake(limit.saturating_sub(self.live_calls() + self.room.reserved()));
            self.note_waiting(shared);
        }
    }

    /// Mirrors the room queue's length for the pool, which counts waiting calls as load.
    pub(super) fn note_waiting(&self, shared: &Shared) {
        shared.waiting.store(self.room.len(), Ordering::Relaxed);
    }
}
