//! Closing a pool for good: gracefully ([`Pool::close`], grpc-java's `shutdown`) or at once
//! ([`Pool::close_now`], `shutdownNow`), and waiting for the end ([`Pool::closed`],
//! `awaitTermination`).
//!
//! Why here: dropping a channel was the only way to end it, and any clone (a generated client,
//! a middleware stack, a task) kept its pool reconnecting. A closed pool takes no call (each
//! fails at once with [`closed_status`]), hands out no connection, and its maintainer stops;
//! the connections it had close after their calls (gracefully) or at once, their calls failing
//! with [`closing_now_status`]. The pool keeps each closing connection's handle, so
//! [`Pool::closed`] can wait for every one to end.
//!
//! ```text
//!  close ─▶ level 1: slots emptied (Idle) ─▶ conn.close()      ─▶ ends after its calls
//!  close_now ─▶ level 2:            └──────▶ conn.close_now()  ─▶ ends at once, calls CANCELLED
//!  maintainer: stops at its next look; an attempt under way is dropped
//! ```

use super::{lock, CloseSignal, CloseTrigger, Pool, Slot};
use crate::attempt::connect_one;
use crate::ClientConnection;
use sockrpc_protocol::Status;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Open: calls go through.
const OPEN: u8 = 0;
/// Closed gracefully: calls in flight finish.
const GRACEFUL: u8 = 1;
/// Closed at once: calls in flight fail.
const NOW: u8 = 2;

/// The status of a call made on a closed channel (grpc-java's `UNAVAILABLE` "Channel shutdown
/// invoked"): nothing was sent.
pub fn closed_status() -> Status {
    Status::unavailable("channel closed: close() was called; the call was not sent")
}

/// The status of a call in flight when its channel was closed at once (grpc-go's `Canceled`
/// "grpc: the client connection is closing").
pub fn closing_now_status() -> Status {
    Status::cancelled("channel closed: close_now() was called")
}

/// A pool's shutdown state.
#[derive(Default)]
pub(super) struct Shut {
    /// [`OPEN`], [`GRACEFUL`] or [`NOW`]; only ever rises.
    level: AtomicU8,
    /// Wakes [`Pool::closed`]: the pool closed, or its maintainer ended.
    changed: Notify,
    /// Wakes the maintainer to stop (a stored permit: it may be between two looks).
    stop: Arc<Notify>,
    /// The connections closing or to close with the pool: the slots' at the close, one that
    /// came up just as it closed, and replaced ones still carrying calls (a draining server's).
    closing: Mutex<Vec<ClientConnection>>,
    /// Calls begun while the pool was open that may still fetch an answer over a connection of
    /// their own ([`Pool::begin_started`]): after a graceful close, [`Pool::closed`] waits for
    /// them, since such a fetch may start after it looked at `closing`.
    started: AtomicUsize,
    /// [`Pool::get_started`] calls under way, until their connection is in `closing` (or
    /// they gave up): [`Pool::closed`] waits for them, after either close.
    fetching: AtomicUsize,
    /// The close as the layers above see it ([`Pool::close_signal`]).
    signal: CloseTrigger,
}

impl Shut {
    /// Whether the pool was closed (either way).
    pub(super) fn is_closed(&self) -> bool {
        // Sequentially consistent, as the counters below: a call counted before it looks at
        // the level, and `closed` looking at the level before the counters, cannot miss each
        // other.
        self.level.load(Ordering::SeqCst) != OPEN
    }

    /// Nothing left that may still bring a connection into `closing`: no fetch under way, and
    /// (after a graceful close) no call begun that may start one.
    fn settled(&self) -> bool {
        self.fetching.load(Ordering::SeqCst) == 0
            && (self.level.load(Ordering::SeqCst) >= NOW
                || self.started.load(Ordering::SeqCst) == 0)
    }

