//! One server connection: read frames, run handlers, write answers.
//!
//! ```text
//!  socket ──read──▶ decoder ──OPEN, MESSAGE──▶ service.call ──poll once, here──┐
//!                                                    │ not done yet            │ done
//!                                                    ▼                         ▼
//!                                            spawned task ──answer──▶  Outbox ──write──▶ socket
//! ```
//!
//! A handler's future is first polled right here, on the connection's task. A handler that
//! answers without waiting (most do) is answered with no task hop at all, and answers to every
//! call in one read batch leave in one write. Only a handler that really waits is moved to a task
//! of its own, so a slow call never holds up the others on the connection.

use super::open::{OpenCalls, Opened};
use super::respond::{answer_now, pump, ServerRecv, ServerStream, Shared, INBOUND_BUDGET};
use crate::udp::{take_reissue, Lookup, ReplyCache};
use crate::{Body, Call, CallFuture, RouteService};
use bytes::BytesMut;
use sockrpc_protocol::frame::{self, Frame, PREFACE};
use sockrpc_protocol::{Code, Limits, MetadataMap, Request, Response, Status};
use sockrpc_transport::client::BoxReader;
use sockrpc_transport::outbox::{BoxWriter, Outbox, HIGH_WATER};
use sockrpc_transport::{DecodeError, FrameDecoder};
use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::Instrument;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    pub(crate) limits: Limits,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) ping_policy: super::PingPolicy,
    /// The UDP side's reply cache, when the server also serves UDP: TCP re-issues of truncated
    /// UDP calls are answered from it.
    pub(crate) reply_cache: Option<Arc<ReplyCache>>,
    /// Time a new connection has to send its preface.
    pub(crate) handshake_timeout: Duration,
}

const READS_PER_POLL: usize = 16;

/// The connection's task.
pub(crate) struct Connection<S> {
    service: S,
    shared: Arc<Shared>,
    reader: BoxReader,
    rbuf: BytesMut,
    decoder: FrameDecoder,
    peer: Option<SocketAddr>,
    config: ConnConfig,
    opened: OpenCalls,
    last_call_id: u32,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Runs until the client's preface arrives: a peer that connects and says nothing must not
    /// hold a connection slot forever.
    handshake: Option<Pin<Box<tokio::time::Sleep>>>,
    draining: bool,
    last_ping: Option<Instant>,
    ping_strikes: u32,
}

