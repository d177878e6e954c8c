//! A server connection's shared state and how answers leave it: one message, or a stream paced
//! by the client's credit.
//!
//! ```text
//!  handler result ── Body::once ──▶ [HEADERS] MESSAGE(end) END            (one write, inline)
//!                 └─ stream ─────▶ HEADERS, then MESSAGE while credit ≥ 0, END(trailers)
//! ```
//!
//! A streamed answer is `pump.rs`.

use super::open::{compressed_unnamed, Allowed};
use crate::dispatch::OutboundBody;
use crate::flow::{Inbound, Outbound};
use crate::outbox::Outbox;
use bytes::{Bytes, BytesMut};
use foldhash::HashMap;
use sockrpc_protocol::frame;
use sockrpc_protocol::{Code, EncodingFields, Limits, MetadataMap, Response, Status};
use std::{
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};
use tokio::task::JoinHandle;

/// A streaming call's flow state on the server.
#[derive(Debug, Default)]
pub(super) struct ServerStream {
    pub(super) inbound: Inbound,
    pub(super) outbound: Outbound,
    /// The handler dropped its request stream ([`CallReceiver`]) while the call goes on: the
    /// request messages that arrive are dropped, and credited, as they come.
    pub(super) reader_gone: bool,
}

impl ServerStream {
    fn wake_all(&mut self) {
        self.inbound
            .finish(Err(Status::cancelled("the call was cancelled")));
        self.outbound.wake();
    }
}

pub(super) struct ConnState {
    pub(super) outbox: Outbox,
    /// Calls still running past their first poll: in a task of their own (its handle), or
    /// polled on the connection's task (`None`, as while a task is being spawned).
    pub(super) running: HashMap<u32, Option<JoinHandle<()>>>,
    /// Streaming calls' queues and credit.
    pub(super) streams: HashMap<u32, ServerStream>,
    /// What all streams' inbound queues hold, in message charges (bytes, and
    /// [`frame::MESSAGE_CHARGE`] a message). Each stream is bounded by its window, but a client
    /// may open thousands: it keeps them all under the connection window
    /// ([`frame::CONNECTION_WINDOW`], announced in SETTINGS), and past [`pause_at`](Self::pause_at)
    /// (only a client that ignores that window gets there) the connection stops reading until
    /// handlers consume, so one connection's memory stays bounded whatever it opens.
    pub(super) inbound_bytes: usize,
    /// Where the connection stops reading: the connection window and one message past it.
    pub(super) pause_at: usize,
    /// Connection credit consumed (or dropped) and not yet granted back with WINDOW on call 0.
    pub(super) unreported: usize,
    /// The connection task, parked because of the inbound budget.
    pub(super) reader: Option<Waker>,
    /// Response pumps parked because the write buffer is past its high-water mark (a client
    /// that does not read must not make every stream fill the buffer by its own window), woken
    /// a few at a time as it drains (`turns.rs`).
    pub(super) writers: crate::turns::TurnQueue,
    /// Handlers that wait, parked for room in the write buffer (`room.rs`).
    pub(super) parked: super::room::Parked,
    /// Answers (HEADERS or MESSAGE) written so far: a PING after the server sent data is not a
    /// strike (gRPC resets its strike count when it sends data, not when the peer opens calls).
    pub(super) answers_sent: u64,
    /// The client set `FLAG_CHARGED` on a streaming OPEN: it credits each streamed answer as
    /// its `frame::message_charge`, so answers count so against the stream window (an empty
    /// answer would otherwise cost no credit, and a flood of them outrun any reader).
    pub(super) charge_answers: bool,
    /// Times the last handler running in a task of its own finished: the connection's idle
    /// clock counts from then.
    pub(super) went_idle: u64,
    /// The client's announced metadata limit (`announced.rs`; 0: not told yet).
    pub(super) client_metadata: usize,
    /// The client granted an answer window (`CAP_ANSWER_WINDOW`, `answer_window.rs`).
    pub(super) answer_window: bool,
    /// Charges of streamed answers sent and not yet credited back by the client.
    pub(super) answers_outstanding: usize,
    /// Response pumps waiting for answer credit, in line (`answer_window.rs`).
    pub(super) answer_waiters: crate::turns::TurnQueue,
}

/// Inbound stream messages one connection may hold (in message charges) before it stops
/// reading, beside one message past it: the connection window a client keeps to.
pub(super) const INBOUND_BUDGET: usize = frame::CONNECTION_WINDOW;

