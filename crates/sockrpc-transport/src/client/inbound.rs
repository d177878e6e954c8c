//! `Inbound`: what the client does with each frame its server sends. The connection's driver
//! (`driver.rs`) reads the socket and hands every whole frame here, under the connection's lock:
//! answers complete their call's slot and collect its waker, streamed messages join their
//! stream's queue, SETTINGS, WINDOW, PING and GOAWAY update the connection.
//!
//! Apart from the driver because dispatching borrows only part of it (`shared`, the wakers to
//! call, the keepalive state) beside the lock's guard, which borrows `shared` too.

use super::driver::Pinger;
use super::{Shared, State};
use crate::outbox::HIGH_WATER;
use crate::timer::deadline_after;
use bytes::Bytes;
use sockrpc_protocol::frame::{self, Frame, FrameKind, ANSWER_WINDOW};
use sockrpc_protocol::{Code, MetadataMap, Response, Status};
use std::{sync::atomic::Ordering, sync::Arc, task::Waker};
use tokio::time::Instant;

/// Messages one streaming call may hold unread. The window bounds their bytes, and a server
/// that knows `FLAG_CHARGED` (set on every streaming OPEN) counts 64 bytes more per message, so
/// it stops at 1,024 empty ones; an older server counts no credit for an empty message and could
/// otherwise queue them without end.
const MAX_UNREAD_MESSAGES: usize = 2 * sockrpc_protocol::frame::STREAM_WINDOW;

/// What dispatching a frame needs of the driver, borrowed beside the connection's lock: the
/// lock's guard borrows `shared`, and borrowing the driver whole as well would take a clone of
/// the `Arc` (two locked instructions) per read.
pub(super) struct Inbound<'a> {
    pub(super) shared: &'a Arc<Shared>,
    /// Wakers collected under the lock and called after it is released.
    pub(super) wake: &'a mut Vec<Waker>,
    pub(super) pinger: &'a mut Option<Pinger>,
}

