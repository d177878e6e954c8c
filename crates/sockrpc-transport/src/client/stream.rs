//! Streaming calls on a client connection: a sender half (request messages, with flow credit)
//! and a receiver half (response head, messages, trailers).
//!
//! ```text
//!  StreamSender ──MESSAGE (while outstanding < window)──▶ server
//!  StreamSender ──END (half-close)──────────────────────▶ server
//!  StreamReceiver ◀── HEADERS, MESSAGE*, END ── driver ◀── server
//!  StreamReceiver ──WINDOW (as messages are consumed)───▶ server
//! ```
//!
//! Dropping the receiver before the call ended cancels it on the server.

use super::room::{RoomFuture, RoomPass};
use super::ClientConnection;
use bytes::Bytes;
use sockrpc_protocol::frame;
use sockrpc_protocol::{EncodingFields, MetadataMap, MethodPath, Status};
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// Sends a streaming call's request messages.
#[derive(Debug)]
pub struct StreamSender {
    conn: ClientConnection,
    id: u32,
    closed: bool,
}

/// Receives a streaming call's response.
pub struct StreamReceiver {
    conn: ClientConnection,
    id: u32,
    done: bool,
    trailers: Option<MetadataMap>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReceiver")
            .field("id", &self.id)
            .field("done", &self.done)
            .finish()
    }
}

impl ClientConnection {
    /// Opens a streaming call. With `request` = `Some(message)` the request is that one message
    /// (server streaming); with `None` the client streams its request through the sender.
    pub fn open_stream(
        &self,
        path: &MethodPath,
        metadata: &MetadataMap,
        timeout: Option<Duration>,
        request: Option<Bytes>,
    ) -> Result<(StreamSender, StreamReceiver), Status> {
        let request = request.map(|message| (message, false));
        self.open_stream_with(path, metadata, timeout, request, None)
    }

    /// Opens a streaming call as [`open_stream`](ClientConnection::open_stream) does, with the
    /// one request message's `FLAG_COMPRESSED` and the OPEN's encoding fields.
    pub fn open_stream_with(
        &self,
        path: &MethodPath,
        metadata: &MetadataMap,
        timeout: Option<Duration>,
        request: Option<(Bytes, bool)>,
        encoding: Option<EncodingFields>,
    ) -> Result<(StreamSender, StreamReceiver), Status> {
        self.open(None, path, metadata, timeout, request, encoding)
    }

    /// Checks a streaming call's metadata and its one request message (if it has one) against
    /// this connection's limits: what opening it would refuse, found before waiting for room.
    pub fn check_stream(
        &self,
        metadata: &MetadataMap,
        request: Option<&Bytes>,
    ) -> Result<(), Status> {
        super::call::check_request(None, metadata, request, self.shared())
    }

    /// Waits for room under the server's limit of calls in flight on this connection (its
    /// SETTINGS), up to `deadline`, and keeps it for one streaming call: open it with
    /// [`open_stream_in`](ClientConnection::open_stream_in). Unary calls wait on their own. A
    /// channel does this for every streaming call.
    pub fn room(&self, deadline: Option<Instant>) -> RoomFuture {
        RoomFuture::new(self.clone(), deadline)
    }

    /// [`open_stream_with`](ClientConnection::open_stream_with) in the room `pass` kept.
    pub fn open_stream_in(
        &self,
        pass: RoomPass,
        path: &MethodPath,
        metadata: &MetadataMap,
        timeout: Option<Duration>,
        request: Option<(Bytes, bool)>,
        encoding: Option<EncodingFields>,
    ) -> Result<(StreamSender, StreamReceiver), Status> {
        self.open(Some(pass), path, metadata, timeout, request, encoding)
    }

