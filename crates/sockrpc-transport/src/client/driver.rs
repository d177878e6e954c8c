//! The driver: the one task that reads a client connection, completes calls, fails unary calls
//! whose deadline passed (one timer for all of them), and keeps the connection honest with
//! keepalive PINGs.

use super::{Keepalive, Shared, State};
use crate::codec::DecodeError;
use crate::outbox::HIGH_WATER;
use crate::reader::FrameReader;
use crate::timer::ConnTimer;
use bytes::Bytes;
use sockrpc_protocol::frame::{self, Frame, FrameError};
use sockrpc_protocol::{Code, MetadataMap, Response, Status};
use std::{
    future::Future,
    pin::Pin,
    sync::atomic::Ordering,
    sync::Arc,
    task::{Context, Poll, Waker},
};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Reads per wake-up before the driver yields, so one busy connection cannot starve others
/// sharing its thread.
const READS_PER_POLL: usize = 16;

/// Messages one streaming call may hold unread. The window bounds their bytes, but an empty
/// message takes no credit, so a server could otherwise queue them without end; a compliant
/// server sending non-empty messages stops at the window (64 KiB) long before this.
const MAX_UNREAD_MESSAGES: usize = 2 * sockrpc_protocol::frame::STREAM_WINDOW;

/// Keepalive state: when the next PING is due, or which PONG is awaited and until when.
struct Pinger {
    config: Keepalive,
    timer: Pin<Box<Sleep>>,
    awaiting: Option<u64>,
    seq: u64,
}

/// The task that owns the read half: decodes frames and completes calls.
pub(super) struct Driver {
    shared: Arc<Shared>,
    reader: FrameReader,
    /// Wakers collected under the lock and called after it is released.
    wake: Vec<Waker>,
    pinger: Option<Pinger>,
    on_close: Option<Arc<Notify>>,
    /// Armed for the soonest unary deadline (`State::soonest_deadline`).
    deadlines: ConnTimer,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        self.shared
            .close(&mut state, Status::unavailable("connection closed"));
        drop(state);
        if let Some(notify) = &self.on_close {
            notify.notify_one();
        }
    }
}

impl Driver {
    pub(super) fn new(
        shared: Arc<Shared>,
        reader: FrameReader,
        keepalive: Option<Keepalive>,
        on_close: Option<Arc<Notify>>,
    ) -> Driver {
        Driver {
            shared,
            reader,
            wake: Vec::new(),
            pinger: keepalive.map(|config| Pinger {
                config,
                timer: Box::pin(tokio::time::sleep(config.interval)),
                awaiting: None,
                seq: 0,
            }),
            on_close,
            deadlines: ConnTimer::new(),
        }
    }

