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
//! so none is ever stuck.
//!
//! Pumps wait for credit in line (`turns.rs`), and credit wakes a few of them, not all: each
//! that goes passes its turn on while the window stays open, each that finds it full again
//! parks at the back, and one that waits for something else (its stream's credit, room in the
//! write buffer) leaves the line, passing on a turn it held. Any pump that finds the window
//! open goes. Waking every waiting pump per
//! credit let a client that credits one answer at a time, in WINDOW frames of 16 bytes, make
//! the server poll every stream it holds blocked (thousands) per frame
//! (`tests/hostile/answer_window_wakes.rs`).
//!
//! The client sends its SETTINGS in its first write, before any call, so every streamed answer
//! is counted; one sent before it was read would only be credited without having been counted,
//! which lets the server send a little sooner, never later.
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

    /// Whether call `call_id`'s next answer may go as far as the answer window goes: true when
    /// it is open (a place or turn it held in line passes on); false: it waits in line, woken
    /// through `cx` with a turn once credit opens the window.
    ///
    /// Open means go, even past pumps waiting in line: those were given turns when it opened,
    /// and pass them on as they go or leave. Making it wait behind them deadlocked with the
    /// line for room in the write buffer (`tests/streaming/answer_window.rs`): pumps woken in
    /// one line found the other's turn-holders ahead and left, round and round, while nothing
    /// was sent.
    pub(super) fn poll_answer_turn(&mut self, call_id: u32, cx: &Context<'_>) -> bool {
        if !self.answers_blocked() {
            self.leave_answer_line(call_id);
            return true;
        }
        self.answer_waiters.poll_turn(call_id, false, cx.waker())
    }

    /// Call `call_id` waits for something other than answer credit (its stream's credit, room):
    /// it leaves the line, and a turn it held passes on, so that it never holds up the others.
    pub(super) fn leave_answer_line(&mut self, call_id: u32) {
        if !self.answer_waiters.is_empty() {
            let open = !self.answers_blocked();
            self.answer_waiters.forget(call_id, open);
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
                self.answer_waiters.resume();
            }
        }
    }

    /// Credit from the client (WINDOW on call 0): a few waiting pumps get a turn.
    pub(super) fn answer_credit(&mut self, credit: u32) {
        self.answers_outstanding = self.answers_outstanding.saturating_sub(credit as usize);
        if !self.answers_blocked() {
            self.answer_waiters.resume();
        }
    }

    /// Wakes every pump waiting for answer credit (the connection ends).
    pub(super) fn wake_answer_waiters(&mut self) {
        self.answer_waiters.wake_all();
    }
}