    fn open(
        &self,
        pass: Option<RoomPass>,
        path: &MethodPath,
        metadata: &MetadataMap,
        timeout: Option<Duration>,
        request: Option<(Bytes, bool)>,
        encoding: Option<EncodingFields>,
    ) -> Result<(StreamSender, StreamReceiver), Status> {
        let shared = self.shared();
        let message = request.as_ref().map(|(message, _)| message);
        super::call::check_request(Some(path), metadata, message, shared)?;
        super::call::check_timeout(timeout)?;
        if pass.as_ref().is_some_and(|pass| !pass.is_for(self)) {
            // Dropped, the pass gives its room back where it was kept.
            return Err(Status::invalid_argument(
                "a room pass opens a stream only on the connection that kept the room",
            ));
        }
        let mut state = shared.lock();
        // Room kept before a graceful close: the call was started, and drains (`room.rs`).
        let draining = pass.is_some() && state.room.is_draining();
        if let Some(pass) = pass {
            // The room it kept becomes the call's place; if the call fails here, the room is
            // free again for the next waiter.
            pass.use_in(&mut state);
        }
        if let Some(status) = state.closed.as_ref().filter(|_| !draining) {
            // Nothing was sent: safe to open on another connection, as a unary call would be.
            let status = super::room::unsent_status(&state, status);
            state.wake_for_room(shared);
            return Err(status);
        }
        let id = match state.next_call_id(shared) {
            Ok(id) => id,
            Err(status) => {
                state.wake_for_room(shared);
                return Err(status);
            }
        };
        let buf = state.outbox.buf_mut();
        frame::encode_open_frame(
            buf,
            id,
            &frame::OpenFrame {
                timeout,
                client_streams: request.is_none(),
                encoding,
                // Answers are credited with their charge (below): a server that knows the flag
                // paces empty answers by it.
                charged: true,
                ..frame::OpenFrame::new(path, metadata)
            },
        );
        if let Some((message, compressed)) = &request {
            let flags = frame::message_flags(true, *compressed);
            state.outbox.append_message(id, flags, message);
        }
        let mut stream = Box::<super::StreamSlot>::default();
        stream.inbound.credit_charges();
        state.add_call(shared, id).stream = Some(stream);
        state.outbox.wake_driver();
        drop(state);
        crate::dispatch::note_call_id(id);
        let deadline = timeout.map(|t| Box::pin(tokio::time::sleep_until(Instant::now() + t)));
        Ok((
            StreamSender {
                conn: self.clone(),
                id,
                closed: request.is_some(),
            },
            StreamReceiver {
                conn: self.clone(),
                id,
                done: false,
                trailers: None,
                deadline,
            },
        ))
    }
}

/// Of a message flagged compressed: whether the server's HEADERS named no encoding (`true`),
/// which makes it a protocol error, not a compression this side does not take.
#[derive(Debug, Clone, Copy)]
struct Unnamed(bool);

/// A message as it arrived: with [`Unnamed`] when it is flagged compressed.
type Wire = (Bytes, Option<Unnamed>);

fn gone() -> Status {
    Status::cancelled("the call has ended")
}