    /// One of `counter`'s count ended: [`Pool::closed`] looks again.
    fn uncount(&self, counter: &AtomicUsize) {
        if counter.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_closed() {
            self.changed.notify_waiters();
        }
    }

    /// What the maintainer waits on to stop.
    pub(super) fn stop(&self) -> Arc<Notify> {
        Arc::clone(&self.stop)
    }

    /// Something [`Pool::closed`] waits for happened (the maintainer ended).
    pub(super) fn changed(&self) {
        self.changed.notify_waiters();
    }

    /// A connection leaving its slot closed: kept while it still carries calls, so that the
    /// pool's shutdown reaches them too.
    pub(super) fn track(&self, conn: &ClientConnection) {
        if conn.in_flight() == 0 || conn.is_terminated() {
            return;
        }
        let mut closing = lock(&self.closing);
        closing.retain(|c| !c.is_terminated());
        closing.push(conn.clone());
    }

    /// A connection that came up as the pool closed: closed the pool's way, and waited for.
    pub(super) fn close_late(&self, conn: ClientConnection) {
        self.close_one(&conn, self.level.load(Ordering::Acquire));
        lock(&self.closing).push(conn);
        self.changed.notify_waiters();
    }

    fn close_one(&self, conn: &ClientConnection, level: u8) {
        if level >= NOW {
            conn.close_now(closing_now_status());
        } else {
            conn.close();
        }
    }
}

/// A connection of its own, made after a graceful close for a call started before it
/// ([`Pool::get_started`]): closed gracefully when dropped, once that call is done.
#[derive(Debug)]
pub struct StartedConn(ClientConnection);

impl Drop for StartedConn {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A call begun while the pool was open that may later fetch its answer with
/// [`Pool::get_started`] (a UDP call whose answer may come back truncated): held for the whole
/// call, so that [`Pool::closed`] after a graceful close waits for it, fetch included. Costs a
/// counter and a reference to the pool, nothing allocated.
pub struct StartedCall(Pool);

impl std::fmt::Debug for StartedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartedCall").finish_non_exhaustive()
    }
}

impl Drop for StartedCall {
    fn drop(&mut self) {
        let shut = &self.0.inner.shut;
        shut.uncount(&shut.started);
    }
}

/// A [`Pool::get_started`] under way, until its connection is in the closing list.
struct Fetching<'a>(&'a Shut);

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.0.uncount(&self.0.fetching);
    }
}

impl Pool {
    /// Counts a call that may later fetch its answer with [`get_started`](Self::get_started);
    /// `None` (nothing counted) once the pool is closed: the call must not start. Keep the
    /// guard until the call is over.
    pub fn begin_started(&self) -> Option<StartedCall> {
        // Counted before the look at the level (see `Shut::is_closed`).
        self.inner.shut.started.fetch_add(1, Ordering::SeqCst);
        let call = StartedCall(self.clone());
        (!self.is_closed()).then_some(call)
    }

    /// A connection for a call started before the pool closed (the TCP fetch of a truncated UDP
    /// answer: the server ran the call and keeps its answer). While the pool is open, as
    /// [`get`](Self::get). After [`close`](Self::close) (before it, or while it waited for a
    /// connection), a connection of its own outside the slots (those are closed to new calls),
    /// which [`close_now`](Self::close_now) reaches; keep the guard until the call is done,
    /// then it closes. After `close_now`, [`closing_now_status`].
    pub async fn get_started(
        &self,
        deadline: Option<Instant>,
    ) -> Result<(ClientConnection, Option<StartedConn>), Status> {
        let shut = &self.inner.shut;
        // Counted before the look at the level, until the connection is in `closing`.
        shut.fetching.fetch_add(1, Ordering::SeqCst);
        let _fetching = Fetching(shut);
        if shut.level.load(Ordering::SeqCst) == OPEN {
            let got = self.get(deadline, false).await;
            // A graceful close while it waited for a connection (one still connecting) sends
            // it on below, to a connection of its own, as if it had begun after the close.
            if got.is_ok() || shut.level.load(Ordering::SeqCst) == OPEN {
                return got.map(|conn| (conn, None));
            }
        }
        if shut.level.load(Ordering::SeqCst) != GRACEFUL {
            return Err(closing_now_status());
        }
        let endpoint = &self.inner.endpoint;
        let timeout = deadline.map_or(endpoint.connect_timeout, |deadline| {
            endpoint
                .connect_timeout
                .min(deadline.saturating_duration_since(Instant::now()))
        });
        let conn = connect_one(endpoint, timeout, Arc::new(Notify::new()))
            .await
            .map_err(|err| err.status)?;
        let guard = StartedConn(conn.clone());
        lock(&shut.closing).push(conn.clone());
        // After it is in: a `close_now` that looked before reaches it here, one after there.
        if shut.level.load(Ordering::Acquire) >= NOW {
            conn.close_now(closing_now_status());
            return Err(closing_now_status());
        }
        Ok((conn, Some(guard)))
    }