impl Inbound<'_> {
    /// Acts on one frame from the server.
    pub(super) fn dispatch(&mut self, state: &mut State, frame: Frame) {
        match frame {
            Frame::Headers {
                call_id,
                metadata,
                encoding,
            } => {
                if let Some(slot) = state.calls.get_mut(call_id) {
                    if slot.headers_seen {
                        // A server sends one HEADERS per call: more would pile up unread.
                        self.refuse_headers(state, call_id);
                        return;
                    }
                    slot.headers_seen = true;
                    if encoding.is_some() {
                        slot.encoding = encoding;
                    }
                    match slot.stream.as_mut() {
                        Some(stream) => {
                            if encoding.is_some() {
                                stream.encoding = encoding;
                            }
                            stream
                                .headers
                                .get_or_insert_with(Default::default)
                                .extend(metadata);
                            if let Some(waker) = stream.head_waker.take() {
                                self.wake.push(waker);
                            }
                        }
                        None => slot.headers.extend(metadata),
                    }
                }
            }
            Frame::Message {
                call_id,
                body,
                compressed,
                end_ok,
                end_stream,
            } => {
                let max = self.shared.limits.max_message_size;
                let window = unread_window(state.charged_requests);
                let len = body.len();
                // A streamed answer this side does not hold on a stream (dropped unread, or
                // kept by a unary call's slot, which holds one): the server counted it against
                // the answer window, so it is credited now (`answers.rs`).
                let mut credit_now = false;
                if let Some(slot) = state.calls.get_mut(call_id) {
                    if let Some(stream) = slot.stream.as_mut() {
                        if stream.inbound.is_finished() {
                            // Ended here already (refused, failed): late messages are dropped.
                            credit_now = true;
                        } else if state.answer_window && state.answers_held >= ANSWER_WINDOW {
                            // A whole window unread, and the server sent more: the driver
                            // closes the connection.
                            state.answers_overrun = true;
                            return;
                        } else if stream.inbound.queued().0 >= MAX_UNREAD_MESSAGES {
                            credit_now = true;
                            // Empty messages take no credit: only their count bounds them.
                            stream.end(Err(Status::resource_exhausted(format!(
                                "the server sent {MAX_UNREAD_MESSAGES} messages this call has \
                                 not read yet"
                            ))));
                            state.abandon_call(call_id, |buf| frame::encode_cancel(buf, call_id));
                            state.stream_ended(self.shared, call_id);
                        } else if unread_charge(stream.inbound.queued()) >= window
                            || stream.inbound.push_flagged(body, compressed, max).is_err()
                        {
                            credit_now = true;
                            stream.end(Err(Status::internal(
                                "server sent past its flow-control window",
                            )));
                            state.abandon_call(call_id, |buf| frame::encode_cancel(buf, call_id));
                            state.stream_ended(self.shared, call_id);
                        } else if state.answer_window {
                            if end_stream {
                                // A one-message answer: the server did not count it.
                                stream.uncounted = Some(len);
                            } else {
                                state.answers_held += frame::message_charge(len);
                            }
                        }
                    } else if slot.message.is_some() {
                        slot.extra_messages = true;
                        credit_now = true;
                    } else if end_ok {
                        // The whole answer in one frame (the common case): complete the call
                        // here, without looking it up again as an END.
                        let headers = std::mem::take(&mut slot.headers);
                        let mut response = Response::from_parts(headers, body, MetadataMap::new());
                        response.set_encoding(slot.encoding);
                        response.set_message_compressed(compressed);
                        complete(self.wake, slot, Ok(response));
                        return;
                    } else {
                        slot.message = Some(body);
                        slot.compressed = compressed;
                        // A streaming method called as unary: what the server streams to it
                        // is counted (no END_STREAM), and this slot holds one message at most.
                        credit_now = true;
                    }
                } else {
                    // A streamed answer (not a one-message answer, which ends its stream) to
                    // a call gone here.
                    credit_now = true;
                }
                if credit_now && !end_stream {
                    state.answer_dropped(len);
                }
                if end_ok {
                    // The server folded the call's OK end into this message (`FLAG_END_OK`).
                    self.dispatch(
                        state,
                        Frame::End {
                            call_id,
                            code: Code::Ok,
                            message: String::new(),
                            details: Bytes::new(),
                            trailers: MetadataMap::new(),
                            not_processed: false,
                            encoding: None,
                        },
                    );
                }
            }
            Frame::Oversized { call_id, length } => {
                let limit = self.shared.limits.max_message_size;
                let streaming = state.calls.get(call_id).is_some_and(|s| s.stream.is_some());
                if streaming {
                    // The server would go on streaming to a call that already failed.
                    state.abandon_call(call_id, |buf| frame::encode_cancel(buf, call_id));
                }
                self.finish(
                    state,
                    call_id,
                    Err(Status::resource_exhausted(format!(
                        "response message of {length} bytes exceeds the limit of {limit}"
                    ))),
                );
            }
            Frame::MetadataTooLarge {
                kind,
                call_id,
                size,
                ..
            } => {
                let limit = self.shared.limits.max_metadata_size;
                let why = format!("{size} bytes exceed the limit of {limit}");
                self.refuse_metadata(state, kind, call_id, &why);
            }
            Frame::ControlTooLarge {
                kind,
                call_id,
                length,
                limit,
                ..
            } => {
                // Too long to read at all (a server whose metadata limit is larger than ours):
                // skipped unread, its call alone fails.
                let metadata = self.shared.limits.max_metadata_size;
                let why = format!(
                    "in a {kind:?} frame of {length} bytes exceed the limit of {limit} \
                     (the metadata limit is {metadata} bytes)"
                );
                self.refuse_metadata(state, kind, call_id, &why);
            }
            Frame::End {
                call_id,
                code,
                message,
                details,
                trailers,
                not_processed,
                encoding,
            } => {
                // The server ended the call: what of its request has not gone out never will.
                state.abandon_call(call_id, |_| {});
                let Some(slot) = state.calls.get_mut(call_id) else {
                    return;
                };
                if let Some(stream) = slot.stream.as_mut() {
                    let end = if code == Code::Ok {
                        Ok(trailers)
                    } else {
                        let mut status =
                            end_status(code, message, details, trailers, not_processed);
                        status.set_encoding(encoding);
                        Err(status)
                    };
                    stream.end(end);
                    state.stream_ended(self.shared, call_id);
                    return;
                }
                let result = if code != Code::Ok {
                    let mut status = end_status(code, message, details, trailers, not_processed);
                    // What the server reads, as its END said with the error.
                    status.set_encoding(encoding);
                    Err(status)
                } else if slot.extra_messages {
                    Err(Status::unimplemented(
                        "server sent more than one message for a unary call",
                    ))
                } else if let Some(body) = slot.message.take() {
                    let headers = std::mem::take(&mut slot.headers);
                    let mut response = Response::from_parts(headers, body, trailers);
                    response.set_encoding(slot.encoding);
                    response.set_message_compressed(slot.compressed);
                    Ok(response)
                } else {
                    Err(Status::unimplemented(
                        "server ended a unary call without a message",
                    ))
                };
                complete(self.wake, slot, result);
            }
            Frame::Ping { payload } => {
                // Past the write buffer's high-water mark the server is not reading what we
                // send: a PONG it would not read yet is dropped, or a PING flood would grow
                // the buffer without bound.
                if state.outbox.buffered() <= HIGH_WATER {
                    frame::encode_pong(state.outbox.buf_mut(), payload);
                }
            }
            Frame::GoAway {
                last_call_id,
                code,
                message,
                retire,
            } => {
                tracing::debug!(last_call_id, %code, %message, retire, "server sent goaway");
                // The calls above the lowest id an earlier GOAWAY named were refused then, and
                // no call starts after one: only those between the two are left to refuse.
                let refused_above = state.goaway.unwrap_or(u32::MAX);
                state.goaway = Some(refused_above.min(last_call_id));
                state.retired = retire;
                if code == Code::Internal {
                    state.goaway_failure = Some(Status::internal(format!(
                        "the server closed the connection: {message}"
                    )));
                }
                self.shared.close(
                    state,
                    Status::unavailable(format!("server is draining this connection: {message}")),
                );
                // No call here has an id past the last one given out.
                let highest = state.next_id.wrapping_sub(1);
                let up_to = refused_above.min(highest);
                #[cfg(test)]
                {
                    state.goaway_looked += state.calls.steps_between(last_call_id, up_to);
                }
                // Looked up id by id, or the ring walked, whichever is shorter: a GOAWAY
                // repeated (22 bytes a frame) walked every call in flight, under the lock, each
                // time (`goaway_tests.rs`).
                let refused = state.calls.ids_between(last_call_id, up_to);
                for id in refused {
                    self.finish(
                        state,
                        id,
                        Err(Status::not_processed(format!(
                            "the server refused the call before starting it: {message}"
                        ))),
                    );
                }
            }
            Frame::Pong { payload } => {
                if let Some(pinger) = self.pinger.as_mut() {
                    if pinger.awaiting == Some(payload) {
                        pinger.awaiting = None;
                        let next = deadline_after(Instant::now(), pinger.config.interval);
                        pinger.timer.as_mut().reset(next);
                    }
                }
            }
            Frame::Window { call_id: 0, credit } => state.connection_credit(credit),
            Frame::Window { call_id, credit } => {
                let stream = state.stream_mut(call_id);
                if let Some(stream) = stream {
                    stream.outbound.credit(credit);
                }
            }
            Frame::Settings {
                capabilities,
                max_calls,
                max_metadata,
            } => {
                // The server's metadata limit (`call.rs` checks requests against it), and ours
                // in answer to its first SETTINGS that shows it reads one (`server_metadata` 0:
                // not answered yet).
                let told = self.shared.server_metadata.load(Ordering::Relaxed) != 0;
                if !told && capabilities & frame::CAP_METADATA_LIMIT != 0 {
                    let (caps, ours) = (frame::CLIENT_CAPABILITIES, self.shared.limits);
                    let buf = state.outbox.buf_mut();
                    frame::encode_settings_with_limit(buf, caps, 0, ours.max_metadata_size);
                    self.shared
                        .server_metadata
                        .store(usize::MAX, Ordering::Relaxed);
                }
                if let Some(limit) = max_metadata {
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    self.shared.server_metadata.store(limit, Ordering::Relaxed);
                }
                state.folds_request = capabilities & frame::CAP_FOLDED_REQUEST != 0;
                state.connection_window = capabilities & frame::CAP_CONNECTION_WINDOW != 0;
                // A later SETTINGS without the window: senders waiting for credit may go.
                state.resume_credit_waiters();
                state.charged_requests = capabilities & frame::CAP_CHARGED != 0;
                // It keeps what it streams under the answer window we grant (`answers.rs`).
                state.answer_window = capabilities & frame::CAP_ANSWER_WINDOW != 0;
                // Large request messages go out in pieces from now on.
                state
                    .outbox
                    .set_pieces(capabilities & frame::CAP_PIECES != 0);
                // The largest announced limit means "that many or more": no limit to keep.
                let limit = match max_calls {
                    0 => None,
                    frame::MAX_ANNOUNCED_CALLS => Some(usize::MAX),
                    n => Some(usize::from(n)),
                };
                if let Some(limit) = limit {
                    self.shared.max_calls.store(limit, Ordering::Relaxed);
                    // A later SETTINGS may raise the limit: calls waiting may go now.
                    state.wake_for_room(self.shared);
                }
            }
            // Servers do not open or cancel calls.
            Frame::Open { .. } | Frame::InvalidPath { .. } | Frame::Cancel { .. } => {}
        }
    }

    /// A second HEADERS for `call_id`: the call fails `INTERNAL` and is cancelled on the
    /// server, once (a call already ended ignores more).
    fn refuse_headers(&mut self, state: &mut State, call_id: u32) {
        let Some(slot) = state.calls.get_mut(call_id) else {
            return;
        };
        let status = Status::internal("protocol error from server: HEADERS twice for one call");
        match slot.stream.as_mut() {
            Some(stream) if !stream.inbound.is_finished() => stream.end(Err(status)),
            None if slot.done.is_none() => complete(self.wake, slot, Err(status)),
            _ => return,
        }
        if state.outbox.failed().is_none() {
            state.abandon_call(call_id, |buf| frame::encode_cancel(buf, call_id));
        }
        state.stream_ended(self.shared, call_id);
    }

    /// HEADERS or END for `call_id` whose metadata is over this client's limit (`why`, the
    /// sizes), or that is too long to read: that call fails `RESOURCE_EXHAUSTED` and, if it was
    /// still streaming, is cancelled on the server; the connection and its other calls go on.
    fn refuse_metadata(&mut self, state: &mut State, kind: FrameKind, call_id: u32, why: &str) {
        let what = match kind {
            FrameKind::Headers => "response headers",
            FrameKind::End => "response trailers",
            // Servers do not open calls.
            _ => return,
        };
        let status = Status::resource_exhausted(format!("{what} {why}"));
        let Some(slot) = state.calls.get_mut(call_id) else {
            return;
        };
        match slot.stream.as_mut() {
            Some(stream) if !stream.inbound.is_finished() => {
                stream.end(Err(status));
                // After HEADERS the server would go on streaming to a call that failed; after
                // END it has ended the call already. Either way what of the request has not
                // gone out never will (a split message ends), as for any END.
                if state.outbox.failed().is_none() {
                    let cancel = kind == FrameKind::Headers;
                    state.abandon_call(call_id, |buf| {
                        if cancel {
                            frame::encode_cancel(buf, call_id);
                        }
                    });
                }
                state.stream_ended(self.shared, call_id);
            }
            Some(_) => {}
            None => {
                complete(self.wake, slot, Err(status));
                if kind == FrameKind::End {
                    state.abandon_call(call_id, |_| {});
                }
            }
        }
    }

    fn finish(&mut self, state: &mut State, call_id: u32, result: Result<Response<Bytes>, Status>) {
        if let Some(slot) = state.calls.get_mut(call_id) {
            if let Some(stream) = slot.stream.as_mut() {
                stream.end(result.map(|response| response.into_parts().2));
                state.stream_ended(self.shared, call_id);
                return;
            }
            complete(self.wake, slot, result);
        }
    }
}

