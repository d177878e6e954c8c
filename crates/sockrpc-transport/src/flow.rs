//! Per-call flow control for streaming calls, shared by client and server.
//!
//! ```text
//!  sender                                   receiver
//!  outstanding < STREAM_WINDOW? ──MESSAGE──▶ queue (refused past window + message limit)
//!        ▲                                     │ consumer takes a message
//!        └──────────── WINDOW(credit) ◀────────┘ once half a window is consumed
//! ```
//!
//! The receiver grants credit only as its consumer actually takes messages, so a slow consumer
//! slows the producer on the other side, and memory per stream stays bounded whatever the
//! producer does: a peer that ignores the window overflows the bound and loses its connection.

use bytes::Bytes;
use sockrpc_protocol::frame::{self, STREAM_WINDOW};
use sockrpc_protocol::{MetadataMap, Status};
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

/// Messages received on one call and not yet consumed.
#[derive(Debug, Default)]
pub struct Inbound {
    /// Messages, each with its MESSAGE's `FLAG_COMPRESSED`.
    queue: VecDeque<(Bytes, bool)>,
    queued_bytes: usize,
    unreported: usize,
    /// Credited per message beside its bytes: 0, or `MESSAGE_CHARGE` on a stream whose sender
    /// counts each message as its `message_charge` (`FLAG_CHARGED`).
    charge: usize,
    end: Option<Result<MetadataMap, Status>>,
    waker: Option<Waker>,
}

/// The peer sent past its window (more than one maximum-size message of slack): a protocol
/// violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowExceeded;

impl Inbound {
    /// Credits each consumed message as its [`message_charge`](frame::message_charge), its bytes
    /// and [`MESSAGE_CHARGE`](frame::MESSAGE_CHARGE), rather than its bytes alone: what a
    /// sender that knows `FLAG_CHARGED` counts, so that it may send empty messages only as fast
    /// as they are consumed.
    pub fn credit_charges(&mut self) {
        self.charge = frame::MESSAGE_CHARGE;
    }

    /// Queues a received message; wakes the consumer.
    pub fn push(&mut self, message: Bytes, max_message: usize) -> Result<(), WindowExceeded> {
        self.push_flagged(message, false, max_message)
    }

    /// Queues a received message with its MESSAGE's `FLAG_COMPRESSED`; wakes the consumer.
    pub fn push_flagged(
        &mut self,
        message: Bytes,
        compressed: bool,
        max_message: usize,
    ) -> Result<(), WindowExceeded> {
        if self.queued_bytes > STREAM_WINDOW + max_message {
            return Err(WindowExceeded);
        }
        self.queued_bytes += message.len();
        self.queue.push_back((message, compressed));
        self.wake();
        Ok(())
    }

    /// The sender finished: `Ok(trailers)`, or the call failed with a status.
    pub fn finish(&mut self, end: Result<MetadataMap, Status>) {
        if self.end.is_none() {
            self.end = Some(end);
        }
        self.wake();
    }

    /// This side gave the call up with `status`: unless the sender's end has already arrived
    /// (its whole answer then stands, as before), what is queued is dropped unread and the call
    /// ends with `status` (a consumer that cancels is given no later message, as grpc's
    /// `cancel` delivers none).
    pub fn abort(&mut self, status: Status) {
        if self.end.is_some() {
            self.wake();
            return;
        }
        self.queue.clear();
        self.queued_bytes = 0;
        self.end = Some(Err(status));
        self.wake();
    }

    /// Whether the sender has finished.
    pub fn is_finished(&self) -> bool {
        self.end.is_some()
    }

    /// The call's failure, once every queued message has been consumed.
    pub fn failure(&self) -> Option<Status> {
        match &self.end {
            Some(Err(status)) if self.queue.is_empty() => Some(status.clone()),
            _ => None,
        }
    }

    /// Whether a message is queued or the sender has finished.
    pub fn has_data_or_end(&self) -> bool {
        !self.queue.is_empty() || self.end.is_some()
    }