    /// Closes the pool gracefully (grpc-java's `shutdown`): new calls fail at once with
    /// [`closed_status`], calls in flight (streams included) finish, then each connection
    /// closes; nothing reconnects. Idempotent; never blocks.
    pub fn close(&self) {
        self.shut_down(GRACEFUL);
    }

    /// Closes the pool at once (grpc-java's `shutdownNow`): as [`close`](Self::close), and the
    /// calls in flight fail with [`closing_now_status`] (`CANCELLED`) as their connections
    /// close now. Also after `close`, to stop waiting for slow calls.
    pub fn close_now(&self) {
        self.shut_down(NOW);
    }

    /// The pool's close as a layer above sees it (a retry waiting between two attempts ends
    /// at the close rather than at its next attempt).
    pub fn close_signal(&self) -> CloseSignal {
        self.inner.shut.signal.signal()
    }

    /// Whether [`close`](Self::close) or [`close_now`](Self::close_now) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.shut.is_closed()
    }

    /// Waits until the pool is closed and every connection it had has ended (grpc-java's
    /// `awaitTermination`, with the caller's own timeout around it). Waits for a close first.
    /// After a graceful close it also waits for the calls counted with
    /// [`begin_started`](Self::begin_started) (and the connections they fetch over); after
    /// [`close_now`](Self::close_now), only for the fetches already under way.
    pub async fn closed(&self) {
        let shut = &self.inner.shut;
        loop {
            let changed = shut.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if shut.is_closed() && !self.inner.maintained.load(Ordering::Acquire) && shut.settled()
            {
                break;
            }
            changed.await;
        }
        // The maintainer has ended, and no fetch may still come: the list is complete.
        let conns = lock(&shut.closing).clone();
        for conn in conns {
            conn.terminated().await;
        }
    }

    fn shut_down(&self, level: u8) {
        let inner = &self.inner;
        let before = inner.shut.level.fetch_max(level, Ordering::SeqCst);
        if before >= level {
            return;
        }
        // After the level is set: the maintainer checks it under this lock before it fills a
        // slot, so every connection is either taken here or closed by it.
        let taken: Vec<ClientConnection> = lock(&inner.slots)
            .iter_mut()
            .filter_map(|slot| match std::mem::replace(slot, Slot::Idle) {
                Slot::Live(conn) => Some(conn),
                _ => None,
            })
            .collect();
        let conns = {
            let mut closing = lock(&inner.shut.closing);
            closing.extend(taken);
            closing.clone()
        };
        for conn in &conns {
            inner.shut.close_one(conn, level);
        }
        inner.shut.signal.raise(level >= NOW);
        inner.shut.stop.notify_one();
        inner.wake.notify_one();
        // Calls waiting for a connection look again, and fail.
        inner.connected.notify_waiters();
        inner.failed.notify_waiters();
        inner.shut.changed.notify_waiters();
    }
}
