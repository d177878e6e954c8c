//! `ClientConnection`: many calls multiplexed over one stream.
//!
//! ```text
//!  caller task ──encode OPEN+MESSAGE──▶ Outbox ──write──▶ socket
//!       ▲            (flushes itself when it is the only call in flight)
//!       │ wake
//!  driver task ◀──read── socket: frames routed to calls by call id; keepalive PINGs
//! ```
//!
//! A call's future writes its own frames. When other calls are in flight it leaves the flush to
//! the driver task instead, so that their frames go out together in one write. The driver is the
//! one reader: it decodes frames and completes the matching calls, in whatever order the server
//! answers.
//!
//! - `call.rs`: a call's future (encode, wait, cancel on drop).
//! - `driver.rs`: the reader task; unary deadlines (one timer); keepalive.
//! - `stream.rs`: a streaming call's two halves.
//! - `table.rs`: the calls in flight, by id.
//! - `room.rs`: calls waiting for room under the server's limit of calls in flight.
//! - `answers.rs`: the answer window, what this side grants the server for streamed answers.
//! - `credit.rs`: the connection window the server grants, and the senders waiting for it.
//! - `options.rs`: a connection's settings (limits, keepalive, close notification).
//! - `shutdown.rs`: closing it from this side, gracefully or at once, and waiting for its end.

mod answers;
mod call;
#[cfg(test)]
mod closing_tests;
mod credit;
#[cfg(test)]
mod credit_flagged_tests;
#[cfg(test)]
mod credit_tests;
#[cfg(test)]
mod deadline_tests;
mod driver;
#[cfg(test)]
mod goaway_tests;
mod inbound;
#[cfg(test)]
mod leave_tests;
mod limit;
mod observe;
mod options;
mod room;
#[cfg(test)]
mod scripted_tests;
mod shutdown;
mod stream;
mod table;
#[cfg(test)]
mod waiter_tests;

pub use call::ResponseFuture;
pub use options::{ConnectionOptions, Keepalive, DEFAULT_CONNECT_TIMEOUT};
pub use room::{RoomFuture, RoomPass};
pub use stream::{StreamReceiver, StreamSender};

use crate::codec::FrameDecoder;
use crate::outbox::{BoxWriter, Outbox};
use crate::reader::FrameReader;
use bytes::Bytes;
use driver::Driver;
use sockrpc_protocol::frame::{self, PREFACE};
use sockrpc_protocol::{Limits, MetadataMap, MethodPath, Request, Response, Status};
use std::{
    net::SocketAddr,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    sync::{Arc, Mutex, MutexGuard},
    task::Waker,
};
use table::CallTable;
use tokio::io::AsyncRead;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A boxed read half.
pub type BoxReader = Pin<Box<dyn AsyncRead + Send + Sync>>;

/// One call waiting for its answer.
#[derive(Debug, Default)]
struct Slot {
    headers: MetadataMap,
    /// The HEADERS' encoding fields (`FLAG_ENCODING`).
    encoding: Option<sockrpc_protocol::EncodingFields>,
    message: Option<Bytes>,
    /// The MESSAGE carried `FLAG_COMPRESSED`.
    compressed: bool,
    extra_messages: bool,
    /// The call's HEADERS arrived: a server sends one, so a second is refused rather than
    /// added to what the call holds (a server repeating it would grow that without bound).
    headers_seen: bool,
    done: Option<Result<Response<Bytes>, Status>>,
    waker: Option<Waker>,
    /// Set for streaming calls, whose messages queue up instead.
    stream: Option<Box<StreamSlot>>,
    /// When a unary call gives up waiting: the driver's timer fails it then (see
    /// `State::soonest_deadline`).
    deadline: Option<Instant>,
    /// Where the call's OPEN starts in the outbox's byte count (`Outbox::position`): if the
    /// connection's write fails before the writer took that byte, the server never saw the
    /// call, which may then go elsewhere (unary calls only).
    sent_from: Option<u64>,
}