impl StreamSender {
    /// The call's id, for the tests that look at its places in the connection's lines.
    #[cfg(test)]
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// Ready when the stream's window lets another message go, the connection window too
    /// (when the server announced one: `frame::CONNECTION_WINDOW`), and the connection's write
    /// buffer is under its high-water mark (8 MiB: a server that stops reading holds every
    /// stream's messages back, as it holds new calls, so what one connection buffers stays
    /// bounded however many streams it carries); fails when the call has ended. Either way `cx` is
    /// woken when the call ends, as [`poll_alive`](StreamSender::poll_alive) does, so a sender
    /// that next waits on its own request stream needs no second call (and lock).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let shared = self.conn.shared();
        let mut state = shared.lock();
        self.ready_locked(&mut state, cx)
    }

    /// [`poll_ready`](StreamSender::poll_ready) under the connection's lock, held.
    fn ready_locked(
        &self,
        state: &mut super::State,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Status>> {
        let Some(stream) = state.stream_mut(self.id) else {
            return Poll::Ready(Err(gone()));
        };
        if stream.inbound.is_finished() {
            // The server already answered (or the connection failed): nothing more it would
            // read. A place this sender holds in a line goes, and a turn it was woken with
            // passes on: a caller that keeps the sender after this error never comes back.
            state.leave_lines(self.id);
            return Poll::Ready(Err(gone()));
        }
        if stream.outbound.poll_credit(cx).is_pending() {
            // Its own window is spent: it waits for the call's credit, in no line (it comes
            // back through `cx` once that credit comes). Only a sender that sent without being
            // ready can get here from a line, holding a turn the others wait for.
            state.leave_lines(self.id);
            return Poll::Pending;
        }
        stream.outbound.register(cx);
        if state.wait_for_drain(self.id, cx.waker()) {
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    /// Whether the call is still open to requests; registers to be woken when it ends, so a
    /// sender waiting on its own request stream notices a cancelled or answered call.
    pub fn poll_alive(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        let shared = self.conn.shared();
        let mut state = shared.lock();
        let Some(stream) = state.stream_mut(self.id) else {
            return Err(gone());
        };
        if stream.inbound.is_finished() {
            return Err(gone());
        }
        stream.outbound.register(cx);
        Ok(())
    }

    /// Sends one message (after `poll_ready` said yes). Senders on other threads that found
    /// the connection window open at the same time may all send, overdrawing it by a message
    /// each: [`poll_send_flagged`](StreamSender::poll_send_flagged) looks and charges at once.
    pub fn send(&mut self, cx: &mut Context<'_>, message: &Bytes) -> Result<(), Status> {
        self.send_flagged(cx, message, false)
    }

    /// Sends `message` (with `FLAG_COMPRESSED` when `compressed`) once the connection window
    /// and the write buffer let it go, looked at and charged under one lock: however many
    /// senders found the window open in [`poll_ready`](StreamSender::poll_ready), each
    /// message after the window is spent waits here for credit, so a connection is overdrawn
    /// by one message at most, which the server's pause (the window and one message past it)
    /// allows. It looks as `poll_ready` does, and waits in the same lines.
    pub fn poll_send_flagged(
        &mut self,
        cx: &mut Context<'_>,
        message: &Bytes,
        compressed: bool,
    ) -> Poll<Result<(), Status>> {
        let shared = self.conn.shared();
        super::call::check_message(message, &shared.limits)?;
        let mut state = shared.lock();
        std::task::ready!(self.ready_locked(&mut state, cx))?;
        Poll::Ready(self.send_locked(&mut state, cx, message, compressed))
    }

    /// Sends one message, with `FLAG_COMPRESSED` when `compressed`.
    pub fn send_flagged(
        &mut self,
        cx: &mut Context<'_>,
        message: &Bytes,
        compressed: bool,
    ) -> Result<(), Status> {
        let shared = self.conn.shared();
        super::call::check_message(message, &shared.limits)?;
        let mut state = shared.lock();
        self.send_locked(&mut state, cx, message, compressed)
    }

    /// [`send_flagged`](StreamSender::send_flagged) under the connection's lock, held.
    fn send_locked(
        &self,
        state: &mut super::State,
        cx: &mut Context<'_>,
        message: &Bytes,
        compressed: bool,
    ) -> Result<(), Status> {
        let charge = if state.charged_requests {
            frame::message_charge(message.len())
        } else {
            message.len()
        };
        let Some(stream) = state.stream_mut(self.id) else {
            return Err(gone());
        };
        stream.outbound.sent(charge);
        if state.connection_window {
            state.connection_outstanding += frame::message_charge(message.len());
        }
        state
            .outbox
            .append_message(self.id, frame::message_flags(false, compressed), message);
        let alone = state.calls.len() == 1;
        state.outbox.flush_or_defer(cx, alone);
        Ok(())
    }

    /// Ends the request stream (half-close); the response keeps coming. A place the sender
    /// took in a line for room or credit goes with it (it will send nothing more).
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let mut state = self.conn.shared().lock();
        if state.calls.get(self.id).is_some() {
            // After the last request message, even one still going out in pieces.
            frame::encode_half_close(state.outbox.frames_for(self.id), self.id);
            // It sends no more, so it never comes back for a place it took in a line for room
            // or credit (`poll_ready` then half-close, the sender kept while the answers come):
            // the place goes, and a turn it holds passes on.
            state.leave_lines(self.id);
            state.outbox.wake_driver();
        }
    }

    /// Abandons the call (the request could not be produced): the server stops the handler.
    pub fn cancel(&mut self) {
        self.cancel_with(Status::cancelled("the request stream failed"));
    }

    /// Abandons the call because of `status` (a request message over a limit, or the request
    /// stream's own error): the server stops the handler, and the call ends with `status`, as
    /// grpc-go's `SendMsg` failure ends its stream. Unless the server's end has already arrived,
    /// response messages that arrived and were not yet read are dropped: the receiver's next
    /// read is `status`.
    pub fn cancel_with(&mut self, status: Status) {
        self.closed = true;
        let shared = self.conn.shared();
        let mut state = shared.lock();
        if let Some(slot) = state.calls.get_mut(self.id) {
            let mut held = 0;
            if let Some(stream) = slot.stream.as_mut() {
                if !stream.inbound.is_finished() {
                    // Dropped unread by the abort: credited (`answers.rs`).
                    held = stream.held_charge();
                }
                stream.abort(status);
            }
            state.answers_released(held);
            state.abandon_call(self.id, |buf| frame::encode_cancel(buf, self.id));
            state.outbox.wake_driver();
            state.stream_ended(shared, self.id);
        }
    }
}

impl StreamReceiver {
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> Result<(), Status> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.finish(true);
                return Err(Status::deadline_exceeded(
                    "deadline exceeded while waiting for the server",
                ));
            }
        }
        Ok(())
    }

    /// The response head (leading metadata), or the call's failure.
    pub fn poll_headers(&mut self, cx: &mut Context<'_>) -> Poll<Result<MetadataMap, Status>> {
        if self.done {
            return Poll::Ready(Err(gone()));
        }
        self.check_deadline(cx)?;
        let shared = self.conn.shared();
        let mut state = shared.lock();
        let Some(stream) = state.stream_mut(self.id) else {
            return Poll::Ready(Err(gone()));
        };
        if let Some(headers) = stream.headers.take() {
            // Leave an empty head behind so a second poll does not wait forever.
            stream.headers = Some(MetadataMap::new());
            return Poll::Ready(Ok(headers));
        }
        if let Some(status) = stream.inbound.failure() {
            // Failed before any response head: that status is the answer.
            drop(state);
            self.finish(false);
            return Poll::Ready(Err(status));
        }
        if stream.inbound.has_data_or_end() {
            // A message (or a clean end) without HEADERS: the head is empty.
            stream.headers = Some(MetadataMap::new());
            return Poll::Ready(Ok(MetadataMap::new()));
        }
        stream.head_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The server's encoding fields, once its HEADERS arrived (`None` when it sent none).
    pub fn encoding(&self) -> Option<EncodingFields> {
        let state = self.conn.shared().lock();
        state.stream(self.id).and_then(|s| s.encoding)
    }

    /// The next response message; `None` after the call ended OK (then see [`trailers`]). A
    /// compressed message is refused with `UNIMPLEMENTED` (a reader that decompresses calls
    /// [`poll_message_flagged`](StreamReceiver::poll_message_flagged)), or `INTERNAL` when the
    /// server's HEADERS named no encoding: a protocol error, as gRPC's compression spec has a
    /// message flagged compressed with no `grpc-encoding`, and as the service layer answers it.
    ///
    /// [`trailers`]: StreamReceiver::trailers
    pub fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        self.poll_wire(cx).map(|next| {
            next.map(|message| match message {
                Ok((_, Some(Unnamed(true)))) => Err(Status::internal(
                    "protocol error: a message flagged compressed, but its sender named no \
                     encoding",
                )),
                Ok((_, Some(Unnamed(false)))) => Err(Status::unimplemented(
                    "a compressed message arrived where no compression was negotiated",
                )),
                Ok((message, None)) => Ok(message),
                Err(status) => Err(status),
            })
        })
    }

    /// The next response message with its MESSAGE's `FLAG_COMPRESSED`.
    pub fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        self.poll_wire(cx)
            .map(|next| next.map(|message| message.map(|(m, flag)| (m, flag.is_some()))))
    }

    /// The next response message, and when it is flagged compressed, whether the server's
    /// HEADERS named no encoding (read under the lock the message is taken under).
    fn poll_wire(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Wire, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Err(status) = self.check_deadline(cx) {
            return Poll::Ready(Some(Err(status)));
        }
        let shared = self.conn.shared();
        let mut state = shared.lock();
        let Some(stream) = state.stream_mut(self.id) else {
            return Poll::Ready(Some(Err(gone())));
        };
        let polled = stream.inbound.poll_next_flagged(cx).map(|next| {
            next.map(|message| {
                message.map(|(message, compressed)| {
                    let unnamed = stream.encoding.is_none_or(|fields| fields.send == 0);
                    (message, compressed.then_some(Unnamed(unnamed)))
                })
            })
        });
        match &polled {
            Poll::Ready(Some(Ok((message, _)))) => {
                let credit = stream.inbound.take_credit();
                let counted = stream.took_counted();
                if let Some(credit) = credit {
                    frame::encode_window(state.outbox.buf_mut(), self.id, credit);
                }
                // The answer window too (`answers.rs`): a counter under this lock.
                let charge = frame::message_charge(message.len());
                let window = counted && state.answers_released(charge);
                if credit.is_some() || window {
                    let alone = state.calls.len() == 1;
                    state.outbox.flush_or_defer(cx, alone);
                }
            }
            Poll::Ready(None) => {
                self.trailers = stream.inbound.trailers().cloned();
                drop(state);
                self.finish(false);
            }
            Poll::Ready(Some(Err(_))) => {
                drop(state);
                self.finish(false);
            }
            Poll::Pending => {}
        }
        polled
    }

    /// Trailing metadata, once the stream ended OK.
    pub fn trailers(&self) -> Option<&MetadataMap> {
        self.trailers.as_ref()
    }

    /// Messages queued and not yet consumed (count, bytes), for tests of backpressure.
    pub fn queued(&self) -> (usize, usize) {
        let state = self.conn.shared().lock();
        state.stream(self.id).map_or((0, 0), |s| s.inbound.queued())
    }

    fn finish(&mut self, cancel: bool) {
        if self.done {
            return;
        }
        self.done = true;
        let shared = self.conn.shared();
        let mut state = shared.lock();
        let ended = state
            .stream(self.id)
            .is_some_and(|s| s.inbound.is_finished());
        if let Some(mut slot) = state.remove_call(shared, self.id) {
            if let Some(stream) = slot.stream.as_mut() {
                stream.outbound.wake();
            }
        }
        if cancel || !ended {
            // Its slot is gone: what its dropped messages charged is given back here.
            let unsent = state
                .outbox
                .abandon(self.id, |buf| frame::encode_cancel(buf, self.id));
            state.give_back(unsent);
            state.outbox.wake_driver();
        }
    }
}

impl Drop for StreamSender {
    /// A sender dropped while it waited for room or credit never comes back for its place:
    /// the place goes, and a turn it holds passes on (`turns.rs`), else the turns handed to
    /// dropped senders whose calls go on (their receivers kept) went to no one.
    fn drop(&mut self) {
        let shared = self.conn.shared();
        let mut state = shared.lock();
        if state.stream_mut(self.id).is_none() {
            // The call has left the table, and its places with it.
            return;
        }
        state.leave_lines(self.id);
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        // Ended calls are already gone; anything else is abandoned and cancelled.
        self.finish(false);
    }
}
