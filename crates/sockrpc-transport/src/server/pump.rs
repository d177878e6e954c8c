//! `pump`: a streamed answer leaves the server paced by the client's credit, and yields now
//! and then so that an always-ready stream does not hold the connection's task.
//!
//! ```text
//!  HEADERS ─▶ MESSAGE … (while the stream's and the connection's credit last) ─▶ END(trailers)
//! ```

use super::open::{compressed_unasked, compressed_unnamed, Allowed};
use super::respond::{encode_error, encode_status, ConnState, Shared};
use crate::dispatch::OutboundBody;
use crate::outbox::HIGH_WATER;
use sockrpc_protocol::frame;
use sockrpc_protocol::{Code, Response, Status};
use std::{sync::Arc, task::Poll};

/// Runs `f` on the state with a context, then flushes (or hands the flush to the driver).
async fn with_state<R>(shared: &Shared, mut f: impl FnMut(&mut ConnState) -> R) -> R {
    std::future::poll_fn(|cx| {
        let mut state = shared.lock();
        let result = f(&mut state);
        let alone = state.running.len() <= 1;
        state.outbox.flush_or_defer(cx, alone);
        Poll::Ready(result)
    })
    .await
}

/// Messages a response stream sends in a row without having waited (for credit, room or its
/// own next message) before it yields once. Credit bounds a burst in bytes, not in messages (an
/// empty message takes none), so an always-ready stream of small messages to a fast reader would
/// otherwise hold the task that polls it, which for streams is the connection's (`local.rs`).
pub(super) const MESSAGES_PER_POLL: usize = 32;

