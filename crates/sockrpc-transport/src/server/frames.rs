//! What a server connection does with each frame a client sends, and how it takes the whole
//! frames of its read buffer in turn (`take_frames`, which stops where reading must pause).
//!
//! An `Err` closes the connection with a GOAWAY that carries the reason: the peer broke the
//! protocol (a reused call id, a MESSAGE after its own half-close, more than its window, too
//! many PINGs). Anything that concerns one call only ends that call with a status.

use super::conn::{read_failed, Connection};
use super::open::{Opened, PENDING_OPEN_BUDGET};
use super::respond::{CallReceiver, ServerStream, Shared};
use crate::codec::DecodeError;
use crate::dispatch::{Dispatch, RequestBody};
use crate::log_limit::{warn_limited, Kind};
use crate::outbox::HIGH_WATER;
use sockrpc_protocol::frame::{self, Frame, FrameKind};
use sockrpc_protocol::{Code, MetadataMap, Status};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::Instant;

impl<D: Dispatch> Connection<D> {
    /// Hands each whole frame in the read buffer to [`on_frame`](Self::on_frame). Stops early
    /// — `Ok(true)`, the rest left in the read buffer — once the write buffer holds more than
    /// [`HIGH_WATER`]: one read may carry hundreds of calls whose answers are each up to the
    /// message limit, and a client that does not read them must not make the server buffer them
    /// all; and while cancelled handlers not yet gone fill the slack (`aborted.rs`). `Err`: the
    /// connection was closed (a protocol error, a failed read).
    pub(super) fn take_frames(&mut self, cx: &mut Context<'_>) -> Result<bool, Poll<()>> {
        while !self.aborted_in_the_way() {
            match self.reader.next_frame() {
                Ok(Some(frame)) => {
                    if let Some(ticket) = self.awaiting.take() {
                        // Past the preface: established before this frame can start a call, so
                        // the accept loop cannot evict a connection with calls under way
                        // (`handshakes.rs`; `update_deadlines` looked only after the batch).
                        // Evicted just before: this frame starts nothing; the client is told.
                        if !ticket.establish() {
                            return Err(self.close_evicted(cx));
                        }
                    }
                    if let Err((code, reason)) = self.on_frame(cx, frame) {
                        warn_limited!(self.config.log_limit, Kind::ProtocolError,
                            { peer = ?self.conn_info.peer, %reason, },
                            "closing connection: protocol error");
                        return Err(self.close(cx, Some((code, reason))));
                    }
                    if self.outbox_full.replace(false)
                        && self.shared.lock().outbox.buffered() > HIGH_WATER
                    {
                        return Ok(true);
                    }
                }
                Ok(None) => {
                    self.credit_skipped_pieces();
                    return Ok(false);
                }
                Err(DecodeError::Frame(err)) => {
                    warn_limited!(self.config.log_limit, Kind::ProtocolError,
                        { peer = ?self.conn_info.peer, error = %err, },
                        "closing connection: protocol error");
                    // An OPEN refused for its body (malformed: lengths that do not add up, say)
                    // was received: the GOAWAY names it, so that its client fails it with this
                    // reason rather than taking it for a call never processed and sending it
                    // again, to be refused again with every call on that connection. Later
                    // calls stay above the GOAWAY's id: those may go elsewhere.
                    if let Some((FrameKind::Open, id)) = self.reader.refused_frame() {
                        self.last_call_id = self.last_call_id.max(id);
                    }
                    return Err(self.close(cx, Some((Code::Internal, err.to_string()))));
                }
                Err(DecodeError::Io(err)) => {
                    read_failed(&self.config.log_limit, self.conn_info.peer, &err);
                    return Err(self.close(cx, None));
                }
            }
        }
        Ok(true)
    }