/// What one queued message counts against [`INBOUND_BUDGET`] beside its bytes: its queue entry
/// and handle. An empty message takes no stream credit, so without this a client could queue
/// empty messages on a stream whose handler is not reading until memory ran out; with it, the
/// connection window holds at most `INBOUND_BUDGET / QUEUED_MESSAGE_COST` of them.
pub(super) const QUEUED_MESSAGE_COST: usize = frame::MESSAGE_CHARGE;

/// What `count` queued messages of `bytes` in all hold from the budget.
fn held(count: usize, bytes: usize) -> usize {
    bytes.saturating_add(count.saturating_mul(QUEUED_MESSAGE_COST))
}

/// Where a connection whose messages may be `max_message` bytes stops reading: past the
/// connection window by more than the one message a client that keeps to it may send last.
pub(super) fn pause_at(max_message: usize) -> usize {
    INBOUND_BUDGET.saturating_add(frame::message_charge(max_message))
}

impl ConnState {
    /// Forgets a stream, releasing what its queue held from the connection's budget.
    pub(super) fn remove_stream(&mut self, call_id: u32) -> Option<ServerStream> {
        let stream = self.streams.remove(&call_id)?;
        self.leave_answer_line(call_id);
        // A pump parked or woken for room never comes back: its turn goes on.
        let room = self.outbox.buffered() <= crate::outbox::HIGH_WATER;
        self.writers.forget(call_id, room);
        let (count, bytes) = stream.inbound.queued();
        self.release_inbound(held(count, bytes));
        Some(stream)
    }

    /// Queues a request message on stream `call_id` and counts what it holds against the
    /// connection's budget. `Ok(false)`: no such stream (the call ended; its late messages are
    /// dropped, as the client may not know yet).
    pub(super) fn queue_message(
        &mut self,
        call_id: u32,
        body: bytes::Bytes,
        compressed: bool,
        end_stream: bool,
        max_message: usize,
    ) -> Result<bool, crate::flow::WindowExceeded> {
        let len = body.len();
        let Some(stream) = self.streams.get_mut(&call_id) else {
            // The client counted it against the connection window: give it back.
            self.grant(frame::message_charge(len));
            return Ok(false);
        };
        if stream.reader_gone {
            // No one will read it: dropped, and both windows credited as if it were read.
            stream.inbound.discard(len);
            if end_stream {
                stream.inbound.finish(Ok(MetadataMap::new()));
            }
            let credit = stream.inbound.take_credit();
            if let Some(credit) = credit {
                frame::encode_window(self.outbox.buf_mut(), call_id, credit);
            }
            self.grant(frame::message_charge(len));
            return Ok(true);
        }
        // Queued messages wait for the handler: small ones are copied out of the read buffer
        // so that what a stream holds is what it counts. A larger one is a slice of at most
        // four times its size: the reader copies out frames under a quarter of a buffer past
        // `GROWN`, and this those under a quarter of one up to it (until session 55, only
        // those under 4 KiB: each could keep a 30 KiB buffer, `tests/hostile/pinned_small.rs`).
        let body = if len < crate::reader::GROWN / 4 {
            bytes::Bytes::copy_from_slice(&body)
        } else {
            body
        };
        stream.inbound.push_flagged(body, compressed, max_message)?;
        if end_stream {
            stream.inbound.finish(Ok(MetadataMap::new()));
        }
        self.inbound_bytes += held(1, len);
        Ok(true)
    }

