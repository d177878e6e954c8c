//! The answer window, seen from the server: toward a client that grants one
//! (`CAP_ANSWER_WINDOW` in its SETTINGS), what the connection's response streams have sent and
//! the client has not credited back stays under `frame::ANSWER_WINDOW` (16 MiB of charges,
//! each answer its length + 64), however many streams the client does not read.
//!
//! ```text
//!  pump (call 7) ── outstanding < ANSWER_WINDOW? ── MESSAGE ──▶ client   outstanding += charge
//!       ▲ no: waits in answer_waiters                                    (unary answers: never)
//!       └──── woken by WINDOW(call 0, credit) ◀── client, as its application reads or drops
//! ```
//!
//! The connection's task keeps reading while pumps wait (the credit they wait for comes on
//! it); an answer larger than what is left goes whenever less than the window is outstanding,
//! so none is ever stuck. The client sends its SETTINGS in its first write, before any call,
//! so every streamed answer is counted; one sent before it was read would only be credited
//! without having been counted, which lets the server send a little sooner, never later.
//! What of a streamed answer the server drops unsent (the call ended early) comes off what is
//! outstanding ([`abandon_answer`](ConnState::abandon_answer)): the client credits only what
//! arrives.

use super::respond::ConnState;
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, ANSWER_WINDOW};
use std::task::Context;

impl ConnState {
    /// Whether streamed answers must wait for the client's credit now.
    pub(super) fn answers_blocked(&self) -> bool {
        self.answer_window && self.answers_outstanding >= ANSWER_WINDOW
    }

    /// Call `call_id`'s next answer waits for credit ([`answers_blocked`](Self::answers_blocked)):
    /// its pump is woken when credit comes (or the connection ends).
    pub(super) fn wait_for_answer_credit(&mut self, call_id: u32, cx: &Context<'_>) {
        match self.answer_waiters.get(&call_id) {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => {
                self.answer_waiters.insert(call_id, cx.waker().clone());
            }
        }
    }

    /// A streamed answer of `len` bytes was written: counted when the client grants a window.
    pub(super) fn answer_sent(&mut self, len: usize) {
        if self.answer_window {
            self.answers_outstanding += frame::message_charge(len);
        }
    }

    /// Ends `call_id`'s answer early in the outbox (`Outbox::abandon`: `ending` writes its END,
    /// if any): what its dropped streamed answers charged, and the client will never see nor
    /// credit, comes off what is outstanding. Without it, each stream cancelled (or timed out,
    /// or panicking) with a large answer still queued kept that much of the window for ever.
    pub(super) fn abandon_answer(&mut self, call_id: u32, ending: impl FnOnce(&mut BytesMut)) {
        let unsent = self.outbox.abandon(call_id, ending);
        if self.answer_window && unsent > 0 {
            self.answers_outstanding = self.answers_outstanding.saturating_sub(unsent);
            if !self.answers_blocked() {
                self.wake_answer_waiters();
            }
        }
    }

    /// Credit from the client (WINDOW on call 0): waiting pumps look again.
    pub(super) fn answer_credit(&mut self, credit: u32) {
        self.answers_outstanding = self.answers_outstanding.saturating_sub(credit as usize);
        if !self.answers_blocked() {
            self.wake_answer_waiters();
        }
    }

    /// Wakes every pump waiting for answer credit (credit came, or the connection ends).
    pub(super) fn wake_answer_waiters(&mut self) {
        for (_, waker) in self.answer_waiters.drain() {
            waker.wake();
        }
    }
}