    /// Messages queued, for tests and diagnostics.
    pub fn queued(&self) -> (usize, usize) {
        (self.queue.len(), self.queued_bytes)
    }

    /// The next message; `Ready(None)` after a clean end, `Ready(Some(Err))` when the call
    /// failed (once the queued messages are consumed).
    ///
    /// A compressed message is refused here (`UNIMPLEMENTED`): a reader that can decompress
    /// calls [`poll_next_flagged`](Inbound::poll_next_flagged).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        self.poll_next_flagged(cx).map(|next| {
            next.map(|message| match message {
                Ok((_, true)) => Err(Status::unimplemented(
                    "a compressed message arrived where no compression was negotiated",
                )),
                Ok((message, false)) => Ok(message),
                Err(status) => Err(status),
            })
        })
    }

    /// The next message with its `FLAG_COMPRESSED`; otherwise as [`poll_next`](Inbound::poll_next).
    pub fn poll_next_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        if let Some((message, compressed)) = self.queue.pop_front() {
            self.queued_bytes -= message.len();
            self.unreported += message.len() + self.charge;
            return Poll::Ready(Some(Ok((message, compressed))));
        }
        match &self.end {
            Some(Ok(_)) => Poll::Ready(None),
            Some(Err(status)) => Poll::Ready(Some(Err(status.clone()))),
            None => {
                match &self.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => self.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Trailing metadata, once the sender ended cleanly.
    pub fn trailers(&self) -> Option<&MetadataMap> {
        match &self.end {
            Some(Ok(trailers)) => Some(trailers),
            _ => None,
        }
    }

    /// Its consumer is gone (a server's handler dropped its request stream): drops what is
    /// queued unread, counting it as consumed so that it is credited as if read, and returns
    /// what it held, `(messages, bytes)`. Later messages go to [`discard`](Inbound::discard).
    pub fn drop_unread(&mut self) -> (usize, usize) {
        let held = (self.queue.len(), self.queued_bytes);
        self.unreported += held.1 + held.0 * self.charge;
        self.queue.clear();
        self.queued_bytes = 0;
        held
    }

    /// A message of `len` bytes that arrived for a consumer that is gone: not kept, counted
    /// as consumed (credited as if read), so the sender is never held back by what no one
    /// will read.
    pub fn discard(&mut self, len: usize) {
        self.unreported += len + self.charge;
    }

    /// Credit to grant now: half a window consumed since the last grant, and the sender still
    /// sending. Batching grants keeps WINDOW frames rare.
    pub fn take_credit(&mut self) -> Option<u32> {
        if self.end.is_some() || self.unreported < STREAM_WINDOW / 2 {
            return None;
        }
        let credit = u32::try_from(self.unreported).unwrap_or(u32::MAX);
        self.unreported = 0;
        Some(credit)
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// What one call has sent and not had credited back.
#[derive(Debug, Default)]
pub struct Outbound {
    outstanding: usize,
    waker: Option<Waker>,
}

impl Outbound {
    /// Ready when another message may be sent.
    pub fn poll_credit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.outstanding < STREAM_WINDOW {
            return Poll::Ready(());
        }
        self.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether another message may be sent now (as [`poll_credit`](Outbound::poll_credit) would
    /// say, without registering to hear of more).
    pub fn has_credit(&self) -> bool {
        self.outstanding < STREAM_WINDOW
    }

    /// Registers the sender's waker, to hear of credit or of the call's end.
    pub fn register(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }

    /// Records a message sent.
    pub fn sent(&mut self, len: usize) {
        self.outstanding += len;
    }

    /// Applies credit from a WINDOW frame; wakes a waiting sender.
    pub fn credit(&mut self, credit: u32) {
        self.outstanding = self.outstanding.saturating_sub(credit as usize);
        self.wake();
    }

    /// Wakes a waiting sender (the call ended or was cancelled).
    pub fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}
