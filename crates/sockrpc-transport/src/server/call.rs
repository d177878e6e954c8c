//! Starting and finishing a call on a server connection.
//!
//! ```text
//!  dispatch_call ──▶ Dispatch::dispatch ──▶ Guarded (panic → INTERNAL, deadline → DEADLINE_EXCEEDED)
//!                        polled once inline ──Ready──▶ answer now (same write as the batch)
//!                                          │         └─ streamed answer ──▶ local: pump
//!                                          └─Pending─▶ request streamed? local : spawned task
//!                                                        ──▶ finish_call
//!                        (a unary request past 256 KiB: not polled inline, a task at once)
//! ```
//!
//! Streaming calls (a streamed request or a streamed answer) stay on the connection's task
//! (`local.rs`): each of their messages is light work, and a hop to a task of their own cost
//! more than the work. A unary call whose handler waits moves to a task of its own, where it may
//! run on another worker beside the connection.
//!
//! A handler that panics — while being dispatched, on its first poll here, or later in its own
//! task or (a streaming call) on the connection's — fails its own call with `INTERNAL` and
//! releases its slot; the connection and every other call on it go on.
//!
//! A unary handler that waits keeps its request (message, metadata, path) for as long as it
//! runs, and a streaming handler its metadata and path (a handler that returned its answer
//! stream at once too, for as long as the stream runs: the stream may hold the request); what
//! those requests hold together is bounded per connection
//! (`Limits::max_running_requests_size`, a message still sliced from the read buffer counted as
//! that buffer: `held.rs`): past it a new call fails `RESOURCE_EXHAUSTED` at once,
//! as a call past the budget of requests waiting for their message does (`open.rs`). Without
//! it, 4,096 calls in flight of 4 MiB each could hold 16 GiB of one connection. A compressed
//! request counts what it decompresses to as well: the service layer adds it through the
//! `RequestCharge` in the request's extensions (a gzip request of 1 KiB holds 1 MiB); so does
//! a stream whose client names an encoding, for the compressed message its handler read last.
//!
//! A handler still pending after its first poll is polled only while the connection's write
//! buffer has room (`room.rs`): otherwise the answers of every call in flight could pile up
//! there for a client that does not read.

