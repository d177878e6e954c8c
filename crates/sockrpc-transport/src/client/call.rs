//! A unary call's future: encode and send, wait for the driver to complete it, cancel on drop.

use super::room::{deadline_passed, unsent_status, ROOM_DEADLINE};
use super::{ClientConnection, Shared};
// The server then works on the first part of a batch while the rest is still being encoded
// here, so the two sides overlap instead of taking turns (measured: 502 k → ~970 k calls/s with
// 64 in flight on one connection; a whole batch of 64 in one write was the slow case).
use crate::outbox::EARLY_FLUSH;
use bytes::Bytes;
use pin_project_lite::pin_project;
use sockrpc_protocol::frame;
use sockrpc_protocol::{Limits, MetadataMap, MethodPath, Request, Response, Status};
use std::{
    future::Future,
    pin::Pin,
    sync::atomic::Ordering,
    task::{ready, Context, Poll},
    time::Duration,
};
use tokio::time::{Instant, Sleep};

/// Where a call is. Small on purpose: the request stays in its own field from start to end (it
/// is kept in case the server refuses the call unstarted), so no state change moves it.
#[derive(Clone, Copy)]
enum CallState {
    Start,
    /// Not sent: the connection is at the server's limit of calls in flight, and the call
    /// waits in its room queue (`room.rs`) with this ticket.
    Queued {
        ticket: u64,
    },
    Waiting {
        id: u32,
    },
    /// Refused unstarted: the request is handed back for a retry elsewhere.
    Unsent,
    Done,
}

pin_project! {
    /// The answer to a unary call. Dropping it before it completes cancels the call on the
    /// server (a CANCEL frame), which stops the handler.
    pub struct ResponseFuture {
        conn: ClientConnection,
        state: CallState,
        request: Option<(MethodPath, Request<Bytes>)>,
        // When the call gives up: the connection's driver fails it then.
        deadline: Option<Instant>,
        // The UDP call this re-issues over the stream (the OPEN's FLAG_REISSUE field).
        reissue: Option<(u64, u32)>,
        // The deadline's timer while the call waits for room (no driver watches it then).
        room_timer: Option<Pin<Box<Sleep>>>,
    }

    impl PinnedDrop for ResponseFuture {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            match *this.state {
                CallState::Waiting { id } => {
                    let shared = this.conn.shared();
                    let mut state = shared.lock();
                    if let Some(slot) = state.remove_call(shared, id) {
                        if slot.done.is_none() && state.outbox.failed().is_none() {
                            state.outbox.abandon(id, |buf| frame::encode_cancel(buf, id));
                            state.outbox.wake_driver();
                        }
                    }
                }
                CallState::Queued { ticket } => leave_queue(this.conn.shared(), ticket),
                _ => {}
            }
        }
    }
}

impl ResponseFuture {
    /// After this future failed with a status for which
    /// [`Status::is_not_processed`](sockrpc_protocol::Status::is_not_processed) holds: the path
    /// and request, to send again on another connection.
    pub fn take_unsent(self: Pin<&mut Self>) -> Option<(MethodPath, Request<Bytes>)> {
        let this = self.project();
        match this.state {
            CallState::Unsent => this.request.take(),
            _ => None,
        }
    }