/// The state of a streaming call: its response head, its inbound queue, its send credit.
#[derive(Debug, Default)]
struct StreamSlot {
    headers: Option<MetadataMap>,
    /// The HEADERS' encoding fields (`FLAG_ENCODING`).
    encoding: Option<sockrpc_protocol::EncodingFields>,
    head_waker: Option<Waker>,
    inbound: crate::flow::Inbound,
    outbound: crate::flow::Outbound,
    /// The call has ended on the server's side and is counted in `State::ended_streams`
    /// (see [`State::stream_ended`]).
    ended: bool,
    /// The length of a queued answer with END_STREAM (a one-message answer, which the server
    /// does not count against the answer window), the last in the queue: not credited.
    uncounted: Option<usize>,
}

impl StreamSlot {
    fn end(&mut self, end: Result<MetadataMap, Status>) {
        self.inbound.finish(end);
        self.wake_all();
    }

    /// The client cancelled the call: unless the server's end has arrived, messages that arrived
    /// and were not read are dropped, and the call ends with `status`.
    fn abort(&mut self, status: Status) {
        self.inbound.abort(status);
        self.wake_all();
    }

    fn wake_all(&mut self) {
        if let Some(waker) = self.head_waker.take() {
            waker.wake();
        }
        self.outbound.wake();
    }
}

struct State {
    outbox: Outbox,
    calls: CallTable,
    next_id: u32,
    /// Why the connection can take no more calls (closed, failed, draining, ids spent).
    closed: Option<Status>,
    /// Set when the server sent GOAWAY: calls above this id (the lowest any GOAWAY named)
    /// were never processed.
    goaway: Option<u32>,
    /// Call ids looked up, or ring positions walked, to find the calls GOAWAYs refused.
    #[cfg(test)]
    goaway_looked: usize,
    /// That GOAWAY had FLAG_RETIRE: the server retired the connection (idle, old), not refused it.
    retired: bool,
    /// The server's GOAWAY said it closes the connection for a protocol error (`INTERNAL`): the
    /// status the calls it names as received fail with when the connection then ends, rather
    /// than the bare "connection closed" of an ordinary close.
    goaway_failure: Option<Status>,
    /// Every user handle is gone, or the owner closed it: the driver ends once the last call does.
    abandoned: bool,
    /// The owner closed it at once (`close_now`): the driver fails every call with this and ends.
    aborted: Option<Status>,
    /// When the last call ended (or the connection opened), for idle timeouts.
    idle_since: Instant,
    /// What the driver's timer is armed for: the soonest unary deadline when it was set. It may
    /// be stale (that call ended); the timer then goes off early, the driver finds the real
    /// soonest, and re-arms. A new call wakes the driver only when its deadline comes sooner,
    /// so calls that share one timeout cost the timer nothing.
    soonest_deadline: Option<Instant>,
    /// The server's SETTINGS announced `CAP_FOLDED_REQUEST`: a unary request message of up to
    /// `MAX_FOLDED_MESSAGE` bytes goes inside its OPEN (one frame per request, not two).
    folds_request: bool,
    /// Calls waiting for room under the server's limit (`Shared::max_calls`).
    room: room::RoomQueue,
    /// Stream senders waiting for the write buffer to drain below `HIGH_WATER`
    /// ([`StreamSender::poll_ready`]): woken a few at a time, in the order they parked, once a
    /// flush brings it down to `turns::RESUME_AT` (`turns.rs`).
    drain_waiters: crate::turns::TurnQueue,
    /// Stream senders waiting for connection credit: woken a few at a time, in the order they
    /// parked, once the server's WINDOW on call 0 opens the window (not by every flush, as they
    /// would be in `drain_waiters`; `credit.rs`).
    credit_waiters: crate::turns::TurnQueue,
    /// The server's SETTINGS announced `CAP_CONNECTION_WINDOW`: stream messages keep what they
    /// charge (`frame::message_charge`) outstanding under `frame::CONNECTION_WINDOW`.
    connection_window: bool,
    /// Charges of stream messages sent and not yet credited back by the server.
    connection_outstanding: usize,
    /// Streaming calls still in `calls` (their receiver has not read their end yet) that the
    /// server no longer counts under its limit: their END arrived, or this side cancelled them.
    ended_streams: usize,
    /// The server's SETTINGS announced `CAP_CHARGED`: it credits the request messages of our
    /// streams (all opened with `FLAG_CHARGED`) as their `frame::message_charge`, so they count
    /// so against the stream window.
    charged_requests: bool,
    /// The server's SETTINGS announced `CAP_ANSWER_WINDOW`: it keeps what it streams to us
    /// under the answer window we grant (`answers.rs`).
    answer_window: bool,
    /// Charges of streamed answers received and not yet consumed or dropped (`answers.rs`).
    answers_held: usize,
    /// Charges of streamed answers consumed or dropped and not yet credited back to the server.
    answers_unreported: usize,
    /// The server sent streamed answers past the answer window we granted: a protocol error,
    /// on which the driver closes the connection.
    answers_overrun: bool,
}