impl<S> Connection<S>
where
    S: RouteService + Send + 'static,
{
    pub(crate) fn new(
        service: S,
        reader: BoxReader,
        writer: BoxWriter,
        peer: Option<SocketAddr>,
        config: ConnConfig,
        shutdown: CancellationToken,
    ) -> Connection<S> {
        let mut outbox = Outbox::new(writer);
        outbox.buf_mut().extend_from_slice(&PREFACE);
        let handshake_timeout = config.handshake_timeout;
        Connection {
            service,
            shared: Arc::new(Shared::new(outbox, config.limits)),
            reader,
            rbuf: BytesMut::with_capacity(16 * 1024),
            decoder: FrameDecoder::new(config.limits),
            peer,
            config,
            opened: OpenCalls::default(),
            last_call_id: 0,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            draining: false,
            handshake: Some(Box::pin(tokio::time::sleep(handshake_timeout))),
            last_ping: None,
            ping_strikes: 0,
        }
    }

    fn in_flight(&self) -> usize {
        let state = self.shared.lock();
        self.opened.len() + state.running.len()
    }

    /// Handles one frame; an error closes the connection.
    fn on_frame(&mut self, cx: &mut Context<'_>, frame: Frame) -> Result<(), (Code, String)> {
        match frame {
            Frame::Open {
                call_id,
                timeout,
                path,
                metadata,
                end_stream,
                streaming,
            } => {
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
                self.ping_strikes = 0;
                let busy = self.in_flight() >= self.config.max_concurrent_calls;
                if self.draining {
                    self.answer(
                        call_id,
                        Err(Status::not_processed(
                            "server is shutting down; the call was not processed",
                        )),
                    );
                } else if busy {
                    self.answer(
                        call_id,
                        Err(Status::resource_exhausted(format!(
                            "too many calls in flight on this connection (limit {})",
                            self.config.max_concurrent_calls
                        ))),
                    );
                } else if streaming {
                    // The client streams its request: the handler starts now and reads the
                    // messages as they arrive.
                    let deadline = timeout.map(|t| Instant::now() + t);
                    let mut stream = ServerStream::default();
                    if end_stream {
                        stream.inbound.finish(Ok(MetadataMap::new()));
                    }
                    self.shared.lock().streams.insert(call_id, stream);
                    let body = Body::incoming(ServerRecv {
                        shared: Arc::clone(&self.shared),
                        call_id,
                    });
                    let opened = Opened {
                        path,
                        metadata,
                        deadline,
                        timeout,
                    };
                    self.dispatch(cx, call_id, opened, body);
                } else if end_stream {
                    self.answer(
                        call_id,
                        Err(Status::unimplemented(format!(
                            "{path} is unary and needs exactly one request message; none was sent"
                        ))),
                    );
                } else {
                    let deadline = timeout.map(|t| Instant::now() + t);
                    self.opened.insert(
                        call_id,
                        Opened {
                            path,
                            metadata,
                            deadline,
                            timeout,
                        },
                    );
                }
            }
            Frame::Message {
                call_id,
                body,
                end_stream,
            } => {
                if let Some(opened) = self.opened.remove(&call_id) {
                    self.dispatch(cx, call_id, opened, Body::once(body));
                } else {
                    let max = self.config.limits.max_message_size;
                    let mut state = self.shared.lock();
                    let len = body.len();
                    if let Some(stream) = state.streams.get_mut(&call_id) {
                        if stream.inbound.push(body, max).is_err() {
                            return Err((
                                Code::Internal,
                                format!("call {call_id} sent past its flow-control window"),
                            ));
                        }
                        if end_stream {
                            stream.inbound.finish(Ok(MetadataMap::new()));
                        }
                        state.inbound_bytes += len;
                    }
                }
            }
            Frame::End { call_id, .. } => {
                // From a client, END is its half-close: no more request messages.
                if let Some(stream) = self.shared.lock().streams.get_mut(&call_id) {
                    stream.inbound.finish(Ok(MetadataMap::new()));
                }
            }
            Frame::Window { call_id, credit } => {
                if let Some(stream) = self.shared.lock().streams.get_mut(&call_id) {
                    stream.outbound.credit(credit);
                }
            }
            Frame::Oversized { call_id, length } if self.opened.remove(&call_id).is_some() => {
                let limit = self.config.limits.max_message_size;
                self.answer(
                    call_id,
                    Err(Status::resource_exhausted(format!(
                        "request message of {length} bytes exceeds the limit of {limit}"
                    ))),
                );
            }
            Frame::Cancel { call_id } => {
                self.opened.remove(&call_id);
                let mut state = self.shared.lock();
                Shared::cancel_stream(&mut state, call_id);
                if let Some(Some(handle)) = state.running.remove(&call_id) {
                    handle.abort();
                }
            }
            Frame::Ping { payload } => {
                let policy = self.config.ping_policy;
                let now = Instant::now();
                let idle = self.in_flight() == 0;
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
                frame::encode_pong(self.shared.lock().outbox.buf_mut(), payload);
            }
            // A client's GOAWAY, PONG, HEADERS, END or WINDOW needs no action from a unary server.
            _ => {}
        }
        Ok(())
    }

    /// Starts a handler; answers inline when it completes at once.
    fn dispatch(&mut self, cx: &mut Context<'_>, call_id: u32, opened: Opened, body: Body) {
        let Opened {
            path,
            metadata,
            deadline,
            timeout,
        } = opened;
        let span = tracing::debug_span!(
            "rpc",
            method = %path,
            peer = ?self.peer,
            call_id,
            status = tracing::field::Empty,
            elapsed_us = tracing::field::Empty,
        );
        let started = (!span.is_disabled()).then(std::time::Instant::now);
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut metadata = metadata;
        let reissue = match &self.config.reply_cache {
            Some(cache) => take_reissue(&mut metadata).map(|key| (Arc::clone(cache), key)),
            None => None,
        };
        let mut request = Request::from_parts(metadata, body, remaining.or(timeout));
        request.set_remote_addr(self.peer);
        let future = match reissue {
            // A TCP re-issue of a truncated UDP call: the call already ran; answer from the
            // cache, never run it twice.
            Some((cache, (instance, udp_call_id))) => Box::pin(async move {
                match cache.wait(instance, udp_call_id, deadline).await {
                    Lookup::Done(answer) => answer.map(|response| response.map(Body::once)),
                    Lookup::InProgress => Err(Status::deadline_exceeded(
                        "the UDP call this re-issues is still running",
                    )),
                    Lookup::Missing => Err(Status::aborted(
                        "no cached reply for this UDP re-issue; not running the call again",
                    )),
                }
            }),
            None => {
                let call = Call::new(path, request);
                let _enter = span.enter();
                self.service.call(call)
            }
        };
        let mut future: CallFuture = match deadline {
            None => future,
            Some(deadline) => Box::pin(async move {
                match tokio::time::timeout_at(deadline, future).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::deadline_exceeded("deadline exceeded on the server")),
                }
            }),
        };
        let polled = {
            let _enter = span.enter();
            future.as_mut().poll(cx)
        };
        match polled {
            Poll::Ready(result) => {
                record(&span, started, &result);
                let streamed = {
                    let mut state = self.shared.lock();
                    answer_now(&mut state, call_id, result, &self.shared.limits)
                };
                if let Some(response) = streamed {
                    // Streamed answers are paced by the client's credit: they get a task.
                    let shared = Arc::clone(&self.shared);
                    let task = finish_call(shared, call_id, Ok(response), deadline);
                    self.spawn_call(call_id, task.instrument(span));
                }
            }
            Poll::Pending => {
                let shared = Arc::clone(&self.shared);
                let task_span = span.clone();
                let task = async move {
                    let result = future.await;
                    record(&task_span, started, &result);
                    finish_call(shared, call_id, result, deadline).await;
                };
                self.spawn_call(call_id, task.instrument(span));
            }
        }
    }

    /// Runs the rest of a call in a task of its own, registered so CANCEL can abort it.
    fn spawn_call(&self, call_id: u32, task: impl Future<Output = ()> + Send + 'static) {
        self.shared.lock().running.insert(call_id, None);
        let handle = tokio::spawn(task);
        if let Some(entry) = self.shared.lock().running.get_mut(&call_id) {
            *entry = Some(handle.abort_handle());
        }
    }

    /// Answers a call from the connection task (errors the connection itself decides on).
    fn answer(&self, call_id: u32, result: Result<Response<Body>, Status>) {
        let mut state = self.shared.lock();
        let streamed = answer_now(&mut state, call_id, result, &self.shared.limits);
        debug_assert!(
            streamed.is_none(),
            "the connection only answers with errors"
        );
    }

    fn abort_all(&mut self) {
        self.opened.clear();
        self.shared.abort_running();
    }

    fn close(&mut self, cx: &mut Context<'_>, reason: Option<(Code, String)>) -> Poll<()> {
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
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        // A connection dropped from outside (the server aborted, the grace period ran out) must
        // not leave handlers running: each holds the write half, which would keep the socket
        // open and answer calls after the server is gone.
        self.shared.abort_running();
    }
}