use super::conn::Connection;
use super::held::RunningCharge;
use super::open::{Allowed, Opened};
use super::pump::pump;
use super::respond::{answer_now, encode_refusal, Answered, ConnState, Shared};
use super::room::Turn;
use crate::dispatch::{Dispatch, DispatchFuture, IncomingCall, OutboundBody, Replay, RequestBody};
use crate::outbox::HIGH_WATER;
use crate::panic::{panicked, poll_caught};
use sockrpc_protocol::{frame, Code, Request, RequestCharge, Response, Status};
use std::sync::atomic::Ordering;
use std::{
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

impl<D: Dispatch> Connection<D> {
    /// Starts a call; answers inline when it completes at once.
    pub(super) fn dispatch_call(
        &mut self,
        cx: &mut Context<'_>,
        call_id: u32,
        opened: Opened,
        body: RequestBody,
    ) {
        let mut decoded_charge = None;
        // Where a unary request's message lies, and its size: counted, if its handler waits,
        // as the read buffer it was sliced from (`held.rs`).
        let mut sliced = None;
        let held = match &body {
            RequestBody::Once(message) => {
                sliced = Some((message.as_ptr() as usize, message.len()));
                let budget = self.shared.limits.max_running_requests_size;
                if self.running_over_budget() {
                    let status = Status::resource_exhausted(format!(
                        "unary calls running on this connection hold over {budget} bytes of requests"
                    ));
                    return self.answer(call_id, Err(status));
                }
                // What its metadata holds parsed, as a streaming call's or a waiting call's is
                // counted (`open.rs`); most calls carry none: one comparison then.
                let metadata = frame::metadata_held(&opened.metadata);
                if opened.compressed {
                    // Its handler holds it decompressed: the layer that decompresses it adds
                    // that to the count (`RequestCharge`), for as long as this call's task runs.
                    decoded_charge = Some(RequestCharge::new(
                        Arc::clone(&self.shared.running_held),
                        budget,
                    ));
                }
                message.len() + metadata + opened.path.as_bytes().len()
            }
            // Its handler holds path and metadata while the stream runs (`frames.rs` refuses
            // a new stream past the budget).
            RequestBody::Stream(_) => {
                if opened.encoding.is_some_and(|fields| fields.send != 0) {
                    // And what its compressed messages decompress to, the one read last: the
                    // layer that decompresses them counts it (`RequestCharge::hold`).
                    decoded_charge = Some(RequestCharge::new(
                        Arc::clone(&self.shared.running_held),
                        self.shared.limits.max_running_requests_size,
                    ));
                }
                opened.cost()
            }
        };
        let allowed = Allowed::of(&opened);
        let Opened {
            path,
            metadata,
            deadline,
            timeout,
            reissue,
            encoding,
            compressed,
            ..
        } = opened;
        let span = tracing::debug_span!(
            "rpc",
            method = %path,
            peer = ?self.conn_info.peer,
            call_id,
            status = tracing::field::Empty,
            elapsed_us = tracing::field::Empty,
        );
        let started = (!span.is_disabled()).then(std::time::Instant::now);
        let replay = match (reissue, &self.config.reply_cache) {
            (None, _) => None,
            (Some((instance, call_id)), Some(cache)) => {
                let peer = self.conn_info.peer.map(|peer| peer.ip());
                // Before the re-issue passes the layers, which the held call counts in still
                // (`reissued.rs`).
                self.let_go_held(cache, peer, (instance, call_id), &path);
                Some(Replay {
                    cache: Arc::clone(cache),
                    instance,
                    call_id,
                    peer,
                })
            }
            (Some(_), None) => {
                let status = Status::failed_precondition(
                    "a re-issue of a UDP call, but this server serves no UDP",
                );
                return self.answer(call_id, Err(status));
            }
        };
        let streaming = matches!(body, RequestBody::Stream(_));
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut request = Request::from_parts(metadata, body, remaining.or(timeout));
        request.set_encoding(encoding);
        request.set_message_compressed(compressed);
        if let Some(charge) = &decoded_charge {
            request.extensions_mut().insert(charge.clone());
        }
        // The connection's own, shared: no allocation per call.
        request.set_shared_conn_info(Some(Arc::clone(&self.conn_info)));
        let call = IncomingCall {
            path,
            request,
            transport: self.conn_info.transport,
            replay,
            call_id,
        };
        let future = {
            let _enter = span.enter();
            start(&mut self.dispatch, call)
        };
        let mut future = Guarded::new(future, deadline);
        let polled = if held > INLINE_REQUEST_LIMIT && !streaming {
            // Decoded, handled and answered in a task of its own from the start: polled here,
            // its decoding and its answer's encoding would hold every other call on this
            // connection (a 4 MiB echo took small calls on the same connection from 18-24 k
            // to 3-6 k calls/s).
            Poll::Pending
        } else {
            let _enter = span.enter();
            Pin::new(&mut future).poll(cx)
        };
        match polled {
            Poll::Ready(result) => {
                let code = code_of(&result);
                let answered = {
                    let mut state = self.shared.lock();
                    let answered =
                        answer_now(&mut state, call_id, result, allowed, &self.shared.limits);
                    self.note_outbox(&state);
                    answered
                };
                // The handler's future goes now, out of the lock; as ended with the code its
                // answer was refused with, if it was.
                let streamed = match answered {
                    Answered::Written { refused } => {
                        record(&span, started, refused.unwrap_or(code));
                        drop_handler(future, refused);
                        None
                    }
                    Answered::Streamed(response) => {
                        record(&span, started, code);
                        drop_handler(future, None);
                        Some(response)
                    }
                };
                if let Some(response) = streamed {
                    // Streamed answers are paced by the client's credit: they go on, polled
                    // on this task. The stream may hold the request (a handler that returned
                    // it at once still keeps what it captured): counted while it runs, as a
                    // handler that waits is.
                    let shared = Arc::clone(&self.shared);
                    let buffer = self.sliced_from(sliced);
                    let charge =
                        (held > 0).then(|| RunningCharge::new(Arc::clone(&shared), held, buffer));
                    let handler = Handler {
                        future: (),
                        turn: Turn::default(),
                    };
                    let done = |_: Option<Code>| {};
                    let task = finish_call(
                        shared,
                        call_id,
                        Ok(response),
                        allowed,
                        deadline,
                        handler,
                        done,
                    );
                    let task = async move {
                        let _charge = (charge, decoded_charge);
                        task.await;
                    };
                    self.run_local(call_id, task.instrument(span));
                }
            }
            Poll::Pending => {
                // Polled from now on only while the write buffer has room (`room.rs`).
                future.pace(Arc::clone(&self.shared));
                let shared = Arc::clone(&self.shared);
                let task_span = span.clone();
                // Counted while the handler holds its request, however the task ends.
                let buffer = self.sliced_from(sliced);
                let charge =
                    (held > 0).then(|| RunningCharge::new(Arc::clone(&self.shared), held, buffer));
                let task = async move {
                    let _charge = (charge, decoded_charge);
                    let result = (&mut future).await;
                    let code = code_of(&result);
                    let turn = future.take_turn();
                    let handler = Handler { future, turn };
                    let answered = |refused: Option<Code>| {
                        record(&task_span, started, refused.unwrap_or(code));
                    };
                    finish_call(
                        shared, call_id, result, allowed, deadline, handler, answered,
                    )
                    .await;
                };
                if streaming {
                    self.run_local(call_id, task.instrument(span));
                } else {
                    self.spawn_call(call_id, task.instrument(span));
                }
            }
        }
    }

    /// The read buffer (region id and size) a message at `sliced` (its address and size) was
    /// sliced from, with the message's size; `None` if it was copied out of it, or put
    /// together from pieces (`Region`).
    fn sliced_from(&self, sliced: Option<(usize, usize)>) -> Option<((u64, usize), usize)> {
        let (at, len) = sliced?;
        Some((self.reader.region_of(at, len)?, len))
    }

    /// Whether the requests of the calls running on this connection hold more than
    /// `Limits::max_running_requests_size`: a new call is then refused.
    pub(super) fn running_over_budget(&self) -> bool {
        self.shared.running_held.load(Ordering::Relaxed)
            > self.shared.limits.max_running_requests_size
    }

    /// Runs the rest of a call in a task of its own, registered so CANCEL can abort it.
    fn spawn_call(&self, call_id: u32, task: impl Future<Output = ()> + Send + 'static) {
        self.register_running(call_id);
        let handle = tokio::spawn(task);
        if let Some(entry) = self.shared.lock().running.get_mut(&call_id) {
            *entry = Some(handle);
        }
    }

    /// Runs the rest of a streaming call on this task (`local.rs`); CANCEL drops it by its id.
    fn run_local(&mut self, call_id: u32, task: impl Future<Output = ()> + Send + 'static) {
        self.register_running(call_id);
        self.locals.insert(call_id, Box::pin(task));
    }

    /// Notes a call that runs on past its first poll, so CANCEL finds it and it counts
    /// against the limit of calls in flight.
    fn register_running(&self, call_id: u32) {
        self.shared.lock().running.insert(call_id, None);
        self.running_hint.set(self.running_hint.get() + 1);
    }

    /// Answers a call from the connection task (errors the connection itself decides on).
    pub(super) fn answer(&self, call_id: u32, result: Result<Response<D::Body>, Status>) {
        let mut state = self.shared.lock();
        let allowed = Allowed::default();
        let answered = answer_now(&mut state, call_id, result, allowed, &self.shared.limits);
        self.note_outbox(&state);
        debug_assert!(
            matches!(answered, Answered::Written { refused: None }),
            "the connection only answers with errors"
        );
    }

    /// After appending an answer (the lock held): tells [`take_frames`](Self::take_frames) to
    /// stop taking frames if the write buffer is past its high-water mark.
    fn note_outbox(&self, state: &ConnState) {
        if state.outbox.buffered() > HIGH_WATER {
            self.outbox_full.set(true);
            super::room::note_appended(&self.shared, state);
        }
    }

    /// Refuses a call before starting it (the server is shutting down): the client may send it
    /// again elsewhere, which the protocol's `NOT_PROCESSED` flag tells it.
    pub(super) fn refuse(&self, call_id: u32) {
        let status = Status::not_processed("server is shutting down; the call was not processed");
        let mut state = self.shared.lock();
        encode_refusal(
            state.outbox.buf_mut(),
            call_id,
            &status,
            &self.shared.limits,
        );
        self.note_outbox(&state);
    }

    /// Answers every call whose request message did not come in time.
    pub(super) fn expire_opened(&mut self, now: Instant) {
        let frame_timeout = self.config.frame_timeout;
        for (call_id, opened) in self.opened.expire(now, frame_timeout) {
            self.uncounted.note(call_id);
            let status = if opened.deadline.is_some_and(|d| d <= now) {
                Status::deadline_exceeded("deadline exceeded before the request message arrived")
            } else {
                Status::cancelled(format!(
                    "the request message of {} did not arrive within {:?}",
                    opened.path, self.config.frame_timeout
                ))
            };
            self.answer(call_id, Err(status));
        }
    }
}

/// The largest unary request (message, metadata and path) whose handler is polled first on the
/// connection's task: a larger one goes straight to a task of its own. Four pieces' worth: the
/// hop costs microseconds, its decoding tens of them and more.
const INLINE_REQUEST_LIMIT: usize = 4 * frame::PIECE;

/// Calls the dispatcher, turning a panic into this call's `INTERNAL`.
fn start<D: Dispatch>(dispatch: &mut D, call: IncomingCall) -> DispatchFuture<D::Body> {
    match catch_unwind(AssertUnwindSafe(|| dispatch.dispatch(call))) {
        Ok(future) => future,
        Err(_) => Box::pin(std::future::ready(Err(panicked()))),
    }
}

/// A dispatched call's future with what the connection guarantees around it: a panic fails the
/// call, and the server-side deadline ends it. The timer is made only if the call waits.
struct Guarded<B> {
    inner: DispatchFuture<B>,
    deadline: Option<Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
    /// Paced once the handler waits: it is then polled only while its connection's write buffer
    /// has room (`room.rs`); its deadline runs regardless.
    turn: Turn,
}

impl<B> Guarded<B> {
    fn new(inner: DispatchFuture<B>, deadline: Option<Instant>) -> Guarded<B> {
        Guarded {
            inner,
            deadline,
            sleep: None,
            turn: Turn::default(),
        }
    }

    /// From now on, polls the handler only while `shared`'s write buffer has room.
    fn pace(&mut self, shared: Arc<Shared>) {
        self.turn.pace(shared);
    }

    /// Once it is ready: its place among the parked handlers, to leave once its answer is
    /// appended (`finish_call`), so that the next parked handler sees that answer's room.
    fn take_turn(&mut self) -> Turn {
        std::mem::take(&mut self.turn)
    }
}

impl<B: OutboundBody> Future for Guarded<B> {
    type Output = Result<Response<B>, Status>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.turn.has_room(cx) {
            match poll_caught(this.inner.as_mut(), cx) {
                Poll::Ready(Ok(result)) => return Poll::Ready(result),
                Poll::Ready(Err(_)) => {
                    let status = panicked();
                    this.end_as(Code::Internal);
                    return Poll::Ready(Err(status));
                }
                Poll::Pending => {}
            }
            this.turn.waiting_again();
        }
        if let Some(deadline) = this.deadline {
            let sleep = this
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.as_mut().poll(cx).is_ready() {
                this.end_as(Code::DeadlineExceeded);
                return Poll::Ready(Err(Status::deadline_exceeded(
                    "deadline exceeded on the server",
                )));
            }
        }
        Poll::Pending
    }
}