    /// When the call gives up waiting (the request's fixed deadline, else its timeout counted
    /// from when this future was made): what a retry of it elsewhere must still honour.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn new(conn: ClientConnection, path: MethodPath, request: Request<Bytes>) -> Self {
        // A deadline the caller fixed (before encoding) stands; else the timeout counts from now.
        let deadline = request
            .deadline()
            .or_else(|| request.timeout().map(|t| Instant::now() + t));
        ResponseFuture {
            conn,
            state: CallState::Start,
            request: Some((path, request)),
            deadline,
            reissue: None,
            room_timer: None,
        }
    }

    pub(super) fn reissue(mut self, reissue: (u64, u32)) -> Self {
        self.reissue = Some(reissue);
        self
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// What [`start_call`] did.
enum Started {
    /// Sent, with this id.
    Sent(u32),
    /// Queued for room under the server's limit, with this ticket.
    Queued(u64),
}

/// Checks a request against this side's limits before anything of it is sent: its path, its
/// metadata and (when known) its message; and its metadata against the limit the server
/// announced in its SETTINGS, if it did (as HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`: the server
/// would refuse it). A refusal is marked ([`Status::refused_before_sending`]): another attempt
/// would meet it again.
pub(super) fn check_request(
    path: Option<&MethodPath>,
    metadata: &MetadataMap,
    message: Option<&Bytes>,
    shared: &Shared,
) -> Result<(), Status> {
    let limits = &shared.limits;
    if let Some(path) = path {
        if !path.is_valid() {
            // A server would refuse it `UNIMPLEMENTED` (`Frame::InvalidPath`): so does this side,
            // without sending what other servers might read as a framing error.
            return Err(Status::unimplemented(format!(
                "malformed method path {:?}: expected /package.Service/Method; not sent",
                path.as_str()
            ))
            .refused_before_sending());
        }
        frame::check_path(path)
            .map_err(|why| Status::invalid_argument(why).refused_before_sending())?;
    }
    if let Some(message) = message {
        check_message(message, limits)?;
    }
    if metadata.is_empty() {
        // Nearly every call: nothing to check, and an empty block is under any limit.
        return Ok(());
    }
    frame::check_metadata(metadata, limits)
        .map_err(|why| Status::resource_exhausted(why).refused_before_sending())?;
    // 0: not known yet; `usize::MAX`: none announced.
    let announced = shared.server_metadata.load(Ordering::Relaxed);
    let size = frame::metadata_charge(metadata);
    if announced != 0 && size > announced {
        return Err(Status::resource_exhausted(format!(
            "request metadata of {size} bytes exceeds the limit of {announced} the server \
             announced; not sent"
        ))
        .refused_before_sending());
    }
    Ok(())
}

/// Refuses a call whose deadline has already passed (no time left) before anything of it is
/// sent, as gRPC clients do: on the wire it would read as a deadline of one microsecond (0
/// means none), and a quick handler would still run and answer it.
pub(super) fn check_timeout(timeout: Option<Duration>) -> Result<(), Status> {
    if timeout.is_some_and(|left| left.is_zero()) {
        return Err(Status::deadline_exceeded(
            "deadline exceeded before the call was sent",
        ));
    }
    Ok(())
}

/// Checks one request message against this side's sending limit.
#[inline]
pub(super) fn check_message(message: &Bytes, limits: &Limits) -> Result<(), Status> {
    if message.len() > limits.send_limit() {
        return Err(Status::resource_exhausted(format!(
            "request message of {} bytes exceeds the limit of {}",
            message.len(),
            limits.send_limit()
        ))
        .refused_before_sending());
    }
    Ok(())
}

/// A queued call gives up: it leaves the queue, and room kept for it goes to the next (and
/// the driver of a closed connection it kept open hears that it may end).
pub(super) fn leave_queue(shared: &Shared, ticket: u64) {
    let mut state = shared.lock();
    state.room.leave(ticket);
    state.wake_for_room(shared);
    state.note_waiting(shared);
}

fn start_call(
    shared: &Shared,
    cx: &mut Context<'_>,
    call: (&MethodPath, &Request<Bytes>),
    reissue: Option<(u64, u32)>,
    deadline: Option<Instant>,
    queued: Option<u64>,
) -> Result<Started, Status> {
    let (path, request) = call;
    let (metadata, message) = (request.metadata(), request.get_ref());
    if let Err(status) = check_request(Some(path), metadata, Some(message), shared) {
        // Checked again on each look: a SETTINGS that came while the call waited may announce
        // a metadata limit it is over. It ends here, unsent, and never looks again: its place
        // in the queue, or the room kept for it once woken, goes to the next (kept, that room
        // was handed to no one for good, and a graceful close never ended).
        if let Some(ticket) = queued {
            leave_queue(shared, ticket);
        }
        return Err(status);
    }
    let mut state = shared.lock();
    // A queued call polled again either still waits, or was woken and holds room kept for it.
    let held = match queued {
        Some(ticket) if !state.room.come_back(ticket, cx.waker()) => {
            if state.closed.is_none() || state.room.is_draining() {
                return Ok(Started::Queued(ticket));
            }
            state.room.leave(ticket);
            state.note_waiting(shared);
            false
        }
        Some(_) => true,
        None => false,
    };
    let started = send(shared, &mut state, cx, call, reissue, deadline, queued);
    if held && !matches!(started, Ok(Started::Sent(_))) {
        // The room kept for this call went unused: the next waiter's.
        state.wake_for_room(shared);
    }
    started
}

/// [`start_call`] under the connection's lock: queue the call, or encode it and send it.
fn send(
    shared: &Shared,
    state: &mut super::State,
    cx: &mut Context<'_>,
    (path, request): (&MethodPath, &Request<Bytes>),
    reissue: Option<(u64, u32)>,
    deadline: Option<Instant>,
    queued: Option<u64>,
) -> Result<Started, Status> {
    let (metadata, message) = (request.metadata(), request.get_ref());
    // A call queued before a graceful close was started: it drains (`room.rs`).
    let draining = queued.is_some() && state.room.is_draining();
    if let Some(status) = state.closed.as_ref().filter(|_| !draining) {
        // Nothing was sent: safe to send on another connection.
        return Err(unsent_status(state, status));
    }
    let timeout = match (queued, deadline) {
        // As an HTTP/2 client holds a stream back at the peer's stream limit: the server would
        // refuse this call, so it waits, unsent, for one in flight to end; a new call queues
        // behind those already waiting, a woken one takes the room kept for it (unless the
        // limit fell meanwhile: then it goes back to its place in the queue).
        (None, _) if state.at_limit(shared) || !state.room.is_empty() => {
            let ticket = state.room.join(cx.waker());
            state.note_waiting(shared);
            return Ok(Started::Queued(ticket));
        }
        (Some(ticket), _) if state.at_limit(shared) => {
            state.room.rejoin(ticket, cx.waker());
            state.note_waiting(shared);
            return Ok(Started::Queued(ticket));
        }
        // A call that waited tells the server the time it has left, not the time it began with.
        (Some(_), Some(deadline)) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Status::deadline_exceeded(ROOM_DEADLINE));
            }
            Some(left)
        }
        // The time left now, not the timeout the call began with: a deadline that passed
        // before the call could be sent fails it here, unsent.
        _ => match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                check_timeout(Some(left))?;
                Some(left)
            }
            None => None,
        },
    };
    let id = state.next_call_id(shared)?;
    let alone = state.calls.is_empty();
    let sent_from = state.outbox.position();
    // A server that announced it reads the request inside the OPEN: one frame, not two.
    let fold = state.folds_request && message.len() <= frame::MAX_FOLDED_MESSAGE;
    let compressed = request.message_compressed();
    let buf = state.outbox.buf_mut();
    frame::encode_open_frame_head(
        buf,
        id,
        &frame::OpenFrame {
            timeout,
            reissue,
            encoding: request.encoding(),
            // The driver reads an OK answer folded into one MESSAGE (`FLAG_END_OK`).
            fold_end: true,
            message: fold.then_some((&message[..], compressed)),
            ..frame::OpenFrame::new(path, metadata)
        },
    );
    if fold {
        // The request ends the OPEN; a large one is written from where it is, not copied.
        state.outbox.append_body(message);
    } else {
        // Its own MESSAGE: in pieces when it is large and the server reads them.
        let flags = frame::message_flags(true, compressed);
        state.outbox.append_message(id, flags, message);
    }
    let slot = state.add_call(shared, id);
    slot.waker = Some(cx.waker().clone());
    slot.sent_from = Some(sent_from);
    slot.deadline = deadline;
    if let Some(deadline) = deadline {
        state.watch_deadline(deadline);
    }
    let batched = state.outbox.add_to_batch();
    if alone || batched >= EARLY_FLUSH {
        // Nobody else is waiting on this connection: write now, from this task, rather than
        // pay a wake-up of the driver. Or a batch is already large: send it now, so the server
        // works on it while the rest of the batch is being encoded here.
        state.outbox.flush_or_hand_off(cx);
        // Calls may wait for the write buffer to drain below its high-water mark.
        state.wake_for_room(shared);
    } else {
        // Others are in flight: their frames and ours leave together when the driver runs,
        // woken by the batch's first call (one wake-up per batch, not per call).
        state.outbox.wake_driver_for_batch();
    }
    Ok(Started::Sent(id))
}

