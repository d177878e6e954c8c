//! The driver: the one task that reads a client connection, completes calls, fails unary calls
//! whose deadline passed (one timer for all of them), and keeps the connection honest with
//! keepalive PINGs.

use super::inbound::{complete, Inbound};
use super::{Keepalive, Shared, State};
use crate::codec::DecodeError;
use crate::reader::FrameReader;
use crate::timer::{deadline_after, ConnTimer};
use sockrpc_protocol::frame::{self, FrameError};
use sockrpc_protocol::Status;
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

/// Keepalive state: when the next PING is due, or which PONG is awaited and until when.
pub(super) struct Pinger {
    pub(super) config: Keepalive,
    pub(super) timer: Pin<Box<Sleep>>,
    pub(super) awaiting: Option<u64>,
    seq: u64,
}

/// What [`Driver::tend`] found.
enum Tended {
    /// Go on to the frames read.
    Go,
    /// The driver is done: its connection was abandoned and said goodbye.
    Done,
    /// Writing failed: the calls fail, with this status, past this many bytes written.
    WriteFailed(Status, u64),
    /// The owner closed the connection at once: every call fails with this, and it ends.
    Aborted(Status),
}

/// How long calls wait, after a write failed, for the read side to end (see
/// [`WriteFailure`]). A reset connection's reads end at once; this bounds a stranger case.
const READ_OUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A write failed (the server reset the connection, say). The calls do not fail yet: the
/// server may have sent a GOAWAY just before, still unread in the socket (Linux hands out what
/// was received before a reset's error), naming the calls it never started, which may then go
/// on another connection. The driver reads on until the read side ends, at most [`READ_OUT`].
struct WriteFailure {
    status: Status,
    /// The outbox's byte count when the write failed: a call whose OPEN starts at or past it
    /// never left.
    written: u64,
    until: Pin<Box<Sleep>>,
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
    write_failed: Option<WriteFailure>,
    /// The driver ran to its end (see [`Drop`]).
    finished: bool,
}