impl State {
    /// The streaming state of call `id`, if it is a live streaming call.
    fn stream_mut(&mut self, id: u32) -> Option<&mut StreamSlot> {
        self.calls
            .get_mut(id)
            .and_then(|slot| slot.stream.as_deref_mut())
    }

    /// The streaming state of call `id`, to read.
    fn stream(&self, id: u32) -> Option<&StreamSlot> {
        self.calls.get(id).and_then(|slot| slot.stream.as_deref())
    }

    /// The id for a new call: the next one whose place in the table is free. Closes the
    /// connection to new calls when this is the last id; fails when none is left.
    fn next_call_id(&mut self, shared: &Shared) -> Result<u32, Status> {
        const SPENT: &str = "connection has used all its call ids";
        let Some(id) = self.calls.vacant_id(self.next_id) else {
            shared.close(self, Status::unavailable(SPENT));
            // Nothing was sent: the call may go on another connection.
            return Err(Status::not_processed(SPENT).never_sent());
        };
        if id == u32::MAX {
            shared.close(self, Status::unavailable(SPENT));
        }
        self.next_id = id.wrapping_add(1);
        Ok(id)
    }

    /// Puts a call whose OPEN is encoded in the table; its slot, empty, to fill in.
    fn add_call(&mut self, shared: &Shared, id: u32) -> &mut Slot {
        shared
            .in_flight
            .store(self.live_calls() + 1, Ordering::Relaxed);
        // Written only under the connection's lock: a plain add, no locked instruction.
        let started = shared.started.load(Ordering::Relaxed);
        shared.started.store(started + 1, Ordering::Relaxed);
        self.calls.insert(id)
    }

    fn remove_call(&mut self, shared: &Shared, id: u32) -> Option<Slot> {
        let slot = self.calls.remove(id)?;
        // Answers it holds unread are dropped with it: the server counted them.
        self.drop_held_answers(&slot);
        self.forget_ended(&slot);
        // A sender waiting when its call ended never comes back for its place.
        let room = self.outbox.buffered() <= crate::outbox::HIGH_WATER;
        self.drain_waiters.forget(id, room);
        self.leave_credit_line(id);
        self.call_ended(shared);
        Some(slot)
    }

    /// Notes a unary call's deadline: the driver re-arms its timer if this one comes sooner.
    fn watch_deadline(&mut self, deadline: Instant) {
        if self
            .soonest_deadline
            .is_none_or(|soonest| deadline < soonest)
        {
            self.soonest_deadline = Some(deadline);
            self.outbox.wake_driver();
        }
    }

    /// [`remove_call`](Self::remove_call) for a call whose slot nobody needs: dropped in place.
    /// Unary calls only: a streaming slot may count among `ended_streams`.
    fn discard_call(&mut self, shared: &Shared, id: u32) {
        if self.calls.discard(id) {
            self.call_ended(shared);
        }
    }

