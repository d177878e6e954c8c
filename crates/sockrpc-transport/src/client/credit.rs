//! The connection window, seen from the client: what its streams' messages charge, what
//! the server credits back (WINDOW on call 0), and what a call that ended early gives back
//! because the server will never see it. Kept apart from the call table in `mod.rs`: these
//! are the only `State` methods that move `connection_outstanding`.
//!
//! Stream senders waiting for credit wait in line (`turns.rs`), as the server's pumps wait for
//! answer credit (`server/answer_window.rs`): credit that opens the window wakes a few, each
//! that finds it open passes its turn on as it goes, each that finds it spent again waits at
//! the back, and credit that leaves it spent wakes no one. Waking every waiting sender per
//! WINDOW let a server that credits one message at a time, 16 bytes a frame, make the client
//! poll every stream it holds blocked (hundreds, thousands) per frame
//! (`tests/hostile/credit_wakes.rs`).
//!
//! The invariant, kept under the connection's lock: *while the window is open and a sender
//! waits in line, a sender in line holds a turn* (it was woken, and has not looked since). So
//! no sender waits for ever on a window that is open. Each move that may break it restores it:
//!
//! ```text
//!  credit (WINDOW on call 0), unsent messages given back,
//!  a SETTINGS that drops the window ─────────▶ open? resume: turns up to WOKEN_AT_ONCE
//!  a turn holder looks, window open ─────────▶ goes; its turn passes on (at once: a turn
//!                                              is never kept past `poll_ready`)
//!  a turn holder looks, window spent ────────▶ back of the line; passes nothing (spent: no
//!                                              one could go)
//!  a sender leaves (dropped, half-closed, its call ended or failed, waiting for its own
//!  window instead) ──────────────────────────▶ out of line; a turn it held passes on if open
//!  the connection closes (the first time) ───▶ everyone woken, the line emptied
//! ```
//!
//! A sender that looks while the window is open goes even past the line (those in it hold
//! turns and pass them on). Through `StreamSender::send` the window may be overdrawn: every
//! sender that found it open before the first of them charged it sends one message, and a
//! credit of one message then leaves it spent, waking no one, rightly. A client's feed sends
//! with `StreamSender::poll_send_flagged` instead, which looks again as it charges, so the
//! window is overdrawn by one message at most (`credit_tests.rs`).

use super::State;
use crate::outbox::HIGH_WATER;
use std::task::Waker;

impl State {
    /// Ends call `id` early in the outbox (`Outbox::abandon`: `ending` writes its CANCEL, if
    /// any). For a streaming call still in the table, what its dropped messages charged comes
    /// off the connection window's count: the server never sees them, so never credits them
    /// back. (A unary call's message is not counted there.)
    pub(super) fn abandon_call(&mut self, id: u32, ending: impl FnOnce(&mut bytes::BytesMut)) {
        let streaming = self.stream(id).is_some();
        let unsent = self.outbox.abandon(id, ending);
        if streaming {
            self.give_back(unsent);
        }
    }

    /// Takes `unsent` (the charge of stream messages dropped unsent) off the connection
    /// window's count.
    pub(super) fn give_back(&mut self, unsent: usize) {
        if unsent > 0 && self.connection_window {
            self.connection_outstanding = self.connection_outstanding.saturating_sub(unsent);
            self.resume_credit_waiters();
        }
    }

    /// Connection credit from the server (WINDOW on call 0): when it opens the window, a few
    /// stream senders waiting for it get a turn.
    pub(super) fn connection_credit(&mut self, credit: u32) {
        self.connection_outstanding = self.connection_outstanding.saturating_sub(credit as usize);
        self.resume_credit_waiters();
    }

    /// Whether stream messages must wait for the server's connection credit now.
    pub(super) fn credit_blocked(&self) -> bool {
        self.connection_window
            && self.connection_outstanding >= sockrpc_protocol::frame::CONNECTION_WINDOW
    }

    /// The window is open (credit came, or a SETTINGS took the window away): a few senders
    /// waiting for credit get a turn, and pass it on as they send (`turns.rs`).
    pub(super) fn resume_credit_waiters(&mut self) {
        if !self.credit_blocked() {
            self.credit_waiters.resume();
        }
    }

    /// Call `id` no longer waits for connection credit (it ended, it sends no more, or it may
    /// send): it leaves that line, and a turn it held passes on while the window is open.
    pub(super) fn leave_credit_line(&mut self, id: u32) {
        if !self.credit_waiters.is_empty() {
            let open = !self.credit_blocked();
            self.credit_waiters.forget(id, open);
        }
    }

    /// Call `id`'s sender will not look for room again (dropped, or half-closed): it leaves
    /// both lines, and a turn it holds passes on (`turns.rs`).
    pub(super) fn leave_lines(&mut self, id: u32) {
        let room = self.outbox.buffered() <= HIGH_WATER;
        self.drain_waiters.forget(id, room);
        self.leave_credit_line(id);
    }

    /// Whether the connection window is all outstanding, or the write buffer is past its
    /// high-water mark (or other senders wait in line for it to drain: `turns.rs`); if so,
    /// call `id`'s `waker` is woken with its turn once credit opens the window, or once the
    /// buffer has drained (or the connection closes). A stream sender then holds its next
    /// message.
    ///
    /// An open window means go, even past senders waiting in line for credit: those were given
    /// turns when it opened, and pass them on as they go or leave (as the server's pumps do,
    /// `server/answer_window.rs`, where making them wait behind the line deadlocked with the
    /// line for room).
    pub(super) fn wait_for_drain(&mut self, id: u32, waker: &Waker) -> bool {
        let room = self.outbox.buffered() <= HIGH_WATER;
        if self.credit_blocked() {
            // Out of the line for room, if it was in it: a turn it held goes on.
            self.drain_waiters.forget(id, room);
            // In line for credit (at the back, if it held a turn and found the window spent
            // again: it passes nothing on).
            self.credit_waiters.poll_turn(id, false, waker);
            return true;
        }
        // The window is open: out of the line for credit, passing on a turn it held.
        self.leave_credit_line(id);
        if self.drain_waiters.poll_turn(id, room, waker) {
            return false;
        }
        if room {
            // In line behind others with the buffer under the mark: the driver hands out turns
            // (`wake_for_room`) once it is down to the resume mark.
            self.outbox.wake_driver();
        }
        true
    }
}