    /// Counts consumed (or dropped) inbound bytes, to be granted back to the client; wakes the
    /// reader once under budget.
    pub(super) fn release_inbound(&mut self, bytes: usize) {
        self.inbound_bytes = self.inbound_bytes.saturating_sub(bytes);
        self.grant(bytes);
        if !self.over_budget() {
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }

    /// Whether the streams' queues hold more than a client that keeps to the connection window
    /// can make them hold: the connection reads no more until handlers consume.
    pub(super) fn over_budget(&self) -> bool {
        self.inbound_bytes > self.pause_at
    }

    /// Notes `charge` of connection credit to give back, and gives it back (WINDOW on call 0)
    /// once half the window has gathered. A client is held back only while the window is all
    /// outstanding, so what it waits for is either queued (and granted as handlers consume) or
    /// at least half a window here, already sent.
    pub(super) fn grant(&mut self, charge: usize) {
        self.unreported = self.unreported.saturating_add(charge);
        if self.unreported >= frame::CONNECTION_WINDOW / 2 {
            let credit = u32::try_from(self.unreported).unwrap_or(u32::MAX);
            self.unreported -= credit as usize;
            frame::encode_window(self.outbox.buf_mut(), 0, credit);
            // Written by the connection's task, or by a handler's flush before that.
            self.outbox.wake_driver();
        }
    }

    /// The connection's look after a flush, the buffer under its high-water mark: once it is
    /// down to [`RESUME_AT`](crate::turns::RESUME_AT), response pumps parked for room get turns.
    pub(super) fn resume_writers(&mut self) {
        if !self.writers.is_empty() && self.outbox.buffered() <= crate::turns::RESUME_AT {
            self.writers.resume();
        }
    }

    /// Whether `call_id` is a streaming call whose client has half-closed.
    pub(super) fn half_closed(&self, call_id: u32) -> bool {
        self.streams
            .get(&call_id)
            .is_some_and(|stream| stream.inbound.is_finished())
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<ConnState>,
    pub(super) limits: Limits,
    /// What the requests of unary calls running in tasks of their own hold (`call.rs`,
    /// bounded by `Limits::max_running_requests_size`); shared with the `RequestCharge` of
    /// each compressed request, which adds what it decompresses to.
    pub(super) running_held: Arc<std::sync::atomic::AtomicUsize>,
    /// The read buffers running requests were sliced from, each counted once in
    /// `running_held` (`held.rs`).
    buffers: Mutex<super::held::Buffers>,
    /// Set when an answer left the write buffer past its high-water mark: handlers that wait
    /// are not polled until it drains (`room.rs`).
    pub(super) answers_paused: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(super) fn new(outbox: Outbox, limits: Limits) -> Shared {
        Shared {
            state: Mutex::new(ConnState {
                outbox,
                running: HashMap::default(),
                streams: HashMap::default(),
                inbound_bytes: 0,
                pause_at: pause_at(limits.max_message_size),
                unreported: 0,
                reader: None,
                writers: crate::turns::TurnQueue::default(),
                parked: super::room::Parked::default(),
                answers_sent: 0,
                charge_answers: false,
                went_idle: 0,
                client_metadata: super::announced::NOT_TOLD,
                answer_window: false,
                answers_outstanding: 0,
                answer_waiters: Default::default(),
            }),
            limits,
            running_held: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            buffers: Mutex::default(),
            answers_paused: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The read buffers running requests were sliced from (`held.rs`).
    pub(super) fn buffers(&self) -> MutexGuard<'_, super::held::Buffers> {
        self.buffers
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stops every handler still running in a task of its own.
    pub(super) fn abort_running(&self) {
        let mut state = self.lock();
        for (_, handle) in state.running.drain() {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
        for (_, mut stream) in state.streams.drain() {
            stream.wake_all();
        }
        state.inbound_bytes = 0;
        state.writers.wake_all();
        super::room::wake_all(&mut state);
        state.wake_answer_waiters();
    }

    /// Forgets a cancelled call's stream, waking whoever waits on it.
    pub(super) fn cancel_stream(state: &mut ConnState, call_id: u32) {
        if let Some(mut stream) = state.remove_stream(call_id) {
            stream.wake_all();
        }
    }
}

/// What [`answer_now`] did with a handler's result.
pub(super) enum Answered<B> {
    /// Written whole: an error, or one message. `refused`: the message could not be sent (over
    /// the send limit, or its metadata over a limit) and the call ended with this code instead,
    /// which the caller drops the handler's future with (`ending.rs`), so the layers that
    /// watched it record what the client got, not the `OK` the handler answered.
    Written { refused: Option<Code> },
    /// A streamed answer, for [`pump`](super::pump::pump).
    Streamed(Response<B>),
}

/// Answers at once when the result is an error or one message; hands a streamed response back
/// for [`pump`] (its encoding fields already as `allowed` lets them go). `allowed`: what the
/// call's OPEN allowed its answer (an OK end folded into its MESSAGE; encoding fields and
/// compressed messages).
pub(super) fn answer_now<B: OutboundBody>(
    state: &mut ConnState,
    call_id: u32,
    result: Result<Response<B>, Status>,
    allowed: Allowed,
    limits: &Limits,
) -> Answered<B> {
    let response = match result {
        Ok(response) => response,
        Err(status) => {
            state.remove_stream(call_id);
            state.answers_sent += 1;
            let encoding = allowed.fields(status.encoding());
            let status = super::announced::fit_status(state, status, limits);
            let buf = state.outbox.frames_for(call_id);
            encode_error(buf, call_id, &status, encoding, limits);
            return Answered::Written { refused: None };
        }
    };
    let encoding = allowed.fields(response.encoding());
    let (metadata, body, trailers) = response.into_parts();
    match body.into_once_flagged() {
        Ok((message, compressed)) => {
            state.remove_stream(call_id);
            state.answers_sent += 1;
            let checked = super::announced::check_response(state, &metadata, &trailers, limits);
            if let Err(status) = checked {
                encode_status(state.outbox.frames_for(call_id), call_id, &status, limits);
                return Answered::Written {
                    refused: Some(status.code()),
                };
            }
            let refused = encode_once(
                &mut state.outbox,
                call_id,
                (&metadata, encoding),
                (&message, compressed),
                &trailers,
                allowed,
                limits,
            );
            Answered::Written { refused }
        }
        Err(body) => {
            let mut response = Response::from_parts(metadata, body, trailers);
            response.set_encoding(encoding);
            Answered::Streamed(response)
        }
    }
}

/// Writes a one-message answer: HEADERS (when there is leading metadata or encoding fields),
/// MESSAGE (with its `FLAG_COMPRESSED`), END; or, when the client allowed it and there are no
/// trailers, the MESSAGE alone with the END folded in (`FLAG_END_OK`). The caller checked the
/// metadata (`announced::check_response`, against the same limits). A message over the send
/// limit is refused: an END `RESOURCE_EXHAUSTED` instead, and that code returned; so is one
/// flagged compressed toward a client whose OPEN named no encoding, or under fields that name
/// no encoding it is sent with, `INTERNAL`.
fn encode_once(
    outbox: &mut Outbox,
    call_id: u32,
    (metadata, encoding): (&MetadataMap, Option<EncodingFields>),
    (message, compressed): (&Bytes, bool),
    trailers: &MetadataMap,
    allowed: Allowed,
    limits: &Limits,
) -> Option<Code> {
    let buf = outbox.buf_mut();
    if message.len() > limits.send_limit() {
        let status = Status::resource_exhausted(format!(
            "response message of {} bytes exceeds the limit of {}",
            message.len(),
            limits.send_limit()
        ));
        encode_status(buf, call_id, &status, limits);
        return Some(Code::ResourceExhausted);
    }
    if compressed {
        if let Some(status) = compressed_unnamed(allowed, encoding) {
            encode_status(buf, call_id, &status, limits);
            return Some(Code::Internal);
        }
    }
    if !metadata.is_empty() || encoding.is_some() {
        frame::encode_headers_with(buf, call_id, metadata, encoding);
    }
    // The message in pieces when it is large and the client reads them; its END after them.
    let flags = frame::message_flags(true, compressed);
    if allowed.fold_end && trailers.is_empty() {
        outbox.append_message(call_id, flags | frame::FLAG_END_OK, message);
        return None;
    }
    outbox.append_message(call_id, flags, message);
    frame::encode_end(
        outbox.frames_for(call_id),
        call_id,
        Code::Ok,
        "",
        &[],
        trailers,
    );
    None
}

/// Writes an END with a status the transport made: trailers too large to send are dropped
/// rather than failing the call, and the status message says so. It carries no encoding
/// fields (a handler's error goes through [`encode_error`]).
///
/// A handler's status never carries the protocol's "not processed" flag, even when the handler
/// built it with `Status::not_processed`: only the connection itself may say a call never ran
/// ([`encode_refusal`]), or a client would re-send a call that did.
pub(super) fn encode_status(buf: &mut BytesMut, call_id: u32, status: &Status, limits: &Limits) {
    encode_end_with(buf, call_id, status, limits, (false, None));
}

/// Writes an END with a handler's error `status`, as [`encode_status`] does, and `encoding`,
/// the fields its call may send (`Allowed::fields`: none toward a client whose OPEN carried
/// none, whatever the status says).
pub(super) fn encode_error(
    buf: &mut BytesMut,
    call_id: u32,
    status: &Status,
    encoding: Option<EncodingFields>,
    limits: &Limits,
) {
    encode_end_with(buf, call_id, status, limits, (false, encoding));
}

/// Writes an END that tells the client the call was refused before it started (the protocol's
/// `NOT_PROCESSED` flag), so it may safely send it again.
pub(super) fn encode_refusal(buf: &mut BytesMut, call_id: u32, status: &Status, limits: &Limits) {
    encode_end_with(buf, call_id, status, limits, (true, None));
}

fn encode_end_with(
    buf: &mut BytesMut,
    call_id: u32,
    status: &Status,
    limits: &Limits,
    (not_processed, encoding): (bool, Option<EncodingFields>),
) {
    let empty = MetadataMap::new();
    let (trailers, message): (&MetadataMap, std::borrow::Cow<'_, str>) =
        match frame::check_metadata(status.metadata(), limits) {
            Ok(()) => (status.metadata(), status.message().into()),
            // The status still goes, with its code; its message says what could not.
            Err(why) => {
                let note = format!("[trailing metadata dropped: {why}]");
                let message =
                    frame::noted_status(status.message(), &note, limits.status_message_cap());
                (&empty, message)
            }
        };
    let end = frame::EndFrame {
        code: status.code(),
        message: &message,
        details: status.details(),
        trailers,
        not_processed,
        // What this server reads, set by a generated service on its error answers to a client
        // whose OPEN carried encoding fields (and only toward one: `Allowed::fields`): the
        // client learns it from the protocol, not from the status's metadata.
        encoding,
    };
    frame::encode_end_capped(buf, call_id, &end, limits.status_message_cap());
}

/// A streaming request's messages, as the handler reads them; credit goes back to the client as
/// they are consumed.
///
/// Dropped before the client's half-close (a handler that stops reading but answers on), it
/// lets the call go on without its requests: what is queued is freed, and what comes later is
/// dropped as it arrives, both credited to the client (its stream and the connection window)
/// as if read, so that neither waits on a reader that is gone (`docs/FLOW-CONTROL.md`).
pub struct CallReceiver {
    pub(super) shared: Arc<Shared>,
    pub(super) call_id: u32,
    /// Read to its end (the half-close, or a failure): nothing more will come to it, so its
    /// drop has nothing to give back and takes no lock.
    pub(super) ended: bool,
    /// The client's OPEN named no encoding its messages use: one flagged compressed is then a
    /// protocol error, not a compression this reader does not take ([`Self::poll_message`]).
    pub(super) unnamed: bool,
}

impl std::fmt::Debug for CallReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallReceiver")
            .field("call_id", &self.call_id)
            .finish()
    }
}

impl CallReceiver {
    /// The next message; `None` after the client's half-close. A call that ended (cancelled,
    /// or its connection closed) yields a `CANCELLED` status; a compressed message,
    /// `UNIMPLEMENTED` (a reader that decompresses calls
    /// [`poll_message_flagged`](CallReceiver::poll_message_flagged)), or `INTERNAL` when the
    /// client's OPEN named no encoding: a protocol error, as gRPC's compression spec has a
    /// message flagged compressed with no `grpc-encoding` (grpc-go: "compressed flag set with
    /// identity or empty encoding"), and as the service layer answers it.
    pub fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, Status>>> {
        let unnamed = self.unnamed;
        self.poll_message_flagged(cx).map(|next| {
            next.map(|message| match message {
                Ok((_, true)) if unnamed => Err(Status::internal(
                    "protocol error: a message flagged compressed, but its sender named no \
                     encoding",
                )),
                Ok((_, true)) => Err(Status::unimplemented(
                    "a compressed message arrived where no compression was negotiated",
                )),
                Ok((message, false)) => Ok(message),
                Err(status) => Err(status),
            })
        })
    }

    /// The next message with its MESSAGE's `FLAG_COMPRESSED`.
    pub fn poll_message_flagged(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(bytes::Bytes, bool), Status>>> {
        let mut state = self.shared.lock();
        let state = &mut *state;
        let Some(stream) = state.streams.get_mut(&self.call_id) else {
            return Poll::Ready(Some(Err(Status::cancelled("the call has ended"))));
        };
        let polled = stream.inbound.poll_next_flagged(cx);
        match &polled {
            Poll::Ready(Some(Ok((message, _)))) => {
                let credit = stream.inbound.take_credit();
                state.release_inbound(held(1, message.len()));
                if let Some(credit) = credit {
                    frame::encode_window(state.outbox.buf_mut(), self.call_id, credit);
                    let alone = state.running.len() <= 1;
                    state.outbox.flush_or_defer(cx, alone);
                }
            }
            Poll::Ready(_) => self.ended = true,
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for CallReceiver {
    /// A request stream dropped before its end: the call goes on (its answers still go out),
    /// but its requests are no longer read. What they hold is freed and credited now, and
    /// later ones as they arrive (`ConnState::queue_message`): kept, they held their place
    /// under the connection window until the handler ended, and a few such handlers left no
    /// credit for any other stream on the connection.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let mut state = self.shared.lock();
        let state = &mut *state;
        let Some(stream) = state.streams.get_mut(&self.call_id) else {
            return;
        };
        stream.reader_gone = true;
        let (count, bytes) = stream.inbound.drop_unread();
        let credit = stream.inbound.take_credit();
        if let Some(credit) = credit {
            frame::encode_window(state.outbox.buf_mut(), self.call_id, credit);
            state.outbox.wake_driver();
        }
        if count > 0 {
            state.release_inbound(held(count, bytes));
        }
    }
}

#[cfg(test)]
#[path = "respond_tests.rs"]
mod tests;