    fn call_ended(&mut self, shared: &Shared) {
        shared.in_flight.store(self.live_calls(), Ordering::Relaxed);
        if self.calls.is_empty() {
            self.idle_since = Instant::now();
            if self.abandoned {
                // The driver ends an abandoned connection once its last call is gone, but it
                // looks only when woken: a call removed by its own future or receiver (after
                // the driver delivered its end) must wake it, or the connection stays open.
                self.outbox.wake_driver();
            }
        }
        self.wake_for_room(shared);
    }
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
    peer: Option<SocketAddr>,
    /// Mirrors `calls.len()` so a pool can pick the least loaded connection without locking each.
    in_flight: AtomicUsize,
    /// Calls ever started here.
    started: AtomicU64,
    /// Mirrors `closed.is_some()`, read on every call by the pool.
    closed: AtomicBool,
    /// The server's limit of calls in flight here, from its SETTINGS; `usize::MAX` until one
    /// arrives, or when the server announced none.
    max_calls: AtomicUsize,
    /// The server's metadata limit from its SETTINGS (`inbound.rs`): 0 until we sent ours,
    /// `usize::MAX` while it announced none.
    server_metadata: AtomicUsize,
    /// Mirrors the room queue's length: calls waiting for room under that limit.
    waiting: AtomicUsize,
    /// Set once the server's preface has arrived: the connection is known to speak sockrpc.
    handshaken: AtomicBool,
    /// Woken when the handshake completes, and when the connection stops taking new calls
    /// (`ClientConnection::ready`, `ClientConnection::closing`).
    handshake: Notify,
    /// Set when the peer's first bytes were no sockrpc preface (an HTTP or TLS server, another
    /// protocol version): another connection there would meet the same.
    foreign: AtomicBool,
    /// Set as the driver ends (its socket released); `ended` wakes who waits for it.
    terminated: AtomicBool,
    ended: Notify,
    /// Set when the connection closed for a frame that broke the protocol (a malformed
    /// SETTINGS, an unknown frame type, ...).
    broken: AtomicBool,
    /// Set when the driver was dropped unfinished: the runtime it ran on shut down, not the
    /// server (`ClientConnection::lost_with_runtime`).
    runtime_gone: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to
        // fail the remaining calls; poisoning must not turn one panic into many.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn close(&self, state: &mut State, status: Status) {
        // Calls waiting for room fail too, even those a graceful close let drain (`room.rs`).
        state.room.stop_draining();
        state.room.wake_all();
        self.close_to_new_calls(state, status);
    }

    /// [`close`](Self::close), but the calls waiting for room keep waiting (a graceful close).
    fn close_to_new_calls(&self, state: &mut State, status: Status) {
        let first = state.closed.is_none();
        if first {
            state.closed = Some(status);
        }
        self.closed.store(true, Ordering::Release);
        // Wake anyone waiting for the handshake: it will not come now.
        self.handshake.notify_waiters();
        if first {
            // Once: a server repeating GOAWAY (22 bytes a frame) made every stream sender
            // waiting for room or credit look again per frame, and nothing had changed for
            // them (`tests/hostile/credit_wakes.rs`).
            state.drain_waiters.wake_all();
            state.credit_waiters.wake_all();
        }
        state.note_waiting(self);
    }
}

struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.abandoned = true;
        state.outbox.wake_driver();
    }
}

/// The client end of one connection. Cheap to clone; the connection closes when the last clone
/// and the last call on it are gone.
#[derive(Clone)]
pub struct ClientConnection {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("peer", &self.handle.shared.peer)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl ClientConnection {
    /// Starts a connection over `reader` and `writer`: queues our preface and spawns the driver
    /// task on the current tokio runtime.
    pub fn spawn<R, W>(reader: R, writer: W, limits: Limits, peer: Option<SocketAddr>) -> Self
    where
        R: AsyncRead + Send + Sync + 'static,
        W: tokio::io::AsyncWrite + Send + Sync + 'static,
    {
        Self::spawn_with(reader, writer, ConnectionOptions::new(limits), peer)
    }