/// Why the calls of a connection whose driver was dropped unfinished fail.
const RUNTIME_GONE: &str = "connection closed: the runtime running its reader shut down";

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped before its end: the runtime it was spawned on shut down (a client kept
            // in a static, whose connection one `#[tokio::test]` made, used by another test
            // running at the same time; the first returned). Calls in flight may belong to a
            // runtime that lives on, and nobody is left to complete them or to fire their
            // deadlines: they fail now, as on a broken connection, and those whose OPEN never
            // reached the socket as not processed (their channel sends them elsewhere). The
            // writer goes under the lock the bytes written are read with: a flush by a stream
            // sender on another runtime between the two would put on the wire an OPEN then
            // marked never sent, which a balanced channel would run again.
            let written = {
                let mut state = self.shared.lock();
                state.outbox.release_writer();
                state.outbox.written()
            };
            self.shared.runtime_gone.store(true, Ordering::Release);
            match self.write_failed.take() {
                Some(failure) => self.fail_all_unsent(failure.status, failure.written),
                None => self.fail_all_unsent(Status::unavailable(RUNTIME_GONE), written),
            }
        }
        let mut state = self.shared.lock();
        self.shared
            .close(&mut state, Status::unavailable("connection closed"));
        // The connection is over: its socket goes now, not when the caller drops the last
        // handle or stream half (which may be kept long after the call ended).
        state.outbox.release_writer();
        drop(state);
        self.shared.terminated.store(true, Ordering::Release);
        self.shared.ended.notify_waiters();
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
            write_failed: None,
            finished: false,
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
                pinger
                    .timer
                    .as_mut()
                    .reset(deadline_after(now, pinger.config.interval));
                continue;
            }
            pinger.seq = pinger.seq.wrapping_add(1);
            frame::encode_ping(state.outbox.buf_mut(), pinger.seq);
            let _ = state.outbox.poll_flush(cx);
            pinger.awaiting = Some(pinger.seq);
            pinger
                .timer
                .as_mut()
                .reset(deadline_after(now, pinger.config.timeout));
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
                    outbox.abandon(id, |buf| frame::encode_cancel(buf, id));
                }
            } else if soonest.is_none_or(|s| deadline < s) {
                soonest = Some(deadline);
            }
        }
        *soonest_deadline = soonest;
    }

    /// Fails every call and refuses new ones; after a failed write, with the write's failure
    /// (calls it never sent may go elsewhere).
    fn fail_all(&mut self, status: Status) {
        match self.write_failed.take() {
            Some(failure) => self.fail_all_unsent(failure.status, failure.written),
            None => self.fail_all_unsent(status, u64::MAX),
        }
    }

    /// [`fail_all`](Self::fail_all) after a failed write: a unary call whose OPEN starts at or
    /// past byte `written` never reached the socket, so it fails "not processed" and may be
    /// sent again elsewhere (the server just closed, say, and its GOAWAY was lost to a reset),
    /// and [never sent](Status::never_sent): a balanced channel picks again without counting
    /// an attempt. One whose OPEN starts before `written` (even if its message was cut short)
    /// may have reached the server, and fails with `status`.
    fn fail_all_unsent(&mut self, status: Status, written: u64) {
        let unsent =
            Status::not_processed(format!("{}; the call was never sent", status.message()))
                .never_sent();
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
    fn dispatch_buffered(
        reader: &mut FrameReader,
        inbound: &mut Inbound<'_>,
        state: &mut State,
    ) -> Result<(), DecodeError> {
        while let Some(frame) = reader.next_frame()? {
            inbound.dispatch(state, frame);
            if state.answers_overrun {
                // Past the answer window: the caller closes the connection.
                break;
            }
        }
        Ok(())
    }

    /// What a wake-up may be for besides a read, under the lock: the write buffer to flush
    /// (callers hand their batches to the driver), deadlines passed, room freed below the
    /// high-water mark, the last handle dropped.
    fn tend(
        shared: &Shared,
        state: &mut State,
        deadlines: &mut ConnTimer,
        wake: &mut Vec<Waker>,
        cx: &mut Context<'_>,
    ) -> Tended {
        state.outbox.set_driver(cx.waker());
        if let Some(status) = state.aborted.clone() {
            return Tended::Aborted(status);
        }
        // Bounded: after an expiry the soonest deadline left is in the future.
        for _ in 0..4 {
            match deadlines.poll_at(state.soonest_deadline, cx) {
                Poll::Ready(()) => Self::expire(wake, state, Instant::now()),
                Poll::Pending => break,
            }
        }
        if let Poll::Ready(Err(err)) = state.outbox.poll_flush(cx) {
            return Tended::WriteFailed(
                Status::unavailable(format!("connection write failed: {err}")),
                state.outbox.written(),
            );
        }
        // Calls that waited for the write buffer to drain below its high-water mark.
        state.wake_for_room(shared);
        if state.abandoned && state.calls.is_empty() && !state.room.drains() {
            // Nobody can start another call (those a graceful close let drain are sent): say
            // goodbye with a FIN and stop.
            let _ = state.outbox.poll_shutdown(cx);
            return Tended::Done;
        }
        Tended::Go
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
                    "a TLS record (a TLS port? connect with tls://, or on a Unix socket an \
                     endpoint with `.tls(...)`)"
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
        let polled = this.drive(cx);
        this.finished = polled.is_ready();
        polled
    }
}