    /// Handles one frame; an error closes the connection.
    pub(super) fn on_frame(
        &mut self,
        cx: &mut Context<'_>,
        frame: Frame,
    ) -> Result<(), (Code, String)> {
        match frame {
            Frame::Open {
                call_id,
                timeout,
                path,
                metadata,
                end_stream,
                streaming,
                reissue,
                encoding,
                fold_end,
                message,
                message_compressed,
                charged,
            } => {
                self.take_call_id(call_id, charged)?;
                let folded = message.is_some();
                let timeout = super::config::cap_timeout(timeout, self.config.timeout);
                let busy = self.at_call_limit();
                if self.draining {
                    self.refuse(call_id);
                } else if busy {
                    self.answer(
                        call_id,
                        Err(Status::resource_exhausted(format!(
                            "too many calls in flight on this connection (limit {})",
                            self.config.max_concurrent_calls
                        ))),
                    );
                } else if self.past_shed_limit() {
                    let limit = self.config.shed_past_calls.unwrap_or_default();
                    self.answer(
                        call_id,
                        Err(Status::resource_exhausted(format!(
                            "server is overloaded: {limit} calls in flight on this connection \
                             (load shedding)"
                        ))),
                    );
                } else if let Some(message) = message {
                    // The request message came folded into the OPEN (`FLAG_MESSAGE`): the call
                    // starts now, as when its MESSAGE follows, and never waits in `opened`.
                    let max = self.config.limits.max_message_size;
                    if message.len() > max {
                        self.answer(
                            call_id,
                            Err(Status::resource_exhausted(format!(
                                "request message of {} bytes exceeds the limit of {max}",
                                message.len()
                            ))),
                        );
                    } else {
                        let mut opened = Opened::new(path, metadata, timeout, reissue);
                        opened.encoding = encoding;
                        opened.fold_end = fold_end;
                        opened.compressed = message_compressed;
                        self.dispatch_call(cx, call_id, opened, RequestBody::Once(message));
                    }
                } else if end_stream && !streaming {
                    self.answer(
                        call_id,
                        Err(Status::unimplemented(format!(
                            "{path} is unary and needs exactly one request message; none was sent"
                        ))),
                    );
                } else if !streaming && self.opened.held() > PENDING_OPEN_BUDGET {
                    // Unary calls waiting for their request message hold too much already
                    // (`open.rs`): a client that sends each MESSAGE after its OPEN never gets here.
                    self.answer(
                        call_id,
                        Err(Status::resource_exhausted(format!(
                            "calls waiting for their request message on this connection hold over {PENDING_OPEN_BUDGET} bytes"
                        ))),
                    );
                } else if streaming && self.running_over_budget() {
                    // A streaming call's handler holds its path and metadata for as long as it
                    // runs (`call.rs` counts them): 4,000 streams of 455 tiny entries each held
                    // 151 MiB of one connection, uncounted, from 7 MiB on the wire.
                    let budget = self.shared.limits.max_running_requests_size;
                    self.answer(
                        call_id,
                        Err(Status::resource_exhausted(format!(
                            "calls running on this connection hold over {budget} bytes of requests"
                        ))),
                    );
                } else {
                    let mut opened = Opened::new(path, metadata, timeout, reissue);
                    opened.encoding = encoding;
                    opened.fold_end = fold_end;
                    if streaming {
                        self.open_stream(cx, call_id, opened, end_stream);
                    } else {
                        self.opened.insert(call_id, opened);
                        return Ok(());
                    }
                }
                // Refused before its message came (draining, the call limit, the budget): the
                // message may still come, and the client never counted it.
                if !streaming && !end_stream && !folded {
                    self.uncounted.note(call_id);
                }
            }
            Frame::Message {
                call_id,
                body,
                end_stream,
                compressed,
                end_ok,
            } => {
                if end_ok {
                    return Err((
                        Code::Internal,
                        format!("call {call_id}: END_OK is a server's flag, sent by a client"),
                    ));
                }
                if let Some(mut opened) = self.opened.remove(&call_id) {
                    opened.compressed = compressed;
                    self.dispatch_call(cx, call_id, opened, RequestBody::Once(body));
                    return Ok(());
                }
                if self.uncounted.take(call_id) {
                    // The late message of a unary call ended here: never counted, no credit.
                    return Ok(());
                }
                let max = self.config.limits.max_message_size;
                let mut state = self.shared.lock();
                if state.half_closed(call_id) {
                    return Err((
                        Code::Internal,
                        format!("call {call_id} sent a MESSAGE after its half-close"),
                    ));
                }
                // A call that has ended (answered, cancelled) drops its late messages, as the
                // client may not know yet.
                if state
                    .queue_message(call_id, body, compressed, end_stream, max)
                    .is_err()
                {
                    return Err((
                        Code::Internal,
                        format!("call {call_id} sent past its flow-control window"),
                    ));
                }
            }
            Frame::End { call_id, .. } => {
                // From a client, END is its half-close: no more request messages. A unary call
                // still waiting for its one message will never get it: answered now, as an
                // OPEN with END_STREAM is, rather than held until it expires.
                if let Some(opened) = self.opened.remove(&call_id) {
                    self.answer(
                        call_id,
                        Err(Status::unimplemented(format!(
                            "{} is unary and needs exactly one request message; none was sent",
                            opened.path
                        ))),
                    );
                    return Ok(());
                }
                if let Some(stream) = self.shared.lock().streams.get_mut(&call_id) {
                    stream.inbound.finish(Ok(MetadataMap::new()));
                }
            }
            Frame::Window { call_id: 0, credit } => {
                // Answer credit from a client that grants it (`answer_window.rs`).
                self.shared.lock().answer_credit(credit);
            }
            Frame::Window { call_id, credit } => {
                if let Some(stream) = self.shared.lock().streams.get_mut(&call_id) {
                    stream.outbound.credit(credit);
                }
            }
            Frame::Oversized { call_id, length } => {
                let limit = self.config.limits.max_message_size;
                let status = Status::resource_exhausted(format!(
                    "request message of {length} bytes exceeds the limit of {limit}"
                ));
                // The pieces skipped after the previous report were that message's.
                self.credit_skipped_pieces();
                let waiting = self.opened.remove(&call_id).is_some();
                let unary = waiting || self.uncounted.take(call_id);
                self.credit_skipped = !unary;
                if unary {
                    // Never counted by the client: no credit; answered if still waiting.
                    if waiting {
                        self.answer(call_id, Err(status));
                    }
                } else {
                    // A streamed request: the message is gone, so the call cannot go on. It
                    // ends with the same code a unary call gets; the connection lives on. The
                    // client counted it against the connection window: credited back, as any
                    // message dropped unread (`queue_message`), or a few wedge its streams.
                    let mut state = self.shared.lock();
                    state.grant(frame::message_charge(length as usize));
                    if state.streams.contains_key(&call_id) {
                        Shared::cancel_stream(&mut state, call_id);
                        let running = state.running.remove(&call_id);
                        if running.is_some() && state.running.is_empty() {
                            // As when a call finishes: the idle clock starts from here.
                            state.went_idle += 1;
                        }
                        if let Some(Some(handle)) = running {
                            self.aborted.abort(handle);
                        }
                        let limits = &self.config.limits;
                        state.abandon_answer(call_id, |buf| {
                            super::respond::encode_status(buf, call_id, &status, limits)
                        });
                        drop(state);
                        // Dropped without the lock: its drop may take it.
                        self.locals.remove(call_id);
                    }
                }
            }
            Frame::Cancel { call_id } => {
                if self.opened.remove(&call_id).is_some() {
                    // Its message may still come (an empty last piece of one it gave up).
                    self.uncounted.note(call_id);
                }
                let mut state = self.shared.lock();
                Shared::cancel_stream(&mut state, call_id);
                // What of its answer has not gone out never will (its split message ends).
                state.abandon_answer(call_id, |_| {});
                let running = state.running.remove(&call_id);
                if running.is_some() && state.running.is_empty() {
                    // As when a call finishes: a draining connection may now close, an idle
                    // one starts its clock.
                    state.went_idle += 1;
                }
                drop(state);
                match running {
                    // Its slot is kept until the task is gone (`aborted.rs`).
                    Some(Some(handle)) => self.aborted.abort(handle),
                    // Polled on this task: dropped here, without the lock its drop may take.
                    Some(None) => {
                        self.locals.remove(call_id);
                    }
                    None => {}
                }
            }
            Frame::MetadataTooLarge {
                kind: FrameKind::Open,
                call_id,
                flags,
                size,
            } => {
                // A well-formed OPEN whose metadata is over our limit: received and refused,
                // its call alone (as HTTP/2 makes a header list too large a stream error). Its
                // id is used up; its later MESSAGEs are dropped as those of an ended call.
                self.take_call_id(call_id, flags & frame::FLAG_CHARGED != 0)?;
                self.note_if_unary(call_id, flags);
                let limit = self.config.limits.max_metadata_size;
                self.answer(
                    call_id,
                    Err(Status::resource_exhausted(format!(
                        "request metadata of {size} bytes exceeds the limit of {limit}"
                    ))),
                );
            }
            Frame::InvalidPath {
                call_id,
                flags,
                path,
            } => {
                // A well-formed OPEN for a path that names no method: refused, its call alone,
                // as grpc-go answers a malformed method name on its stream (it is what the
                // caller asked for, not a framing error). Its id is used up, as above.
                self.take_call_id(call_id, flags & frame::FLAG_CHARGED != 0)?;
                self.note_if_unary(call_id, flags);
                self.answer(
                    call_id,
                    Err(Status::unimplemented(format!(
                        "malformed method path {path:?}: expected /package.Service/Method"
                    ))),
                );
            }
            Frame::ControlTooLarge {
                kind: FrameKind::Open,
                call_id,
                flags,
                length,
                limit,
            } => {
                // An OPEN too long for our limits, skipped unread (a client whose metadata
                // limit is larger than ours, which sent it before our SETTINGS told it ours):
                // received and refused, its call alone, as an OPEN whose metadata is over the
                // limit is above, and for the same reason in the same words as that one's and
                // the client's own refusal once it knows our limit (`client/call.rs`). Its id
                // is used up, so a later GOAWAY counts it as received and the client does not
                // send it again.
                self.take_call_id(call_id, flags & frame::FLAG_CHARGED != 0)?;
                self.note_if_unary(call_id, flags);
                let metadata = self.config.limits.max_metadata_size;
                self.answer(
                    call_id,
                    Err(Status::resource_exhausted(format!(
                        "request metadata exceeds the limit of {metadata}: its Open frame of \
                         {length} bytes exceeds the server's limit of {limit}"
                    ))),
                );
            }
            Frame::MetadataTooLarge {
                kind: FrameKind::End,
                call_id,
                ..
            }
            | Frame::ControlTooLarge {
                kind: FrameKind::End,
                call_id,
                ..
            } => {
                // A client's END is its half-close; trailers it should not have sent change
                // nothing, too large or not.
                return self.on_frame(
                    cx,
                    Frame::End {
                        call_id,
                        code: Code::Ok,
                        message: String::new(),
                        details: bytes::Bytes::new(),
                        trailers: MetadataMap::new(),
                        not_processed: false,
                        encoding: None,
                    },
                );
            }
            Frame::Ping { payload } => self.on_ping(payload)?,
            Frame::Pong { payload } if self.awaiting_pong == Some(payload) => {
                // The client is alive: the next keepalive PING is an interval away.
                self.awaiting_pong = None;
                self.timers.due.keepalive = None;
            }
            Frame::Settings {
                capabilities,
                max_metadata,
                ..
            } => {
                // What the client reads beyond version 1's base: with CAP_PIECES, large
                // answers go out in pieces that other calls' frames can pass.
                let pieces = capabilities & frame::CAP_PIECES != 0;
                let mut state = self.shared.lock();
                state.outbox.set_pieces(pieces);
                // It grants credit for the answers we stream (`answer_window.rs`).
                if capabilities & frame::CAP_ANSWER_WINDOW != 0 {
                    state.answer_window = true;
                }
                // Its metadata limit, and ours in answer (`announced.rs`).
                let ours = (
                    self.config.max_concurrent_calls,
                    self.config.limits.max_metadata_size,
                );
                super::announced::on_settings(&mut state, capabilities, max_metadata, ours);
            }
            // A client's GOAWAY, HEADERS or stray PONG needs no action from the server.
            _ => {}
        }
        Ok(())
    }

