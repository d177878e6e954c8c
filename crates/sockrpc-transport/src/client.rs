//! `ClientConnection`: many calls multiplexed over one stream.
//!
//! ```text
//!  caller task ──encode OPEN+MESSAGE──▶ Outbox ──write──▶ socket
//!       ▲            (flushes itself when it is the only call in flight)
//!       │ wake
//!  driver task ◀──read── socket: frames routed to calls by call id
//! ```
//!
//! A call's future writes its own frames. When other calls are in flight it leaves the flush to
//! the driver task instead, so that their frames go out together in one write. The driver is the
//! one reader: it decodes frames and completes the matching calls, in whatever order the server
//! answers.

use crate::codec::{DecodeError, FrameDecoder};
use crate::outbox::{BoxWriter, Outbox, HIGH_WATER};
use bytes::{Bytes, BytesMut};
use pin_project_lite::pin_project;
use sockrpc_protocol::frame::{self, Frame, PREFACE};
use sockrpc_protocol::{Code, Limits, MetadataMap, MethodPath, Request, Response, Status};
use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{ready, Context, Poll, Waker},
    time::Duration,
};
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::Decoder;

/// A boxed read half.
pub type BoxReader = Pin<Box<dyn AsyncRead + Send + Sync>>;

/// Reads per wake-up before the driver yields, so one busy connection cannot starve others
/// sharing its thread.
const READS_PER_POLL: usize = 16;

/// One call waiting for its answer.
#[derive(Debug, Default)]
struct Slot {
    headers: MetadataMap,
    message: Option<Bytes>,
    extra_messages: bool,
    done: Option<Result<Response<Bytes>, Status>>,
    waker: Option<Waker>,
}

struct State {
    outbox: Outbox,
    calls: HashMap<u32, Slot>,
    next_id: u32,
    /// Why the connection can take no more calls (closed, failed, draining, ids spent).
    closed: Option<Status>,
    /// Set when the server sent GOAWAY: calls above this id were never processed.
    goaway: Option<u32>,
    /// Every user handle is gone: the driver ends once the last call does.
    abandoned: bool,
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
    peer: Option<SocketAddr>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind, still consistent enough to
        // fail the remaining calls; poisoning must not turn one panic into many.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
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
        let writer: BoxWriter = Box::pin(writer);
        let mut outbox = Outbox::new(writer);
        // The preface rides along with the first call's frames: no extra round trip.
        outbox.buf_mut().extend_from_slice(&PREFACE);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outbox,
                calls: HashMap::new(),
                next_id: 1,
                closed: None,
                goaway: None,
                abandoned: false,
            }),
            limits,
            peer,
        });
        let driver = Driver {
            shared: Arc::clone(&shared),
            reader: Box::pin(reader),
            decoder: FrameDecoder::new(limits),
            rbuf: BytesMut::with_capacity(16 * 1024),
            wake: Vec::new(),
        };
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

    /// Starts a connection over a TCP stream, split without a lock.
    pub fn spawn_tcp(stream: tokio::net::TcpStream, limits: Limits) -> Self {
        let peer = stream.peer_addr().ok();
        let (reader, writer) = stream.into_split();
        Self::spawn(reader, writer, limits, peer)
    }

    /// The server's address, when known.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.handle.shared.peer
    }

    /// Calls in flight.
    pub fn in_flight(&self) -> usize {
        self.handle.shared.lock().calls.len()
    }

    /// Whether the connection takes no new calls: it failed, closed, or the server is draining.
    pub fn is_closed(&self) -> bool {
        self.handle.shared.lock().closed.is_some()
    }

    /// Why the connection takes no new calls, if it does not.
    pub fn closed_reason(&self) -> Option<Status> {
        self.handle.shared.lock().closed.clone()
    }

    /// Starts a unary call: sends `request` to `path` and waits for the answer, for at most the
    /// request's timeout.
    pub fn unary(&self, path: MethodPath, request: Request<Bytes>) -> ResponseFuture {
        let deadline = request.timeout().map(|t| Instant::now() + t);
        ResponseFuture {
            conn: self.clone(),
            state: CallState::Start { path, request },
            sleep: deadline.map(tokio::time::sleep_until),
        }
    }
}

enum CallState {
    Start {
        path: MethodPath,
        request: Request<Bytes>,
    },
    Waiting {
        id: u32,
    },
    Done,
}