impl<B: OutboundBody> Guarded<B> {
    /// Drops the handler's future now, as ended with `code` (`ending.rs`): the layers that
    /// watch it record what the client is told, not a cancel. What takes its place is never
    /// polled (and, empty, allocates nothing).
    fn end_as(&mut self, code: Code) {
        let ended = std::mem::replace(&mut self.inner, Box::pin(std::future::pending()));
        crate::ending::drop_as(code, ended);
    }
}

/// The code a handler's result ends its call with, unless its answer is refused.
fn code_of<B>(result: &Result<Response<B>, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// Records a call's end on its DEBUG `rpc` span: `code`, the one its client is told (a
/// one-message answer the transport refused for its size ends with the refusal's code, not
/// the handler's `OK`), and the time since the call started.
fn record(span: &tracing::Span, started: Option<std::time::Instant>, code: Code) {
    if let Some(started) = started {
        span.record("status", tracing::field::display(code));
        span.record("elapsed_us", started.elapsed().as_micros() as u64);
        tracing::debug!(parent: span, "call finished");
    }
}

/// A finished handler as [`finish_call`] gets it: its future, kept until its answer is written
/// (`()` when it is gone already), and its place among the parked (`room.rs`).
struct Handler<F> {
    future: F,
    turn: Turn,
}

/// Drops a handler's `future` once its answer is written: as ended with `refused` when its
/// one-message answer could not be sent (`ending.rs`), else as any value. Either way a panic in
/// its drop (a layer's future keeps what it holds until then) is caught: on the connection's
/// task it failed every call there; in the call's own task, an answer still to stream was
/// never sent and the call never left the count of calls in flight
/// (`tests/hostile/drop_panics_answered.rs`).
fn drop_handler<F>(future: F, refused: Option<Code>) {
    match refused {
        Some(code) => crate::ending::drop_as(code, future),
        None => crate::ending::drop_caught(future),
    }
}

/// Answers a call whose handler finished in its own task: at once, or by streaming; then
/// forgets it. A call cancelled meanwhile gets nothing. The handler's turn among the parked
/// (`room.rs`) is left once the answer (or its head) is appended, and its future dropped after.
/// `on_answered` hears, out of the lock, the code a refused one-message answer ended with
/// (`None`: not refused, a streamed answer, or a call cancelled meanwhile).
async fn finish_call<B: OutboundBody, F>(
    shared: Arc<Shared>,
    call_id: u32,
    result: Result<Response<B>, Status>,
    allowed: Allowed,
    deadline: Option<Instant>,
    handler: Handler<F>,
    on_answered: impl FnOnce(Option<Code>),
) {
    let Handler { future, turn } = handler;
    let answered = {
        let mut state = shared.lock();
        if !state.running.contains_key(&call_id) {
            turn.end(&shared, &mut state);
            drop(state);
            on_answered(None);
            drop_handler(future, None);
            return;
        }
        let answered = answer_now(&mut state, call_id, result, allowed, &shared.limits);
        super::room::note_appended(&shared, &state);
        turn.end(&shared, &mut state);
        if let Answered::Written { .. } = answered {
            // The call's last frame is written: it leaves the count of calls in flight in the
            // same breath. Once another task writes that frame out, the client may send its
            // next call into the slot (it holds calls back at the limit it was announced).
            release(&mut state, call_id);
        }
        answered
    };
    // Out of the lock: what the future's drop runs (the layers' records) is not the
    // connection's business.
    let streamed = match answered {
        Answered::Written { refused } => {
            on_answered(refused);
            drop_handler(future, refused);
            None
        }
        Answered::Streamed(response) => {
            on_answered(None);
            drop_handler(future, None);
            Some(response)
        }
    };
    if let Some(response) = streamed {
        let pumping = pump(Arc::clone(&shared), call_id, response, allowed);
        let finished = match deadline {
            None => {
                pumping.await;
                true
            }
            Some(deadline) => {
                // Kept here, not moved into the timeout, so that a deadline drops the stream
                // as ended `DEADLINE_EXCEEDED` (`ending.rs`) rather than as cancelled.
                let mut pumping = std::pin::pin!(Some(pumping));
                let running = std::future::poll_fn(|cx| match pumping.as_mut().as_pin_mut() {
                    Some(pumping) => pumping.poll(cx),
                    None => Poll::Ready(()),
                });
                let finished = tokio::time::timeout_at(deadline, running).await.is_ok();
                if !finished {
                    crate::ending::dropping_as(Code::DeadlineExceeded, || pumping.set(None));
                }
                finished
            }
        };
        if !finished {
            let mut state = shared.lock();
            if state.remove_stream(call_id).is_some() {
                let status = Status::deadline_exceeded("deadline exceeded on the server");
                // It replaces what of the answer waits: a split message ends unfinished.
                state.abandon_answer(call_id, |buf| {
                    super::respond::encode_status(buf, call_id, &status, &shared.limits)
                });
                release(&mut state, call_id);
            }
        }
    }
    std::future::poll_fn(|cx| {
        let mut state = shared.lock();
        release(&mut state, call_id);
        if !state.outbox.driving() {
            // Polled on the connection's task, the call leaves the write to it.
            state.outbox.flush_or_hand_off(cx);
        }
        Poll::Ready(())
    })
    .await;
}

/// A handler's call leaves the connection's count of calls in flight (once: later calls do
/// nothing). Called under the lock that writes the call's last frame: once another task writes
/// that frame out, the client may send its next call into the slot.
pub(super) fn release(state: &mut super::respond::ConnState, call_id: u32) {
    if state.running.remove(&call_id).is_some() && state.running.is_empty() {
        // A draining connection waits for its last handler to finish; an idle one starts its
        // idle clock.
        state.went_idle += 1;
        state.outbox.wake_driver();
    }
}
