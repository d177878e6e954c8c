//! One server connection: read frames, hand calls to the dispatcher, write answers.
//!
//! ```text
//!  socket ──read──▶ decoder ──OPEN, MESSAGE──▶ dispatch ──poll once, here──┐
//!                                                 │ not done yet            │ done
//!                                                 ▼                         ▼
//!                        unary: spawned task ──answer──▶  Outbox ──write──▶ socket
//!                  streaming: polled here, each pass ──▶  (same write as the batch)
//! ```
//!
//! A handler's future is first polled right here, on the connection's task. A handler that
//! answers without waiting (most do) is answered with no task hop at all, and answers to every
//! call in one read batch leave in one write. A unary handler that really waits is moved to a
//! task of its own, so a slow call never holds up the others on the connection; a streaming call
//! stays here and is polled, at most once per pass, when its reads or timers wake it
//! (`local.rs`, which says what that trades).
//!
//! The pieces: `frames.rs` reacts to each frame, `call.rs` starts and finishes calls (panics
//! included), `local.rs` holds the streaming calls polled here, `timers.rs` holds every "the peer
//! owes us something by then", `respond.rs` writes answers.

use super::linger::Linger;
use super::local::LocalCalls;
use super::open::OpenCalls;
use super::respond::{encode_status, Shared};
use super::timers::{Deadlines, Timers};
use super::{PingPolicy, ServerConfig};
use crate::codec::FrameDecoder;
use crate::dispatch::Dispatch;
use crate::log_limit::LogLimit;
use crate::notice::Notice;
use crate::outbox::{Outbox, HIGH_WATER};
use crate::reader::FrameReader;
use crate::server::Accepted;
use crate::timer::deadline_after;
use crate::udp::ReplyCache;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::{Code, ConnInfo, Limits};
use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Per-connection settings, shared by every connection of one server.
#[derive(Debug, Clone)]
pub(super) struct ConnConfig {
    pub(super) limits: Limits,
    pub(super) max_concurrent_calls: usize,
    /// `ServerConfig::shed_past_calls`: the unannounced limit past which calls are refused.
    pub(super) shed_past_calls: Option<usize>,
    pub(super) ping_policy: PingPolicy,
    /// The UDP side's reply cache, when the server also serves UDP: TCP re-issues of truncated
    /// UDP calls are answered from it.
    pub(super) reply_cache: Option<Arc<ReplyCache>>,
    pub(super) handshake_timeout: Duration,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) max_age: Option<Duration>,
    pub(super) max_age_grace: Option<Duration>,
    pub(super) frame_timeout: Duration,
    /// `ServerConfig::min_message_rate`: a split message's floor (`deadlines.rs`).
    pub(super) min_message_rate: u64,
    pub(super) keepalive: Option<crate::client::Keepalive>,
    /// The server-wide cap on any call's deadline.
    pub(super) timeout: Option<Duration>,
    /// The server's WARN budget: why a connection was closed is logged through it, so that a
    /// flood of bad connections is one warning, not one per connection.
    pub(super) log_limit: Arc<LogLimit>,
    /// The server's slots for sockets lingering off their task (`linger.rs`), refusals' too.
    pub(super) lingering: Arc<tokio::sync::Semaphore>,
}

impl ConnConfig {
    pub(super) fn new(config: &ServerConfig, reply_cache: Option<Arc<ReplyCache>>) -> ConnConfig {
        ConnConfig {
            limits: config.limits,
            max_concurrent_calls: config.max_concurrent_calls,
            shed_past_calls: config.shed_past_calls,
            ping_policy: config.ping_policy,
            reply_cache,
            handshake_timeout: config.handshake_timeout,
            idle_timeout: config.idle_timeout,
            max_age: config.max_connection_age,
            max_age_grace: config.max_connection_age_grace,
            frame_timeout: config.frame_timeout,
            min_message_rate: config.min_message_rate,
            keepalive: config.keepalive,
            timeout: config.timeout,
            log_limit: Arc::clone(&config.log_limit),
            lingering: Arc::new(tokio::sync::Semaphore::new(super::listener::PLAIN_REFUSALS)),
        }
    }
}

const READS_PER_POLL: usize = 16;

/// The GOAWAY's reason for a connection evicted at the connection cap (`handshakes.rs`).
pub(super) const EVICTED: &str =
    "server closed this connection at its connection limit before its handshake was done";

