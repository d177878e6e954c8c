//! The connection window, seen from the client: what its streams' messages charge, what
//! the server credits back (WINDOW on call 0), and what a call that ended early gives back
//! because the server will never see it. Kept apart from the call table in `mod.rs`: these
//! are the only `State` methods that move `connection_outstanding`.

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
            self.credit_waiters.wake_all();
        }
    }

    /// Connection credit from the server (WINDOW on call 0): stream senders waiting for it
    /// look again.
    pub(super) fn connection_credit(&mut self, credit: u32) {
        self.connection_outstanding = self.connection_outstanding.saturating_sub(credit as usize);
        self.credit_waiters.wake_all();
    }

    /// Call `id`'s sender will not look for room again (dropped, or half-closed): it leaves
    /// both lines, and a turn it holds passes on (`turns.rs`).
    pub(super) fn leave_lines(&mut self, id: u32) {
        let room = self.outbox.buffered() <= HIGH_WATER;
        self.drain_waiters.forget(id, room);
        self.credit_waiters.forget(id);
    }

    /// Whether the connection window is all outstanding, or the write buffer is past its
    /// high-water mark (or other senders wait in line for it to drain: `turns.rs`); if so,
    /// call `id`'s `waker` is woken once credit comes, or with its turn once the buffer has
    /// drained (or the connection closes). A stream sender then holds its next message.
    pub(super) fn wait_for_drain(&mut self, id: u32, waker: &Waker) -> bool {
        let room = self.outbox.buffered() <= HIGH_WATER;
        if self.connection_window
            && self.connection_outstanding >= sockrpc_protocol::frame::CONNECTION_WINDOW
        {
            // Out of the line for room, if it was in it: a turn it held goes on.
            self.drain_waiters.forget(id, room);
            self.credit_waiters.wait(id, waker);
            return true;
        }
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