    /// Starts a connection with all options.
    pub fn spawn_with<R, W>(
        reader: R,
        writer: W,
        options: ConnectionOptions,
        peer: Option<SocketAddr>,
    ) -> Self
    where
        R: AsyncRead + Send + Sync + 'static,
        W: tokio::io::AsyncWrite + Send + Sync + 'static,
    {
        let writer: BoxWriter = Box::pin(writer);
        let mut outbox = Outbox::new(writer);
        // The preface rides along with the first call's frames (no extra round trip), and so
        // does what this client reads beyond version 1's base (an older server ignores it).
        outbox.buf_mut().extend_from_slice(&PREFACE);
        frame::encode_settings(outbox.buf_mut(), frame::CLIENT_CAPABILITIES, 0);
        let limits = options.limits;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outbox,
                calls: CallTable::default(),
                next_id: 1,
                closed: None,
                goaway: None,
                #[cfg(test)]
                goaway_looked: 0,
                retired: false,
                goaway_failure: None,
                abandoned: false,
                aborted: None,
                idle_since: Instant::now(),
                soonest_deadline: None,
                folds_request: false,
                room: room::RoomQueue::default(),
                drain_waiters: crate::turns::TurnQueue::default(),
                credit_waiters: crate::turns::TurnQueue::default(),
                connection_window: false,
                connection_outstanding: 0,
                ended_streams: 0,
                charged_requests: false,
                answer_window: false,
                answers_held: 0,
                answers_unreported: 0,
                answers_overrun: false,
            }),
            limits,
            peer,
            in_flight: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            max_calls: AtomicUsize::new(usize::MAX),
            server_metadata: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            handshaken: AtomicBool::new(false),
            handshake: Notify::new(),
            foreign: AtomicBool::new(false),
            terminated: AtomicBool::new(false),
            ended: Notify::new(),
            broken: AtomicBool::new(false),
            runtime_gone: AtomicBool::new(false),
        });
        let driver = Driver::new(
            Arc::clone(&shared),
            FrameReader::new(Box::pin(reader), FrameDecoder::new(limits)),
            options.keepalive,
            options.on_close,
        );
        tokio::spawn(driver);
        ClientConnection {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Starts a connection over any duplex stream (split in two).
    pub fn spawn_io<T>(io: T, limits: Limits, peer: Option<SocketAddr>) -> Self
    where
        T: AsyncRead + tokio::io::AsyncWrite + Send + Sync + 'static,
    {
        let (reader, writer) = tokio::io::split(io);
        Self::spawn(reader, writer, limits, peer)
    }

    /// Starts a connection over a TCP stream, split without a lock, with `TCP_NODELAY` set as
    /// the pool's connections have it (Go sets it on every TCP connection): with Nagle on, a
    /// small call written while the one before is unacknowledged waits for the peer's delayed
    /// ACK, up to 40 ms. [`spawn_tcp_with`](Self::spawn_tcp_with) takes the stream as it is.
    pub fn spawn_tcp(stream: tokio::net::TcpStream, limits: Limits) -> Self {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        Self::spawn_tcp_with(stream, ConnectionOptions::new(limits))
    }

    /// Starts a connection over a TCP stream with all options.
    pub fn spawn_tcp_with(stream: tokio::net::TcpStream, options: ConnectionOptions) -> Self {
        let peer = stream.peer_addr().ok();
        let (reader, writer) = stream.into_split();
        Self::spawn_with(reader, writer, options, peer)
    }

    /// The server's address, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.handle.shared.peer
    }

    /// Waits until the server's preface has arrived (the handshake), or fails with the reason
    /// the connection closed first.
    pub async fn ready(&self) -> Result<(), Status> {
        let shared = &self.handle.shared;
        loop {
            let notified = shared.handshake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shared.handshaken.load(Ordering::Acquire) {
                return Ok(());
            }
            if let Some(status) = self.closed_reason() {
                return Err(status);
            }
            notified.await;
        }
    }

    /// Starts a unary call: sends `request` to `path` and waits for the answer, for at most the
    /// request's timeout.
    pub fn unary(&self, path: MethodPath, request: Request<Bytes>) -> ResponseFuture {
        ResponseFuture::new(self.clone(), path, request)
    }

    /// [`unary`](Self::unary) on this handle itself, which the call keeps: for a handle taken
    /// for one call (a pool's pick), it saves a clone and a drop of the handle (two locked
    /// instructions per call).
    pub fn into_unary(self, path: MethodPath, request: Request<Bytes>) -> ResponseFuture {
        ResponseFuture::new(self, path, request)
    }

    /// Fetches, over this connection, the answer of UDP call `(instance, udp_call_id)` whose
    /// reply did not fit a datagram: the server answers from its reply cache (the call already
    /// ran) after the call has passed its middleware; a method marked idempotent may run again.
    pub fn reissue(
        &self,
        path: MethodPath,
        request: Request<Bytes>,
        udp_call: (u64, u32),
    ) -> ResponseFuture {
        ResponseFuture::new(self.clone(), path, request).reissue(udp_call)
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }
}