/// The connection's task.
pub(super) struct Connection<D> {
    pub(super) dispatch: D,
    pub(super) shared: Arc<Shared>,
    pub(super) reader: FrameReader,
    /// Set once the connection closes politely (`linger.rs`): from then on it only waits for
    /// the client's FIN.
    pub(super) linger: Option<Linger>,
    /// The connection as every call on it is told of it (socket kind, addresses, the TLS peer),
    /// and as the logs name it: one `Arc`, shared, so a call costs a reference count.
    pub(super) conn_info: Arc<ConnInfo>,
    pub(super) config: Arc<ConnConfig>,
    pub(super) opened: OpenCalls,
    /// Unary calls ended before their message arrived: not credited when it does.
    pub(super) uncounted: super::uncounted::Uncounted,
    /// Streaming calls polled on this task (`local.rs`).
    pub(super) locals: LocalCalls,
    pub(super) last_call_id: u32,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// What `shutdown` is polled through (see [`Connection::shutdown_signalled`]).
    shutdown_notice: Notice,
    pub(super) timers: Timers,
    pub(super) draining: bool,
    /// The connection reached its maximum age and was sent away (`age.rs`).
    pub(super) aged: bool,
    pub(super) last_ping: Option<Instant>,
    pub(super) ping_strikes: u32,
    /// `answers_sent` when the last PING came: data sent since clears the strikes.
    pub(super) answers_at_last_ping: u64,
    /// `reader.frames()` at the last look: when it moves, a partial frame is a new one.
    pub(super) frames_at_last_check: u64,
    /// `reader.piece_bytes()` at the last look: when it moves, calls waiting for their request
    /// message wait a frame timeout from now at least (`OpenCalls::pieces_arrived`).
    pub(super) pieces_at_last_check: u64,
    /// `reader.assembling()` at the last look: a split message in assembly since then restarts
    /// the frame clock only with its own pieces (`deadlines.rs`).
    pub(super) assembling_at_last_check: bool,
    /// Whether the split message skipped last (over the limit) was a stream's: the pieces
    /// skipped after its report are then credited back to the connection window, as the
    /// reported part was (a unary request never counted against it).
    pub(super) credit_skipped: bool,
    /// Keepalive: `reader.frames()` when its timer was armed, and the PING awaiting its PONG.
    pub(super) frames_at_keepalive: u64,
    pub(super) awaiting_pong: Option<u64>,
    /// `last_call_id`, `went_idle` and `opened.departed()` when the idle timer was (re)armed
    /// (`Connection::activity`): a call opened, a running one finished, or a waiting one gone
    /// since then means the connection was not idle all along.
    pub(super) calls_at_idle_check: (u32, u64, u64),
    /// Whole frames wait in the read buffer: the last batch stopped taking them (write buffer
    /// past [`HIGH_WATER`], cancelled handlers in the way). The frame deadline never blames the
    /// peer then; the keepalive only while the write buffer is still full (`deadlines.rs`).
    pub(super) backlog: bool,
    /// Set where this task appends an answer under the lock and finds the write buffer past
    /// [`HIGH_WATER`]; read (and cleared) by [`Connection::take_frames`] after each frame, so
    /// the check costs no lock per frame. Only this task's own answers can fill the buffer
    /// within one batch of frames.
    pub(super) outbox_full: std::cell::Cell<bool>,
    /// At least the number of calls in `Shared::running`: read under the lock at each pass,
    /// raised with each call this task registers there; calls that end on tasks of their own
    /// lower only the real count. A call under the limit by this count is under it for sure,
    /// and only one that may not be takes the lock to count ([`Connection::at_call_limit`]).
    pub(super) running_hint: std::cell::Cell<usize>,
    /// Cancelled calls whose tasks may still be alive: they keep their slots (`aborted.rs`).
    pub(super) aborted: super::aborted::Aborted,
    /// Its place among the connections still in their handshake, which the accept loop evicts
    /// from at the connection cap (`handshakes.rs`): given up once the preface is read
    /// (`deadlines.rs`), so an established connection is never evicted.
    pub(super) awaiting: Option<super::handshakes::Ticket>,
}

impl<D: Dispatch> Connection<D> {
    /// Whether the server is shutting down. Polling the cancellation future (or asking the
    /// token) takes a lock, and the connection wakes for every read batch; polled through a
    /// [`Notice`], it is polled again only once it woke this task (or the task's waker changed).
    fn shutdown_signalled(&mut self, cx: &mut Context<'_>) -> bool {
        self.shutdown_notice.needs_poll(cx)
            && self
                .shutdown_notice
                .poll(self.shutdown.as_mut(), cx)
                .is_ready()
    }

