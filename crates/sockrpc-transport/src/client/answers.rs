//! The answer window, seen from the client: connection credit this side grants the server for
//! the answers it streams (`CAP_ANSWER_WINDOW`), the mirror of the connection window the server
//! grants for requests (`credit.rs`).
//!
//! A stream's window bounds what one stream holds unread (64 KiB and one message), but a
//! client may have thousands of streams its application does not read: without a window over
//! them all, a server could make one connection hold N × (64 KiB + the message limit).
//!
//! ```text
//!  server                                         client
//!  outstanding = Σ charge sent − credit           held = Σ charge of answers queued unread
//!  sends a streamed answer while
//!    outstanding < ANSWER_WINDOW (16 MiB)
//!    MESSAGE(call 7) ──────────────────────────▶ held += charge (refused if held ≥ window:
//!                                                  the connection closes, protocol error)
//!                                                application reads it: held −= charge,
//!                                                                      unreported += charge
//!    MESSAGE(call 9, dropped or unknown) ──────▶ unreported += charge
//!    ◀──────────────── WINDOW(call 0, unreported) once unreported ≥ ANSWER_WINDOW / 2
//! ```
//!
//! Only toward a server whose SETTINGS announced the bit (it comes before any answer): an
//! older server keeps to the per-stream windows alone, and is bounded by them alone.

use super::{ClientConnection, Slot, State, StreamSlot};
use sockrpc_protocol::frame::{self, ANSWER_WINDOW};

/// Why the connection closes when a server sends past the answer window.
pub(super) const OVERRUN: &str = "protocol error from server: it streamed answers past the \
     connection's answer window (16 MiB of unread answers)";

/// What `count` answers of `bytes` in all charge: each its bytes and `frame::MESSAGE_CHARGE`.
fn charge_of((count, bytes): (usize, usize)) -> usize {
    count
        .saturating_mul(frame::MESSAGE_CHARGE)
        .saturating_add(bytes)
}

impl ClientConnection {
    /// The answer window's two counts (toward a server that keeps it; `(0, 0)` otherwise):
    /// charges of streamed answers held unread, and of those consumed or dropped and not yet
    /// credited back (a WINDOW goes once half the window gathers). What the server counts
    /// outstanding is their sum and what is on its way: tests check that it returns exactly.
    pub fn answers_unread(&self) -> (usize, usize) {
        let state = self.shared().lock();
        (state.answers_held, state.answers_unreported)
    }
}

impl State {
    /// Held answers that charged `charge` were consumed by the application or dropped with
    /// their call: credit for them goes back. Whether a WINDOW frame was written (the caller
    /// flushes it, or leaves it to the driver).
    pub(super) fn answers_released(&mut self, charge: usize) -> bool {
        if !self.answer_window {
            return false;
        }
        self.answers_held = self.answers_held.saturating_sub(charge);
        self.credit_answers(charge)
    }

    /// A streamed answer of `len` bytes that was never held was dropped (its call had ended
    /// here, or is unknown): the server counted it, so it is credited too, or a few dropped
    /// streams would starve the connection.
    pub(super) fn answer_dropped(&mut self, len: usize) {
        if self.answer_window && self.credit_answers(frame::message_charge(len)) {
            self.outbox.wake_driver();
        }
    }

    /// Streamed answers that charged `charge` in all were skipped unread for going over the
    /// message limit (`FrameReader::take_skipped_streamed`; their calls failed
    /// `RESOURCE_EXHAUSTED`): the server counted them, so they are credited, or 16 answers of
    /// 1 MiB over a client's limit would stall every stream of the connection for ever.
    pub(super) fn answers_skipped(&mut self, charge: u64) {
        let charge = usize::try_from(charge).unwrap_or(usize::MAX);
        // The caller flushes what this writes.
        if self.answer_window {
            self.credit_answers(charge);
        }
    }

    /// What `slot` still holds unread is dropped with it: credited.
    pub(super) fn drop_held_answers(&mut self, slot: &Slot) {
        if let Some(stream) = slot.stream.as_ref() {
            let charge = stream.held_charge();
            if charge > 0 && self.answers_released(charge) {
                self.outbox.wake_driver();
            }
        }
    }

    /// Notes `charge` to credit, and writes WINDOW on call 0 once half the window has gathered.
    fn credit_answers(&mut self, charge: usize) -> bool {
        self.answers_unreported = self.answers_unreported.saturating_add(charge);
        if self.answers_unreported < ANSWER_WINDOW / 2 {
            return false;
        }
        let credit = u32::try_from(self.answers_unreported).unwrap_or(u32::MAX);
        self.answers_unreported -= credit as usize;
        frame::encode_window(self.outbox.buf_mut(), 0, credit);
        true
    }
}

impl StreamSlot {
    /// What this stream's unread answers charged the server's count: all but a one-message
    /// answer (END_STREAM), which the server does not count.
    pub(super) fn held_charge(&self) -> usize {
        let queued = self.inbound.queued();
        let uncounted = match self.uncounted {
            Some(len) if queued.0 > 0 => frame::message_charge(len),
            _ => 0,
        };
        charge_of(queued).saturating_sub(uncounted)
    }

    /// Whether the answer just taken from the queue was counted by the server: not the
    /// one-message answer (END_STREAM), always the last.
    pub(super) fn took_counted(&mut self) -> bool {
        !(self.inbound.queued().0 == 0 && self.uncounted.take().is_some())
    }
}