pin_project! {
    /// The answer to a unary call. Dropping it before it completes cancels the call on the
    /// server (a CANCEL frame), which stops the handler.
    pub struct ResponseFuture {
        conn: ClientConnection,
        state: CallState,
        #[pin]
        sleep: Option<Sleep>,
    }

    impl PinnedDrop for ResponseFuture {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let CallState::Waiting { id } = *this.state {
                let shared = &this.conn.handle.shared;
                let mut state = shared.lock();
                if let Some(slot) = state.calls.remove(&id) {
                    if slot.done.is_none() && state.closed.is_none() {
                        frame::encode_cancel(state.outbox.buf_mut(), id);
                        state.outbox.wake_driver();
                    }
                }
            }
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn start_call(
    shared: &Shared,
    cx: &mut Context<'_>,
    path: &MethodPath,
    request: Request<Bytes>,
) -> Result<u32, Status> {
    let limits = &shared.limits;
    let (metadata, message, timeout) = request.into_parts();
    if message.len() > limits.max_message_size {
        return Err(Status::resource_exhausted(format!(
            "request message of {} bytes exceeds the limit of {}",
            message.len(),
            limits.max_message_size
        )));
    }
    frame::check_metadata(&metadata, limits).map_err(Status::resource_exhausted)?;
    let mut state = shared.lock();
    if let Some(status) = &state.closed {
        return Err(status.clone());
    }
    if state.outbox.buffered() > HIGH_WATER {
        return Err(Status::resource_exhausted(
            "connection write buffer is full: the server is not reading",
        ));
    }
    let id = state.next_id;
    if id == u32::MAX {
        state.closed = Some(Status::unavailable("connection has used all its call ids"));
    }
    state.next_id = id.wrapping_add(1);
    let alone = state.calls.is_empty();
    let buf = state.outbox.buf_mut();
    frame::encode_open(buf, id, timeout, path, &metadata, false);
    frame::encode_message(buf, id, true, &message);
    state.calls.insert(
        id,
        Slot {
            waker: Some(cx.waker().clone()),
            ..Slot::default()
        },
    );
    if alone {
        // Nobody else is waiting on this connection: write now, from this task, rather than
        // pay a wake-up of the driver.
        state.outbox.flush_or_hand_off(cx);
    } else {
        // Others are in flight: their frames and ours leave together when the driver runs.
        state.outbox.wake_driver();
    }
    Ok(id)
}

impl Future for ResponseFuture {
    type Output = Result<Response<Bytes>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let shared = Arc::clone(&this.conn.handle.shared);
        if let CallState::Start { .. } = this.state {
            let CallState::Start { path, request } = std::mem::replace(this.state, CallState::Done)
            else {
                unreachable!("matched above")
            };
            match start_call(&shared, cx, &path, request) {
                Ok(id) => *this.state = CallState::Waiting { id },
                Err(status) => return Poll::Ready(Err(status)),
            }
        }
        let CallState::Waiting { id } = *this.state else {
            return Poll::Ready(Err(Status::internal("response polled after completion")));
        };
        {
            let mut state = shared.lock();
            let Some(slot) = state.calls.get_mut(&id) else {
                *this.state = CallState::Done;
                return Poll::Ready(Err(Status::internal("call vanished from its connection")));
            };
            if let Some(result) = slot.done.take() {
                state.calls.remove(&id);
                *this.state = CallState::Done;
                return Poll::Ready(result);
            }
            match &slot.waker {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => slot.waker = Some(cx.waker().clone()),
            }
        }
        if let Some(sleep) = this.sleep.as_mut().as_pin_mut() {
            ready!(sleep.poll(cx));
            // Leave `Waiting` so the drop handler still sends CANCEL for this id.
            return Poll::Ready(Err(Status::deadline_exceeded(
                "deadline exceeded while waiting for the server",
            )));
        }
        Poll::Pending
    }
}

/// The task that owns the read half: decodes frames and completes calls.
struct Driver {
    shared: Arc<Shared>,
    reader: BoxReader,
    decoder: FrameDecoder,
    rbuf: BytesMut,
    /// Wakers collected under the lock and called after it is released.
    wake: Vec<Waker>,
}

impl Driver {
    fn dispatch(&mut self, state: &mut State, frame: Frame) {
        match frame {
            Frame::Headers { call_id, metadata } => {
                if let Some(slot) = state.calls.get_mut(&call_id) {
                    slot.headers.extend(metadata);
                }
            }
            Frame::Message { call_id, body, .. } => {
                if let Some(slot) = state.calls.get_mut(&call_id) {
                    if slot.message.is_some() {
                        slot.extra_messages = true;
                    } else {
                        slot.message = Some(body);
                    }
                }
            }
            Frame::Oversized { call_id, length } => {
                let limit = self.shared.limits.max_message_size;
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
            } => {
                let Some(slot) = state.calls.get_mut(&call_id) else {
                    return;
                };
                let result = if code != Code::Ok {
                    let mut status = Status::with_details(code, message, details);
                    *status.metadata_mut() = trailers;
                    Err(status)
                } else if slot.extra_messages {
                    Err(Status::unimplemented(
                        "server sent more than one message for a unary call",
                    ))
                } else if let Some(body) = slot.message.take() {
                    let headers = std::mem::take(&mut slot.headers);
                    Ok(Response::from_parts(headers, body, trailers))
                } else {
                    Err(Status::unimplemented(
                        "server ended a unary call without a message",
                    ))
                };
                self.finish(state, call_id, result);
            }
            Frame::Ping { payload } => frame::encode_pong(state.outbox.buf_mut(), payload),
            Frame::GoAway {
                last_call_id,
                code,
                message,
            } => {
                tracing::debug!(last_call_id, %code, %message, "server sent goaway");
                state.goaway = Some(last_call_id);
                if state.closed.is_none() {
                    state.closed = Some(Status::unavailable(format!(
                        "server is draining this connection: {message}"
                    )));
                }
                let refused: Vec<u32> = state
                    .calls
                    .keys()
                    .copied()
                    .filter(|id| *id > last_call_id)
                    .collect();
                for id in refused {
                    self.finish(
                        state,
                        id,
                        Err(Status::unavailable(
                            "server is shutting down; the call was not processed",
                        )),
                    );
                }
            }
            // Servers do not open or cancel calls; credit comes with streaming.
            Frame::Pong { .. }
            | Frame::Window { .. }
            | Frame::Open { .. }
            | Frame::Cancel { .. } => {}
        }
    }

    fn finish(&mut self, state: &mut State, call_id: u32, result: Result<Response<Bytes>, Status>) {
        if let Some(slot) = state.calls.get_mut(&call_id) {
            if slot.done.is_none() {
                slot.done = Some(result);
                if let Some(waker) = slot.waker.take() {
                    self.wake.push(waker);
                }
            }
        }
    }

    /// Fails every call and refuses new ones.
    fn fail_all(&mut self, status: Status) {
        let mut state = self.shared.lock();
        if state.closed.is_none() {
            state.closed = Some(status.clone());
        }
        for slot in state.calls.values_mut() {
            if slot.done.is_none() {
                slot.done = Some(Err(status.clone()));
                if let Some(waker) = slot.waker.take() {
                    self.wake.push(waker);
                }
            }
        }
        drop(state);
        self.wake.drain(..).for_each(Waker::wake);
    }

    fn read_error(err: DecodeError) -> Status {
        match err {
            DecodeError::Io(err) => Status::from_io_error(&err),
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
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                drop(state);
                this.fail_all(Status::unavailable(format!(
                    "connection write failed: {err}"
                )));
                return Poll::Ready(());
            }
            if state.abandoned && state.calls.is_empty() {
                // Nobody can start another call: say goodbye with a FIN and stop.
                let _ = state.outbox.poll_shutdown(cx);
                return Poll::Ready(());
            }
        }
        for _ in 0..READS_PER_POLL {
            if this.rbuf.capacity() - this.rbuf.len() < 4096 {
                let want = this
                    .decoder
                    .bytes_wanted(this.rbuf.len())
                    .clamp(16 * 1024, 256 * 1024);
                this.rbuf.reserve(want);
            }
            let n = match tokio_util::io::poll_read_buf(this.reader.as_mut(), cx, &mut this.rbuf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => {
                    this.fail_all(Status::from_io_error(&err));
                    return Poll::Ready(());
                }
            };
            if n == 0 {
                this.fail_all(Status::unavailable("connection closed by the server"));
                return Poll::Ready(());
            }
            let shared = Arc::clone(&this.shared);
            let mut state = shared.lock();
            loop {
                match this.decoder.decode(&mut this.rbuf) {
                    Ok(Some(frame)) => this.dispatch(&mut state, frame),
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(peer = ?shared.peer, error = %err, "closing connection");
                        drop(state);
                        this.fail_all(Self::read_error(err));
                        return Poll::Ready(());
                    }
                }
            }
            if state.outbox.buffered() > 0 {
                let _ = state.outbox.poll_flush(cx);
            }
            drop(state);
            this.wake.drain(..).for_each(Waker::wake);
        }
        // Still readable after many reads: let other tasks run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The default time a client waits for a connection to be set up.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