    /// A new OPEN's call id: above every id before it (else a protocol error), and from now on
    /// the last one seen. `charged`: the OPEN had `FLAG_CHARGED`.
    fn take_call_id(&mut self, call_id: u32, charged: bool) -> Result<(), (Code, String)> {
        if charged {
            // The client credits what it is sent on streams with each message's
            // charge: count it so, and empty answers are paced too.
            self.shared.lock().charge_answers = true;
        }
        if call_id <= self.last_call_id {
            return Err((
                Code::Internal,
                format!(
                    "call id {call_id} reused or out of order (last was {})",
                    self.last_call_id
                ),
            ));
        }
        self.last_call_id = call_id;
        Ok(())
    }

    /// Starts a call whose client streams its request: the handler starts now and reads the
    /// messages as they arrive.
    fn open_stream(
        &mut self,
        cx: &mut Context<'_>,
        call_id: u32,
        mut opened: Opened,
        end_stream: bool,
    ) {
        // The handler holds the request's metadata for as long as the stream runs.
        opened.unshare();
        let unnamed = opened.encoding.is_none_or(|fields| fields.send == 0);
        let mut stream = ServerStream::default();
        if end_stream {
            stream.inbound.finish(Ok(MetadataMap::new()));
        }
        let mut state = self.shared.lock();
        if state.charge_answers {
            // The client opened it with FLAG_CHARGED and we announced CAP_CHARGED: it counts
            // each request as its charge, so that is what consuming one gives back.
            stream.inbound.credit_charges();
        }
        state.streams.insert(call_id, stream);
        drop(state);
        let body = RequestBody::Stream(CallReceiver {
            shared: Arc::clone(&self.shared),
            call_id,
            ended: false,
            unnamed,
        });
        self.dispatch_call(cx, call_id, opened, body);
    }