    pub(super) fn new(
        dispatch: D,
        accepted: Accepted,
        config: Arc<ConnConfig>,
        shutdown: CancellationToken,
    ) -> Connection<D> {
        let mut outbox = Outbox::new(accepted.writer);
        outbox.buf_mut().extend_from_slice(&PREFACE);
        // What this server reads beyond version 1's base, and how many calls it takes in
        // flight here: a client that knows no SETTINGS ignores it; one that does folds its
        // unary requests and fills this connection no further than the limit.
        frame::encode_settings(
            outbox.buf_mut(),
            frame::SERVER_CAPABILITIES,
            config.max_concurrent_calls,
        );
        let now = Instant::now();
        Connection {
            dispatch,
            shared: Arc::new(Shared::new(outbox, config.limits)),
            reader: FrameReader::new(accepted.reader, FrameDecoder::new(config.limits)),
            linger: None,
            conn_info: Arc::new(
                ConnInfo::new(accepted.transport, accepted.peer, accepted.local)
                    .with_tls(accepted.tls)
                    .with_peer_cred(accepted.peer_cred),
            ),
            opened: OpenCalls::default(),
            uncounted: Default::default(),
            locals: LocalCalls::default(),
            last_call_id: 0,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            shutdown_notice: Notice::new(),
            timers: Timers::new(Deadlines {
                handshake: Some(deadline_after(now, config.handshake_timeout)),
                age: config
                    .max_age
                    .map(|age| deadline_after(now, super::age::jittered(age))),
                ..Deadlines::default()
            }),
            config,
            draining: false,
            aged: false,
            last_ping: None,
            ping_strikes: 0,
            answers_at_last_ping: 0,
            frames_at_last_check: 0,
            pieces_at_last_check: 0,
            assembling_at_last_check: false,
            credit_skipped: false,
            calls_at_idle_check: (0, 0, 0),
            frames_at_keepalive: 0,
            awaiting_pong: None,
            backlog: false,
            outbox_full: std::cell::Cell::new(false),
            running_hint: std::cell::Cell::new(0),
            aborted: super::aborted::Aborted::default(),
            awaiting: None,
        }
    }

    /// Keeps `ticket` (its place among the connections the accept loop may evict) until the
    /// preface is read.
    pub(super) fn awaiting(mut self, ticket: super::handshakes::Ticket) -> Connection<D> {
        self.awaiting = Some(ticket);
        self
    }

    /// Calls in flight: waiting for their message, or running past their first poll.
    pub(super) fn in_flight(&self) -> usize {
        let running = self.shared.lock().running.len();
        self.running_hint.set(running);
        self.opened.len() + running
    }

    pub(super) fn abort_all(&mut self) {
        self.opened.clear();
        self.shared.abort_running();
        self.locals.clear();
        self.aborted.clear();
    }

    /// Polls the streaming calls woken since the last pass, each once (`local.rs`). What they
    /// append is written by the caller's next flush. A call that panicked fails alone.
    fn poll_locals(&mut self) {
        let shared = &self.shared;
        self.locals.poll(|call_id, result| {
            if result.is_ok() {
                return;
            }
            let status = crate::panic::panicked();
            let mut state = shared.lock();
            if state.running.remove(&call_id).is_some() {
                if state.remove_stream(call_id).is_some() {
                    let limits = &shared.limits;
                    state.abandon_answer(call_id, |buf| {
                        encode_status(buf, call_id, &status, limits)
                    });
                }
                if state.running.is_empty() {
                    state.went_idle += 1;
                }
            }
        });
    }

    /// Sends the connection away politely: a GOAWAY naming the last call it took (UNAVAILABLE,
    /// `message`), and no new call from now on; calls in flight go on. `retire` (FLAG_RETIRE)
    /// for the idle timeout and the maximum age, which refuse no reconnect; not for shutdown.
    pub(super) fn send_away(&mut self, message: &str, retire: bool) {
        self.draining = true;
        let mut state = self.shared.lock();
        frame::encode_goaway_with(
            state.outbox.buf_mut(),
            self.last_call_id,
            Code::Unavailable,
            message,
            retire,
        );
    }

    pub(super) fn close(
        &mut self,
        cx: &mut Context<'_>,
        reason: Option<(Code, String)>,
    ) -> Poll<()> {
        self.abort_all();
        let mut state = self.shared.lock();
        if let Some((code, message)) = reason {
            frame::encode_goaway(state.outbox.buf_mut(), self.last_call_id, code, &message);
        }
        // Best effort: the peer may be gone or not reading; never wait on it here.
        let _ = state.outbox.poll_flush(cx);
        let _ = state.outbox.poll_shutdown(cx);
        Poll::Ready(())
    }