/// What one stream's unread answers charged a server that counts them as the client credits
/// them (`frame::message_charge` each), from their number and bytes (`flow::Inbound::queued`).
fn unread_charge((messages, bytes): (usize, usize)) -> usize {
    messages
        .saturating_mul(frame::MESSAGE_CHARGE)
        .saturating_add(bytes)
}

/// The [`unread_charge`] of one stream at which another message from the server breaks its
/// window.
///
/// A server that announced `CAP_CHARGED` counts each answer as its length + 64 against the
/// call's window and sends only while that count is under `STREAM_WINDOW`; the client credits
/// an answer only once it is read, so such a server never sends while a window's worth is
/// unread here (1,024 empty answers), and a message arriving then comes from a server that
/// ignores its credit. An
/// older server counts answers by their length alone while the client credits the charge too,
/// so it may run ahead of the window: for it only `flow::Inbound::push_flagged`'s own check
/// stays, a whole message limit beyond the window (`usize::MAX` here: no check of this one).
fn unread_window(charging_server: bool) -> usize {
    if charging_server {
        sockrpc_protocol::frame::STREAM_WINDOW
    } else {
        usize::MAX
    }
}

/// Completes unary call `slot` with `result` (unless it is complete already); its waker joins
/// `wake`, to be called once the lock is released.
pub(super) fn complete(
    wake: &mut Vec<Waker>,
    slot: &mut super::Slot,
    result: Result<Response<Bytes>, Status>,
) {
    if slot.done.is_none() {
        slot.done = Some(result);
        if let Some(waker) = slot.waker.take() {
            wake.push(waker);
        }
    }
}

/// The status an END carries. `not_processed` is the protocol's flag (set only by the server's
/// connection, for a call it refused unstarted), never anything read from metadata.
fn end_status(
    code: Code,
    message: String,
    details: bytes::Bytes,
    trailers: sockrpc_protocol::MetadataMap,
    not_processed: bool,
) -> Status {
    let mut status = if not_processed && code == Code::Unavailable {
        let mut status = Status::not_processed(message);
        status.set_details(details);
        status
    } else {
        Status::with_details(code, message, details)
    };
    *status.metadata_mut() = trailers;
    status
}