/// Streams a response: HEADERS, then each message as credit allows, then END with trailers (or
/// the status the stream failed with). Stops quietly when the call is cancelled. Yields after
/// [`MESSAGES_PER_POLL`] messages sent without a wait.
///
/// `allowed`: what the call's OPEN allowed (`answer_now` already dropped the HEADERS' encoding
/// fields it does not allow): toward a client whose OPEN carried no encoding fields, the
/// stream's error goes without its own and a message flagged compressed ends the call
/// `INTERNAL` instead of going out; so does one under HEADERS that name no encoding it is sent
/// with, toward any client.
pub(super) async fn pump<B: OutboundBody>(
    shared: Arc<Shared>,
    call_id: u32,
    response: Response<B>,
    allowed: Allowed,
) {
    let limits = shared.limits;
    let encoding = response.encoding();
    // Messages flagged compressed go only under HEADERS that name their encoding.
    let sends = compressed_unnamed(allowed, encoding).is_none();
    let (metadata, mut body, trailers) = response.into_parts();
    let started = with_state(&shared, |state| {
        if !state.running.contains_key(&call_id) {
            // Cancelled since its handler answered (`finish_call` looked under an earlier
            // lock): the CANCEL aborted this task, which runs on to its next wait. Nothing of
            // it goes out, and it takes no place in a line: a stream made for it here would
            // outlive the task, its place passed a turn no one gives back, and four such
            // held every turn of the line for answer credit (or room) for good.
            return false;
        }
        let checked = super::announced::check_response(state, &metadata, &trailers, &limits);
        if let Err(status) = checked {
            encode_status(state.outbox.frames_for(call_id), call_id, &status, &limits);
            state.remove_stream(call_id);
            super::call::release(state, call_id);
            return false;
        }
        // Always a head, so a client waiting for the response returns before the first message.
        frame::encode_headers_with(state.outbox.buf_mut(), call_id, &metadata, encoding);
        state.answers_sent += 1;
        state.streams.entry(call_id).or_default();
        true
    })
    .await;
    if !started {
        return;
    }
    // Known, under the lock that wrote the last message, that the next may go: the wait for
    // credit and room is skipped, and with it a lock per message.
    let mut may_send = false;
    // Messages sent since the stream last waited.
    let mut burst = 0;
    // The code of an end this side made (a panic, a message over the limit): the body is
    // dropped as ended with it (`ending.rs`), not as cancelled.
    let mut ended_as = None;
    loop {
        if may_send {
            may_send = false;
        } else {
            let alive = std::future::poll_fn(|cx| {
                let mut state = shared.lock();
                let room = state.outbox.buffered() <= HIGH_WATER;
                if state.streams.contains_key(&call_id)
                    && !state.writers.poll_turn(call_id, room, cx.waker())
                {
                    // The client is not reading: wait for the connection to drain the buffer,
                    // and for a turn (`turns.rs`: a few pumps woken at a time, in order).
                    state.outbox.wake_driver();
                    state.leave_answer_line(call_id);
                    burst = 0;
                    return Poll::Pending;
                }
                let Some(stream) = state.streams.get_mut(&call_id) else {
                    return Poll::Ready(false);
                };
                if stream.outbound.poll_credit(cx).is_pending() {
                    state.leave_answer_line(call_id);
                    burst = 0;
                    return Poll::Pending;
                }
                if !state.poll_answer_turn(call_id, cx) {
                    // The client's answer window (`answer_window.rs`): woken with a turn once
                    // its credit opens it, or by a cancel as for stream credit.
                    if let Some(stream) = state.streams.get_mut(&call_id) {
                        stream.outbound.register(cx);
                    }
                    burst = 0;
                    return Poll::Pending;
                }
                Poll::Ready(true)
            })
            .await;
            if !alive {
                return;
            }
        }
        // A stream that panics fails its own call, like a handler that does.
        let next = std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                body.poll_message_flagged(cx)
            })) {
                Ok(Poll::Pending) => {
                    burst = 0;
                    Poll::Pending
                }
                Ok(polled) => polled,
                Err(_) => {
                    crate::panic::log_panic("response stream panicked", Some(call_id));
                    ended_as = Some(Code::Internal);
                    Poll::Ready(Some(Err(Status::internal("response stream panicked"))))
                }
            }
        })
        .await;
        let more = with_state(&shared, |state| {
            if !state.streams.contains_key(&call_id) {
                return false;
            }
            let end = match &next {
                Some(Ok((_, true))) if !sends => {
                    ended_as = Some(Code::Internal);
                    Err(compressed_unnamed(allowed, encoding).unwrap_or_else(compressed_unasked))
                }
                Some(Ok((message, compressed))) if message.len() <= limits.send_limit() => {
                    let flags = frame::message_flags(false, *compressed);
                    state.outbox.append_message(call_id, flags, message);
                    state.answers_sent += 1;
                    let room = state.outbox.buffered() <= HIGH_WATER;
                    if !room {
                        super::room::note_appended(&shared, state);
                    }
                    let charge = if state.charge_answers {
                        frame::message_charge(message.len())
                    } else {
                        message.len()
                    };
                    state.answer_sent(message.len());
                    let window = !state.answers_blocked();
                    if let Some(stream) = state.streams.get_mut(&call_id) {
                        stream.outbound.sent(charge);
                        may_send = room && window && stream.outbound.has_credit();
                    }
                    return true;
                }
                Some(Ok((message, _))) => {
                    ended_as = Some(Code::ResourceExhausted);
                    Err(Status::resource_exhausted(format!(
                        "response message of {} bytes exceeds the limit of {}",
                        message.len(),
                        limits.send_limit()
                    )))
                }
                Some(Err(status)) => Err(status.clone()),
                None => Ok(()),
            };
            // After the call's last message, even one still going out in pieces.
            // An error's trailers past the client's announced limit are dropped, as a unary
            // call's are (`announced.rs`): the client would refuse them, and the status with them.
            // Its encoding fields go only as the OPEN allowed (`Allowed::fields`).
            let end = end.map_err(|status| {
                let encoding = allowed.fields(status.encoding());
                (
                    super::announced::fit_status(state, status, &limits),
                    encoding,
                )
            });
            let buf = state.outbox.frames_for(call_id);
            match end {
                Ok(()) => frame::encode_end(buf, call_id, Code::Ok, "", &[], &trailers),
                Err((status, encoding)) => encode_error(buf, call_id, &status, encoding, &limits),
            }
            state.remove_stream(call_id);
            // The call leaves the count of calls in flight with its END, under this lock: this
            // flush may write the END out, and a client that counts the stream no longer once
            // the END arrives (`State::stream_ended`) may open its next call into the slot
            // before this task would otherwise get back to the lock (as `finish_call` does for
            // a one-message answer), which the server would refuse `RESOURCE_EXHAUSTED`.
            super::call::release(state, call_id);
            false
        })
        .await;
        if !more {
            if let Some(code) = ended_as {
                crate::ending::drop_as(code, body);
            }
            return;
        }
        burst += 1;
        if burst >= MESSAGES_PER_POLL {
            burst = 0;
            yield_once().await;
        }
    }
}

/// Pending once, having woken its own task: whoever polls it polls the others first.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}