fn record(
    span: &tracing::Span,
    started: Option<std::time::Instant>,
    result: &Result<Response<Body>, Status>,
) {
    if let Some(started) = started {
        let code = match result {
            Ok(_) => Code::Ok,
            Err(status) => status.code(),
        };
        span.record("status", tracing::field::display(code));
        span.record("elapsed_us", started.elapsed().as_micros() as u64);
        tracing::debug!(parent: span, "call finished");
    }
}

/// Answers a call whose handler finished in its own task: at once, or by streaming; then
/// forgets it. A call cancelled meanwhile gets nothing.
async fn finish_call(
    shared: Arc<Shared>,
    call_id: u32,
    result: Result<Response<Body>, Status>,
    deadline: Option<Instant>,
) {
    let streamed = {
        let mut state = shared.lock();
        if !state.running.contains_key(&call_id) {
            return;
        }
        answer_now(&mut state, call_id, result, &shared.limits)
    };
    if let Some(response) = streamed {
        let pumping = pump(Arc::clone(&shared), call_id, response);
        let finished = match deadline {
            None => {
                pumping.await;
                true
            }
            Some(deadline) => tokio::time::timeout_at(deadline, pumping).await.is_ok(),
        };
        if !finished {
            let mut state = shared.lock();
            if state.remove_stream(call_id).is_some() {
                let status = Status::deadline_exceeded("deadline exceeded on the server");
                super::respond::encode_status(
                    state.outbox.buf_mut(),
                    call_id,
                    &status,
                    &shared.limits,
                );
            }
        }
    }
    std::future::poll_fn(|cx| {
        let mut state = shared.lock();
        state.running.remove(&call_id);
        if state.running.is_empty() {
            // A draining connection waits for its last handler to finish.
            state.outbox.wake_driver();
        }
        state.outbox.flush_or_hand_off(cx);
        Poll::Ready(())
    })
    .await;
}