impl Driver {
    /// One poll: the reads, frames and timers that are ready.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        if let Some(failure) = this.write_failed.as_mut() {
            if failure.until.as_mut().poll(cx).is_ready() {
                this.fail_all(Status::unavailable("connection write failed"));
                return Poll::Ready(());
            }
        }
        if !this.poll_keepalive(cx) {
            return Poll::Ready(());
        }
        for round in 0..READS_PER_POLL {
            // The read goes first, outside the lock (callers on other threads encode under
            // it); then one lock serves the rest of the wake-up (first round) and the frames
            // read, where each took a lock of its own (two locked instructions each).
            let read = this.reader.poll_fill(cx);
            if round > 0 && read.is_pending() {
                // The rounds before left nothing to do under the lock.
                return Poll::Pending;
            }
            let Driver {
                shared,
                reader,
                wake,
                pinger,
                deadlines,
                write_failed,
                ..
            } = &mut *this;
            let mut state = shared.lock();
            if round == 0 {
                match Self::tend(shared, &mut state, deadlines, wake, cx) {
                    Tended::Go => {}
                    Tended::Done => return Poll::Ready(()),
                    Tended::Aborted(status) => {
                        drop(state);
                        this.fail_all(status);
                        return Poll::Ready(());
                    }
                    Tended::WriteFailed(status, written) => {
                        if write_failed.is_none() {
                            // No new call here; those sent wait for what the server said.
                            shared.close(&mut state, status.clone());
                            let mut until = Box::pin(tokio::time::sleep(READ_OUT));
                            let _ = until.as_mut().poll(cx);
                            *write_failed = Some(WriteFailure {
                                status,
                                written,
                                until,
                            });
                        }
                    }
                }
            }
            let n = match read {
                Poll::Pending => {
                    drop(state);
                    // Callers whose deadline passed.
                    wake.drain(..).for_each(Waker::wake);
                    return Poll::Pending;
                }
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(err)) => {
                    let status = state
                        .goaway_failure
                        .take()
                        .unwrap_or_else(|| Status::from(err));
                    drop(state);
                    this.fail_all(status);
                    return Poll::Ready(());
                }
            };
            if n == 0 {
                // The server said goodbye (a FIN): ours back, so a server that lingers for it
                // (`server/linger.rs`) closes now rather than at its linger timeout.
                let _ = state.outbox.poll_shutdown(cx);
                let status = state
                    .goaway_failure
                    .take()
                    .unwrap_or_else(|| Status::unavailable("connection closed by the server"));
                drop(state);
                this.fail_all(status);
                return Poll::Ready(());
            }
            let mut inbound = Inbound {
                shared,
                wake,
                pinger,
            };
            if let Err(err) = Self::dispatch_buffered(reader, &mut inbound, &mut state) {
                tracing::warn!(peer = ?shared.peer, error = %err, "closing connection");
                match &err {
                    DecodeError::Frame(
                        FrameError::BadPreface | FrameError::UnsupportedVersion(_),
                    ) => {
                        shared.foreign.store(true, Ordering::Release);
                    }
                    DecodeError::Frame(_) => shared.broken.store(true, Ordering::Release),
                    DecodeError::Io(_) => {}
                }
                drop(state);
                let status = Self::read_error(err, this.reader.buffered());
                this.fail_all(status);
                return Poll::Ready(());
            }
            if state.answers_overrun {
                tracing::warn!(peer = ?shared.peer, "server streamed past the answer window");
                shared.broken.store(true, Ordering::Release);
                drop(state);
                this.fail_all(Status::internal(super::answers::OVERRUN));
                return Poll::Ready(());
            }
            // Streamed answers skipped over the message limit (their calls failed
            // RESOURCE_EXHAUSTED): the server counted them, so they are credited (`answers.rs`).
            let skipped = reader.take_skipped_streamed();
            if skipped > 0 {
                state.answers_skipped(skipped);
            }
            reader.settle();
            if state.outbox.buffered() > 0 {
                let _ = state.outbox.poll_flush(cx);
                state.wake_for_room(shared);
            }
            if !shared.handshaken.load(Ordering::Relaxed) && reader.past_preface() {
                shared.handshaken.store(true, Ordering::Release);
                shared.handshake.notify_waiters();
            }
            drop(state);
            wake.drain(..).for_each(Waker::wake);
        }
        // Still readable after many reads: let other tasks run, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