    /// Closes a connection evicted at the cap before its preface was read: a GOAWAY (last call
    /// id 0: none ran) tells its client its calls may go elsewhere; the socket lingers off this
    /// task if it can (`linger.rs`), else closes at once. This task, and its slot, end now.
    pub(super) fn close_evicted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.awaiting = None;
        if self.hand_off(Some(EVICTED)) {
            return Poll::Ready(());
        }
        self.close(cx, Some((Code::Unavailable, EVICTED.to_string())))
    }

    pub(super) fn paused(&self) -> bool {
        let state = self.shared.lock();
        state.over_budget() || state.outbox.buffered() > HIGH_WATER
    }
}

impl<D> Drop for Connection<D> {
    fn drop(&mut self) {
        // A connection dropped from outside (the server aborted, the grace period ran out) must
        // not leave handlers running: each holds the write half, which would keep the socket
        // open and answer calls after the server is gone.
        self.shared.abort_running();
        // Nor may a request stream held past the connection (its `CallReceiver` shares this
        // state) keep the socket open: its write half is dropped now.
        self.shared.lock().outbox.release_writer();
    }
}

impl<D: Dispatch> Future for Connection<D> {
    type Output = ();

    /// One pass of the connection, with the streaming calls it polls itself. While it runs,
    /// calls leave their writes to it (`Outbox::set_driving`) and their wake-ups are collected
    /// rather than sent (`LocalCalls::begin`); whatever either left behind is handled here,
    /// before the task parks.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.linger.is_some() {
            // Evicted while it closes politely before its preface (an idle timeout shorter
            // than the handshake's): its slot is waited for, so it goes at once (its socket
            // lingering on off this task if it can).
            if this.awaiting.as_mut().is_some_and(|t| t.poll_evicted(cx)) {
                this.hand_off(None);
                return Poll::Ready(());
            }
            return this.poll_linger(cx);
        }
        if this.locals.is_empty() {
            // Unary calls only (the common case): none of the streaming bookkeeping, and calls
            // write as they did before (alone: at once; in a batch: the flush below the reads).
            let polled = this.drive(cx);
            if polled.is_pending() && !this.locals.is_empty() {
                // A streaming call started in this pass: from now on its wake-ups must reach
                // this task.
                this.locals.begin(cx);
                if this.locals.end() {
                    cx.waker().wake_by_ref();
                }
            }
            return polled;
        }
        this.locals.begin(cx);
        this.shared.lock().outbox.set_driving(true);
        let polled = this.drive(cx);
        let mut state = this.shared.lock();
        state.outbox.set_driving(false);
        if polled.is_pending() && state.outbox.buffered() > 0 {
            if let Poll::Ready(Err(_)) = state.outbox.poll_flush(cx) {
                // The next pass sees the failure and closes.
                cx.waker().wake_by_ref();
            }
        }
        drop(state);
        if this.locals.end() && polled.is_pending() {
            // Calls woken after the last pass: come back for them (after other tasks ran).
            cx.waker().wake_by_ref();
        }
        polled
    }
}