    /// gRPC's keepalive enforcement: a PING too soon after the last one, or with no call in
    /// flight when that is not permitted, is a strike; data the server sent since the last
    /// PING clears them (as gRPC resets on data it sends, not on calls the peer opens).
    fn on_ping(&mut self, payload: u64) -> Result<(), (Code, String)> {
        let policy = self.config.ping_policy;
        let now = Instant::now();
        let idle = self.in_flight() == 0;
        let mut state = self.shared.lock();
        if state.answers_sent != self.answers_at_last_ping {
            self.answers_at_last_ping = state.answers_sent;
            self.ping_strikes = 0;
        }
        let too_soon = self
            .last_ping
            .is_some_and(|last| now.duration_since(last) < policy.min_interval);
        self.last_ping = Some(now);
        if too_soon || (idle && !policy.permit_without_calls) {
            self.ping_strikes += 1;
            if self.ping_strikes > policy.max_strikes {
                return Err((Code::ResourceExhausted, "too_many_pings".to_owned()));
            }
        }
        frame::encode_pong(state.outbox.buf_mut(), payload);
        Ok(())
    }
}

impl<D> Connection<D> {
    /// Notes a refused OPEN with `flags` whose request message may still come uncounted: a
    /// unary one (no `STREAM`) with neither `END_STREAM` nor a folded `MESSAGE`.
    fn note_if_unary(&mut self, call_id: u32, flags: u8) {
        if flags & (frame::FLAG_STREAM | frame::FLAG_END_STREAM | frame::FLAG_MESSAGE) == 0 {
            self.uncounted.note(call_id);
        }
    }

    /// Credits the connection window with the pieces of a stream's split message skipped
    /// unreported since the last look (the decoder reports only the piece that took the
    /// message over the limit): the client counted them, and without this a few such messages
    /// wedge every stream on the connection.
    pub(super) fn credit_skipped_pieces(&mut self) {
        let skipped = self.reader.take_skipped();
        if skipped > 0 && self.credit_skipped {
            let skipped = usize::try_from(skipped).unwrap_or(usize::MAX);
            self.shared.lock().grant(skipped);
        }
    }
}