impl<S> Future for Connection<S>
where
    S: RouteService + Send + Unpin + 'static,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(handshake) = this.handshake.as_mut() {
            if this.decoder.past_preface() {
                this.handshake = None;
            } else if handshake.as_mut().poll(cx).is_ready() {
                tracing::warn!(peer = ?this.peer, "closing connection: no preface in time");
                return this.close(cx, None);
            }
        }
        if !this.draining && this.shutdown.as_mut().poll(cx).is_ready() {
            this.draining = true;
            let mut state = this.shared.lock();
            frame::encode_goaway(
                state.outbox.buf_mut(),
                this.last_call_id,
                Code::Unavailable,
                "server is shutting down",
            );
        }
        {
            let mut state = this.shared.lock();
            state.outbox.set_driver(cx.waker());
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                drop(state);
                tracing::debug!(peer = ?this.peer, error = %err, "connection write failed");
                return this.close(cx, None);
            }
            if this.draining
                && this.opened.is_empty()
                && state.running.is_empty()
                && state.outbox.buffered() == 0
            {
                let _ = state.outbox.poll_shutdown(cx);
                return Poll::Ready(());
            }
            if state.outbox.buffered() > HIGH_WATER {
                // The client is not reading its answers: stop reading its requests until it does.
                return Poll::Pending;
            }
            state.wake_writers();
        }
        for _ in 0..READS_PER_POLL {
            {
                let mut state = this.shared.lock();
                if state.inbound_bytes > INBOUND_BUDGET {
                    // Handlers are behind on what this client streamed: read no more until they
                    // catch up (they wake this task as they consume).
                    state.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
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
                    tracing::debug!(peer = ?this.peer, error = %err, "connection read failed");
                    return this.close(cx, None);
                }
            };
            if n == 0 {
                // The client closed: nobody is left to answer, so stop its handlers.
                return this.close(cx, None);
            }
            loop {
                match this.decoder.decode(&mut this.rbuf) {
                    Ok(Some(frame)) => {
                        if let Err((code, reason)) = this.on_frame(cx, frame) {
                            tracing::warn!(peer = ?this.peer, %reason, "closing connection: protocol error");
                            return this.close(cx, Some((code, reason)));
                        }
                    }
                    Ok(None) => break,
                    Err(DecodeError::Frame(err)) => {
                        tracing::warn!(peer = ?this.peer, error = %err, "closing connection: protocol error");
                        return this.close(cx, Some((Code::Internal, err.to_string())));
                    }
                    Err(DecodeError::Io(err)) => {
                        tracing::debug!(peer = ?this.peer, error = %err, "connection read failed");
                        return this.close(cx, None);
                    }
                }
            }
            let mut state = this.shared.lock();
            if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
                drop(state);
                tracing::debug!(peer = ?this.peer, error = %err, "connection write failed");
                return this.close(cx, None);
            }
            if this.draining && this.opened.is_empty() && state.running.is_empty() {
                // A CANCEL in this batch may have ended the last call: check again at the top.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