impl Future for ResponseFuture {
    type Output = Result<Response<Bytes>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let shared = this.conn.shared();
        if matches!(*this.state, CallState::Start) {
            // Each call started spends a unit of the task's tokio budget, as a socket read does:
            // a loop of calls that end at once (refused here, or failed by a closed connection)
            // then yields now and again, so the connection's driver on the same thread runs.
            ready!(tokio::task::coop::poll_proceed(cx)).made_progress();
        }
        let queued = match *this.state {
            CallState::Start => Some(None),
            CallState::Queued { ticket } => Some(Some(ticket)),
            _ => None,
        };
        if let Some(queued) = queued {
            let Some((path, request)) = this.request.as_ref() else {
                return Poll::Ready(Err(Status::internal("call started without its request")));
            };
            let call = (path, request);
            match start_call(shared, cx, call, *this.reissue, *this.deadline, queued) {
                Ok(Started::Sent(id)) => {
                    crate::dispatch::note_call_id(id);
                    *this.state = CallState::Waiting { id };
                    *this.room_timer = None;
                    // The slot holds this task's waker: the driver wakes it with the answer,
                    // so there is nothing to look at under a second lock now.
                    return Poll::Pending;
                }
                Ok(Started::Queued(ticket)) => {
                    *this.state = CallState::Queued { ticket };
                    if !deadline_passed(this.room_timer, *this.deadline, cx) {
                        return Poll::Pending;
                    }
                    leave_queue(shared, ticket);
                    *this.state = CallState::Done;
                    return Poll::Ready(Err(Status::deadline_exceeded(ROOM_DEADLINE)));
                }
                Err(status) => {
                    *this.state = if status.is_not_processed() {
                        CallState::Unsent
                    } else {
                        CallState::Done
                    };
                    return Poll::Ready(Err(status));
                }
            }
        }
        let CallState::Waiting { id, .. } = *this.state else {
            return Poll::Ready(Err(Status::internal("response polled after completion")));
        };
        {
            let mut state = shared.lock();
            let Some(slot) = state.calls.get_mut(id) else {
                *this.state = CallState::Done;
                return Poll::Ready(Err(Status::internal("call vanished from its connection")));
            };
            if let Some(result) = slot.done.take() {
                state.discard_call(shared, id);
                *this.state = match &result {
                    Err(status) if status.is_not_processed() => CallState::Unsent,
                    _ => CallState::Done,
                };
                return Poll::Ready(result);
            }
            match &slot.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }
}