impl<D: Dispatch> Connection<D> {
    /// The connection's work for one wake-up: timers, shutdown, writes, reads, and the streaming
    /// calls it polls itself.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        if this.timers.poll(cx).is_ready() {
            if let Some(done) = this.on_timer(cx) {
                return done;
            }
            // Re-arm for what is left.
            let _ = this.timers.poll(cx);
        }
        if this.awaiting.as_mut().is_some_and(|t| t.poll_evicted(cx)) {
            return this.close_evicted(cx);
        }
        if !this.draining && this.shutdown_signalled(cx) {
            this.send_away("server is shutting down", false);
        }
        // Calls woken since the last pass (by timers, by tasks of their own): what they append
        // goes out in the flush just below.
        this.poll_locals();
        let mut over_budget;
        {
            let mut state = this.shared.lock();
            state.outbox.set_driver(cx.waker());
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                drop(state);
                tracing::debug!(peer = ?this.conn_info.peer, error = %err, "connection write failed");
                return this.close(cx, None);
            }
            if this.draining
                && this.opened.is_empty()
                && state.running.is_empty()
                && state.outbox.buffered() == 0
            {
                drop(state);
                return this.linger(cx);
            }
            if state.outbox.buffered() > HIGH_WATER {
                // The client is not reading its answers: stop reading its requests until it does.
                drop(state);
                this.timers.pause();
                return Poll::Pending;
            }
            state.resume_writers();
            super::room::resume(&this.shared, &mut state);
            over_budget = state.over_budget();
            this.running_hint.set(state.running.len());
        }
        // Nothing to do until woken: the socket is empty, or cancelled handlers are in the way.
        let mut waiting = false;
        for round in 0..READS_PER_POLL {
            // Seen under the lock the pass already took (above, or after the last batch's
            // flush): one lock per read batch, not two.
            if over_budget {
                let mut state = this.shared.lock();
                if state.over_budget() {
                    // Handlers are behind on what this client streamed: read no more until they
                    // catch up (they wake this task as they consume).
                    state.reader = Some(cx.waker().clone());
                    drop(state);
                    if round > 0 {
                        // The last batch's waiting calls are settled now, not once reading
                        // resumes: their path and metadata no longer hold its read buffer, and
                        // their deadlines run meanwhile.
                        this.update_deadlines();
                    }
                    this.timers.pause();
                    if this.timers.stale() && this.timers.poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                    return Poll::Pending;
                }
            }
            // Reading (again): a pause is not the peer's time (`Timers::resume`), nor is it
            // that of the calls waiting for their request message (`OpenCalls::excuse`).
            if this.timers.resume() && !this.opened.is_empty() {
                this.opened.excuse(Instant::now());
            }
            // Frames left in the read buffer by a batch cut short (`backlog`) come before any
            // new read: the peer may have sent them all and be waiting.
            if !this.backlog {
                let n = match this.reader.poll_fill(cx) {
                    Poll::Pending => {
                        waiting = true;
                        break;
                    }
                    Poll::Ready(Ok(n)) => n,
                    Poll::Ready(Err(err)) => {
                        read_failed(&this.config.log_limit, this.conn_info.peer, &err);
                        return this.close(cx, None);
                    }
                };
                if n == 0 {
                    // The client closed: nobody is left to answer, so stop its handlers.
                    return this.close(cx, None);
                }
            }
            this.backlog = match this.take_frames(cx) {
                Ok(cut_short) => cut_short,
                Err(closed) => return closed,
            };
            // The streams this batch fed answer now, in the same write as its unary calls.
            this.poll_locals();
            this.reader.settle();
            let mut state = this.shared.lock();
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                drop(state);
                tracing::debug!(peer = ?this.conn_info.peer, error = %err, "connection write failed");
                return this.close(cx, None);
            }
            if this.draining && this.opened.is_empty() && state.running.is_empty() {
                // A CANCEL in this batch may have ended the last call: check again at the top.
                drop(state);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if this.backlog && state.outbox.buffered() > HIGH_WATER {
                // The client is not reading its answers: the rest of what it sent waits in the
                // read buffer until the write buffer drains (the flush above registered for it).
                // The timer is armed for the deadlines as they are now: the keepalive is what
                // ends a client that never reads (`tests/hostile/unread_keepalive.rs`).
                drop(state);
                this.update_deadlines();
                this.timers.pause();
                if this.timers.stale() && this.timers.poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            over_budget = state.over_budget();
            this.running_hint.set(state.running.len());
            drop(state);
            if this.backlog && this.wait_for_aborted(cx) {
                // Woken when the oldest cancelled handler is gone (`aborted.rs`), not before: a
                // pause like the others, excused when reading resumes (`Timers::resume`).
                this.timers.pause();
                waiting = true;
                break;
            }
        }
        this.update_deadlines();
        if !waiting || (this.timers.stale() && this.timers.poll(cx).is_ready()) {
            // More to read (yield to other tasks first), or a deadline already past (a clock
            // jump, a paused-clock test): come back at once.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Logs why reading a connection failed. A TLS error (a record that does not decrypt, bytes
/// that are not TLS, a fatal alert) is a broken or hostile client an operator should see: WARN,
/// within the protocol errors' budget. Anything else (a reset, an end without close_notify) is
/// what clients do every day: DEBUG.
pub(super) fn read_failed(
    limit: &LogLimit,
    peer: Option<std::net::SocketAddr>,
    err: &std::io::Error,
) {
    #[cfg(feature = "tls")]
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        use crate::log_limit::{warn_limited, Kind};
        let why = crate::tls::explain_session_error(tls);
        warn_limited!(limit, Kind::ProtocolError, { ?peer, },
            "closing connection: TLS error from the client: {why}");
        return;
    }
    #[cfg(not(feature = "tls"))]
    let _ = limit;
    tracing::debug!(?peer, error = %err, "connection read failed");
}