    /// Runs the keepalive timer: sends a PING when one is due, and fails the connection when a
    /// PONG is overdue. Returns false when the connection must end.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(pinger) = &mut self.pinger else {
            return true;
        };
        while pinger.timer.as_mut().poll(cx).is_ready() {
            if pinger.awaiting.is_some() {
                let status = Status::unavailable(format!(
                    "keepalive: no PONG from the server within {:?}",
                    pinger.config.timeout
                ));
                tracing::debug!(peer = ?self.shared.peer, "keepalive timeout; closing connection");
                self.fail_all(status);
                return false;
            }
            let mut state = self.shared.lock();
            let now = Instant::now();
            if state.calls.is_empty() && !pinger.config.while_idle {
                pinger.timer.as_mut().reset(now + pinger.config.interval);
                continue;
            }
            pinger.seq = pinger.seq.wrapping_add(1);
            frame::encode_ping(state.outbox.buf_mut(), pinger.seq);
            let _ = state.outbox.poll_flush(cx);
            pinger.awaiting = Some(pinger.seq);
            pinger.timer.as_mut().reset(now + pinger.config.timeout);
        }
        true
    }

    /// Fails (and cancels on the server) every unary call whose deadline has passed, and
    /// notes the soonest deadline left for the timer.
    fn expire(wake: &mut Vec<Waker>, state: &mut State, now: Instant) {
        let State {
            calls,
            outbox,
            soonest_deadline,
            ..
        } = state;
        let mut soonest = None;
        for (id, slot) in calls.iter_mut() {
            let Some(deadline) = slot.deadline else {
                continue;
            };
            if slot.done.is_some() || slot.stream.is_some() {
                continue;
            }
            if deadline <= now {
                complete(
                    wake,
                    slot,
                    Err(Status::deadline_exceeded(
                        "deadline exceeded while waiting for the server",
                    )),
                );
                if outbox.failed().is_none() {
                    frame::encode_cancel(outbox.buf_mut(), id);
                }
            } else if soonest.is_none_or(|s| deadline < s) {
                soonest = Some(deadline);
            }
        }
        *soonest_deadline = soonest;
    }

    fn dispatch(&mut self, state: &mut State, frame: Frame) {
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
                ..
            } => {
                let max = self.shared.limits.max_message_size;
                if let Some(slot) = state.calls.get_mut(call_id) {
                    if let Some(stream) = slot.stream.as_mut() {
                        if stream.inbound.is_finished() {
                            // Ended here already (refused, failed): late messages are dropped.
                        } else if stream.inbound.queued().0 >= MAX_UNREAD_MESSAGES {
                            // Empty messages take no credit: only their count bounds them.
                            stream.end(Err(Status::resource_exhausted(format!(
                                "the server sent {MAX_UNREAD_MESSAGES} messages this call has \
                                 not read yet"
                            ))));
                            frame::encode_cancel(state.outbox.buf_mut(), call_id);
                        } else if stream.inbound.push_flagged(body, compressed, max).is_err() {
                            stream.end(Err(Status::internal(
                                "server sent past its flow-control window",
                            )));
                            frame::encode_cancel(state.outbox.buf_mut(), call_id);
                        }
                    } else if slot.message.is_some() {
                        slot.extra_messages = true;
                    } else if end_ok {
                        // The whole answer in one frame (the common case): complete the call
                        // here, without looking it up again as an END.
                        let headers = std::mem::take(&mut slot.headers);
                        let mut response = Response::from_parts(headers, body, MetadataMap::new());
                        response.set_encoding(slot.encoding);
                        response.set_message_compressed(compressed);
                        complete(&mut self.wake, slot, Ok(response));
                        return;
                    } else {
                        slot.message = Some(body);
                        slot.compressed = compressed;
                    }
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
                        },
                    );
                }
            }
            Frame::Oversized { call_id, length } => {
                let limit = self.shared.limits.max_message_size;
                let streaming = state.calls.get(call_id).is_some_and(|s| s.stream.is_some());
                if streaming {
                    // The server would go on streaming to a call that already failed.
                    frame::encode_cancel(state.outbox.buf_mut(), call_id);
                }
                self.finish(
                    state,
                    call_id,
                    Err(Status::resource_exhausted(format!(
                        "response message of {length} bytes exceeds the limit of {limit}"
                    ))),
                );
            }
            Frame::End {
                call_id,
                code,
                message,
                details,
                trailers,
                not_processed,
            } => {
                let Some(slot) = state.calls.get_mut(call_id) else {
                    return;
                };
                if let Some(stream) = slot.stream.as_mut() {
                    let end = if code == Code::Ok {
                        Ok(trailers)
                    } else {
                        Err(end_status(code, message, details, trailers, not_processed))
                    };
                    stream.end(end);
                    return;
                }
                let result = if code != Code::Ok {
                    Err(end_status(code, message, details, trailers, not_processed))
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
                complete(&mut self.wake, slot, result);
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
            } => {
                tracing::debug!(last_call_id, %code, %message, "server sent goaway");
                state.goaway = Some(last_call_id);
                self.shared.close(
                    state,
                    Status::unavailable(format!("server is draining this connection: {message}")),
                );
                let refused: Vec<u32> = state.calls.ids().filter(|id| *id > last_call_id).collect();
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
                if let Some(pinger) = &mut self.pinger {
                    if pinger.awaiting == Some(payload) {
                        pinger.awaiting = None;
                        let next = Instant::now() + pinger.config.interval;
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
            } => {
                state.folds_request = capabilities & frame::CAP_FOLDED_REQUEST != 0;
                state.connection_window = capabilities & frame::CAP_CONNECTION_WINDOW != 0;
                // The largest announced limit means "that many or more": no limit to keep.
                let limit = match max_calls {
                    0 => None,
                    frame::MAX_ANNOUNCED_CALLS => Some(usize::MAX),
                    n => Some(usize::from(n)),
                };
                if let Some(limit) = limit {
                    self.shared.max_calls.store(limit, Ordering::Relaxed);
                    // A later SETTINGS may raise the limit: calls waiting may go now.
                    state.wake_for_room(&self.shared);
                }
            }
            // Servers do not open or cancel calls.
            Frame::Open { .. } | Frame::Cancel { .. } => {}
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
            None if slot.done.is_none() => complete(&mut self.wake, slot, Err(status)),
            _ => return,
        }
        if state.outbox.failed().is_none() {
            frame::encode_cancel(state.outbox.buf_mut(), call_id);
        }
    }

    fn finish(&mut self, state: &mut State, call_id: u32, result: Result<Response<Bytes>, Status>) {
        if let Some(slot) = state.calls.get_mut(call_id) {
            if let Some(stream) = slot.stream.as_mut() {
                stream.end(result.map(|response| response.into_parts().2));
                return;
            }
            complete(&mut self.wake, slot, result);
        }
    }

    /// Fails every call and refuses new ones.
    fn fail_all(&mut self, status: Status) {
        self.fail_all_unsent(status, u64::MAX);
    }

    /// [`fail_all`](Self::fail_all) after a failed write: a unary call whose OPEN starts at or
    /// past byte `written` never reached the socket, so it fails "not processed" and may be
    /// sent again elsewhere (the server just closed, say, and its GOAWAY was lost to a reset).
    fn fail_all_unsent(&mut self, status: Status, written: u64) {
        let unsent =
            Status::not_processed(format!("{}; the call was never sent", status.message()));
        let mut state = self.shared.lock();
        self.shared.close(&mut state, status.clone());
        for (_, slot) in state.calls.iter_mut() {
            if let Some(stream) = slot.stream.as_mut() {
                stream.end(Err(status.clone()));
                continue;
            }
            if slot.done.is_none() {
                let never_sent = slot.sent_from.is_some_and(|from| from >= written);
                let status = if never_sent { &unsent } else { &status };
                complete(&mut self.wake, slot, Err(status.clone()));
            }
        }
        drop(state);
        self.wake.drain(..).for_each(Waker::wake);
    }

    /// Dispatches every whole frame the reader holds; stops at the first the decoder refuses.
    fn dispatch_buffered(&mut self, state: &mut State) -> Result<(), DecodeError> {
        while let Some(frame) = self.reader.next_frame()? {
            self.dispatch(state, frame);
        }
        Ok(())
    }

    /// After a failed write: the frames the server sent before it closed, still in the socket's
    /// receive queue (Linux hands them out before the reset's error). Its GOAWAY names the
    /// calls it never started: a call written just before the server closed an idle
    /// connection is then "not processed" and goes elsewhere, rather than failing as one the
    /// server may have run.
    fn dispatch_received(&mut self, cx: &mut Context<'_>) {
        for _ in 0..READS_PER_POLL {
            match self.reader.poll_fill(cx) {
                Poll::Ready(Ok(n)) if n > 0 => {}
                _ => return,
            }
            let shared = Arc::clone(&self.shared);
            let mut state = shared.lock();
            if self.dispatch_buffered(&mut state).is_err() {
                // The connection fails anyway; a bad frame ends what it can tell.
                return;
            }
            self.reader.settle();
        }
    }

    /// The status a read error fails the connection's calls with. `first` is what the reader
    /// holds unread: on a bad preface, the peer's first bytes.
    fn read_error(err: DecodeError, first: &[u8]) -> Status {
        match err {
            DecodeError::Io(err) => Status::from(err),
            // Not a sockrpc server (an HTTP server, a TLS port, another version): no server
            // broke the protocol, there is none to reach there, as when nothing listens.
            DecodeError::Frame(FrameError::BadPreface) => {
                let sent = if first.starts_with(b"HTTP/") {
                    "an HTTP/1 response"
                } else if matches!(first.first(), Some(0x15 | 0x16)) {
                    "a TLS record (a TLS port? connect with tls://)"
                } else {
                    "bytes that are not a sockrpc preface"
                };
                Status::unavailable(format!("the server does not speak sockrpc: it sent {sent}"))
            }
            DecodeError::Frame(err @ FrameError::UnsupportedVersion(_)) => {
                Status::unavailable(format!("the server speaks another sockrpc: {err}"))
            }
            DecodeError::Frame(err) => {
                Status::internal(format!("protocol error from server: {err}"))
            }
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        {
            let mut state = this.shared.lock();
            state.outbox.set_driver(cx.waker());
            // Bounded: after an expiry the soonest deadline left is in the future.
            for _ in 0..4 {
                match this.deadlines.poll_at(state.soonest_deadline, cx) {
                    Poll::Ready(()) => Self::expire(&mut this.wake, &mut state, Instant::now()),
                    Poll::Pending => break,
                }
            }
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                let written = state.outbox.written();
                drop(state);
                this.dispatch_received(cx);
                this.fail_all_unsent(
                    Status::unavailable(format!("connection write failed: {err}")),
                    written,
                );
                return Poll::Ready(());
            }
            // Calls that waited for the write buffer to drain below its high-water mark.
            state.wake_for_room(&this.shared);
            if state.abandoned && state.calls.is_empty() {
                // Nobody can start another call: say goodbye with a FIN and stop.
                let _ = state.outbox.poll_shutdown(cx);
                return Poll::Ready(());
            }
        }
        // Callers whose deadline passed.
        this.wake.drain(..).for_each(Waker::wake);
        if !this.poll_keepalive(cx) {
            return Poll::Ready(());
        }
        for _ in 0..READS_PER_POLL {
            let n = match this.reader.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => {
                    this.fail_all(Status::from(err));
                    return Poll::Ready(());
                }
            };
            if n == 0 {
                this.fail_all(Status::unavailable("connection closed by the server"));
                return Poll::Ready(());
            }
            let shared = Arc::clone(&this.shared);
            let mut state = shared.lock();
            if let Err(err) = this.dispatch_buffered(&mut state) {
                tracing::warn!(peer = ?shared.peer, error = %err, "closing connection");
                drop(state);
                let status = Self::read_error(err, this.reader.buffered());
                this.fail_all(status);
                return Poll::Ready(());
            }
            this.reader.settle();
            if state.outbox.buffered() > 0 {
                let _ = state.outbox.poll_flush(cx);
                state.wake_for_room(&shared);
            }
            if !this.shared.handshaken.load(Ordering::Relaxed) && this.reader.past_preface() {
                this.shared.handshaken.store(true, Ordering::Release);
                this.shared.handshake.notify_waiters();
            }
            drop(state);
            this.wake.drain(..).for_each(Waker::wake);
        }
        // Still readable after many reads: let other tasks run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Completes unary call `slot` with `result` (unless it is complete already); its waker joins
/// `wake`, to be called once the lock is released.
fn complete(
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
