//! `Pool`: N multiplexed connections to one endpoint, kept up by a background task.
//!
//! ```text
//!  call ──pick: first with room, else least loaded──▶ Live(conn) ──▶ ClientConnection
//!                     │ none live
//!                     ▼
//!     wait for the attempt's outcome ◀── maintainer: reconnects Down slots with backoff,
//!     (wait-for-ready: ≤ the deadline)               closes idle extras (Live → Idle),
//!                                                    reopens Idle slots when load returns
//! ```
//!
//! Calls fill one connection before the next, as HTTP/2 clients open a second connection only
//! once the first has no stream left: on one connection the calls in flight share each write
//! and each read, so spreading them thinner costs system calls and wake-ups per call. A
//! connection's share is [`Endpoint::calls_per_connection`]; past it on every connection, calls
//! go to the least loaded.
//!
//! A connection that breaks fails only its own calls (`Unavailable`); its slot goes `Down` and
//! the maintainer replaces it while the other connections keep serving.
//!
//! `shutdown.rs`: closing the pool for good (gracefully or at once) and waiting for its end.

mod shutdown;

pub use shutdown::{closed_status, closing_now_status};

use crate::attempt::{connect_one, ConnectError};
use crate::backoff::BackoffState;
use crate::endpoint::Endpoint;
use crate::ClientConnection;
use sockrpc_protocol::Status;
use std::{
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
enum Slot {
    Live(ClientConnection),
    /// Needs a connection.
    Down,
    /// Closed for idleness; reopened when load comes back.
    Idle,
}

/// What one pooled connection has done, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Calls in flight now.
    pub in_flight: usize,
    /// Calls ever started on it.
    pub calls_started: u64,
}

struct Inner {
    endpoint: Endpoint,
    slots: Mutex<Vec<Slot>>,
    /// Wakes the maintainer: a connection closed, load grew, the pool was dropped.
    wake: Arc<Notify>,
    /// A connection came up.
    connected: Notify,
    /// A connection attempt failed.
    failed: Notify,
    last_error: Mutex<Option<Status>>,
    /// The last attempt was refused for a reason another attempt will meet again (a TLS
    /// certificate refused, plain text on a TLS port, a peer that does not speak sockrpc or
    /// broke the protocol unprompted): calls waiting for a connection fail at once instead of
    /// waiting out their deadline.
    refused: AtomicBool,
    /// While the last attempt failed and none is under way: when the next is due (the
    /// maintainer's backoff). A fail-fast call fails at once when that is far off.
    retry_at: Mutex<Option<Instant>>,
    /// A maintainer task runs ([`Maintaining`] clears it as the task ends, however it ends).
    maintained: AtomicBool,
    /// The pool's shutdown: closed or not, its connections closing (`shutdown.rs`).
    shut: shutdown::Shut,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.notify_one();
        for slot in self
            .slots
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Slot::Live(conn) = slot {
                conn.close();
            }
        }
    }
}

/// A pool of connections to one endpoint: calls fill the first connection up to the endpoint's
/// calls per connection, then the next (the least loaded once all are that busy); a background
/// task reconnects broken ones with backoff and closes idle extras. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    /// A pool for `endpoint`; nothing connects until first use.
    pub fn new(endpoint: Endpoint) -> Pool {
        let size = endpoint.pool_size.max(1);
        Pool {
            inner: Arc::new(Inner {
                endpoint,
                slots: Mutex::new((0..size).map(|_| Slot::Down).collect()),
                wake: Arc::new(Notify::new()),
                connected: Notify::new(),
                failed: Notify::new(),
                last_error: Mutex::new(None),
                refused: AtomicBool::new(false),
                retry_at: Mutex::new(None),
                maintained: AtomicBool::new(false),
                shut: shutdown::Shut::default(),
            }),
        }
    }

    /// A pool whose first connection was made elsewhere; further ones (and replacements) connect
    /// to the endpoint's address.
    pub fn with_connection(endpoint: Endpoint, conn: ClientConnection) -> Pool {
        let pool = Pool::new(endpoint);
        lock(&pool.inner.slots)[0] = Slot::Live(conn);
        pool
    }

    /// The endpoint it connects to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// The maintainer starts on first use, inside a runtime (a lazy channel may be built
    /// outside one), and again after it ended with the runtime that ran it: a pool used from
    /// one runtime after another (a client kept in a static) reconnects on each.
    fn ensure_maintainer(&self) {
        if self.inner.shut.is_closed() {
            // Closed for good: nothing reconnects.
            return;
        }
        if self.inner.maintained.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let wake = Arc::clone(&self.inner.wake);
        let running = Maintaining(Arc::downgrade(&self.inner));
        let stop = self.inner.shut.stop();
        tokio::spawn(async move {
            let _running = running;
            maintain(weak, wake, stop).await;
        });
    }

    /// A live connection, without waiting: the first (in slot order) with fewer calls in flight
    /// than the endpoint's [`calls_per_connection`](Endpoint::calls_per_connection) or the
    /// server's announced limit ([`ClientConnection::max_calls`]), whichever is lower, or, when
    /// every one is that busy, the least loaded (one under the server's limit if any is) — and
    /// then an idle slot is reopened.
    ///
    /// Filling the first connection before the next keeps calls batched: the calls a
    /// connection carries leave in one write and come back in one read, so spreading a load
    /// one connection carries over several only adds system calls and wake-ups per call.
    pub fn pick(&self) -> Option<ClientConnection> {
        // The field is public: 0 would leave every connection without room.
        let share = self.inner.endpoint.calls_per_connection.max(1);
        if self.inner.shut.is_closed() {
            return None;
        }
        let mut slots = lock(&self.inner.slots);
        let mut first_fit: Option<&ClientConnection> = None;
        // The least loaded connection, those with room under the server's limit first.
        let mut least: Option<(bool, usize, &ClientConnection)> = None;
        let mut broken = false;
        let mut idle = None;
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Live(conn) if conn.is_closed() => broken = true,
                Slot::Live(conn) => {
                    let load = conn.in_flight();
                    // A server that takes fewer calls than the share refuses the rest
                    // (`RESOURCE_EXHAUSTED`): its limit is this connection's share then.
                    let limit = conn.max_calls().unwrap_or(usize::MAX);
                    if load < share.min(limit) && first_fit.is_none() {
                        first_fit = Some(conn);
                    }
                    let full = load >= limit;
                    // Calls waiting for room there (`ClientConnection::waiting`) are load too.
                    let load = load + conn.waiting();
                    if least.is_none_or(|(least_full, least_load, _)| {
                        (full, load) < (least_full, least_load)
                    }) {
                        least = Some((full, load, conn));
                    }
                }
                Slot::Idle => idle = Some(i),
                Slot::Down => {}
            }
        }
        let busy = first_fit.is_none();
        let chosen = first_fit.or(least.map(|(_, _, conn)| conn)).cloned();
        let grow = match idle {
            Some(i) if busy => {
                slots[i] = Slot::Down;
                true
            }
            _ => false,
        };
        drop(slots);
        if broken || grow || chosen.is_none() {
            self.ensure_maintainer();
            self.inner.wake.notify_one();
        }
        chosen
    }

    /// A connection, waiting for one to come up.
    ///
    /// A fail-fast call (`wait_for_ready` false, gRPC's default) waits for the outcome of the
    /// attempt under way, or of the next one if it is due within the first backoff's wait (1 s
    /// ±20 % by default, at most 1.2 s: the first retry after a server went away), within its
    /// deadline and at most the connect timeout; when that attempt fails, or the wait ends
    /// first, it fails `UNAVAILABLE` with the last attempt's error, except that its own
    /// deadline passing while no attempt has failed yet fails it `DEADLINE_EXCEEDED` (as
    /// grpc-go's call whose context expires while its channel is connecting). Once failed attempts have
    /// pushed the next one further off, it fails at once, as a grpc-go call does in
    /// `TRANSIENT_FAILURE`. An attempt refused for a reason the next one will meet too (the
    /// server refused our TLS certificate, or we its; the peer does not speak sockrpc, or broke
    /// the protocol on a connection that carried no call) fails it at once.
    ///
    /// A wait-for-ready call waits across failed attempts up to its deadline, then fails
    /// `DEADLINE_EXCEEDED` naming the last attempt's error; without a deadline, until a
    /// connection comes up.
    pub async fn get(
        &self,
        deadline: Option<Instant>,
        wait_for_ready: bool,
    ) -> Result<ClientConnection, Status> {
        // A call that fails here at once (every attempt refused) spends a unit of the task's
        // tokio budget, as a started call does: a loop of such calls then yields now and again
        // to the reconnecting task, which may share its thread.
        tokio::task::coop::consume_budget().await;
        let limit = if wait_for_ready {
            deadline
        } else {
            let patience = Instant::now() + self.inner.endpoint.connect_timeout;
            Some(deadline.map_or(patience, |d| d.min(patience)))
        };
        loop {
            let connected = self.inner.connected.notified();
            let failed = self.inner.failed.notified();
            tokio::pin!(connected, failed);
            connected.as_mut().enable();
            failed.as_mut().enable();
            if self.inner.shut.is_closed() {
                return Err(closed_status());
            }
            if let Some(conn) = self.pick() {
                return Ok(conn);
            }
            if !wait_for_ready && self.inner.refused.load(Ordering::Acquire) {
                // Until an attempt succeeds, waiting would only meet the same refusal.
                return Err(self.unavailable());
            }
            if !wait_for_ready && self.retry_is_far() {
                // In backoff after failed attempts (grpc-go's TRANSIENT_FAILURE): fail now.
                return Err(self.unavailable());
            }
            let give_up = async {
                match limit {
                    Some(limit) => tokio::time::sleep_until(limit).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut connected => {}
                () = &mut failed => {
                    if !wait_for_ready {
                        return Err(self.unavailable());
                    }
                }
                () = give_up => {
                    // A wait-for-ready call hears that its deadline passed. So does a
                    // fail-fast call whose deadline passed while the pool was still connecting
                    // with no attempt failed yet (grpc-go's call in CONNECTING). One that waited
                    // for the next attempt after a failure (grpc-go would have failed it at once
                    // in TRANSIENT_FAILURE), or ran out of the connect timeout first, hears why
                    // there is no connection, as when the attempt fails.
                    let expired = deadline.is_some_and(|d| Instant::now() >= d)
                        && lock(&self.inner.last_error).is_none();
                    return Err(if wait_for_ready || expired {
                        self.deadline_passed()
                    } else {
                        self.unavailable()
                    });
                }
            }
        }
    }

    /// Whether the last attempt failed, none is under way, and the next is due later than the
    /// first backoff's longest wait from now (at most [`SOON`]): a fail-fast call then fails at
    /// once. One due sooner (the first retry after a server went away) is waited for.
    fn retry_is_far(&self) -> bool {
        let backoff = self.inner.endpoint.backoff;
        let first = backoff
            .initial
            .mul_f64(1.0 + backoff.jitter.clamp(0.0, 1.0));
        let soon = first.min(SOON);
        lock(&self.inner.retry_at).is_some_and(|at| at > Instant::now() + soon)
    }

    /// The status of a call whose deadline passed while it waited for a connection: the last
    /// attempt's failure named in the message, as in [`unavailable`](Self::unavailable).
    fn deadline_passed(&self) -> Status {
        let unavailable = self.unavailable();
        let status = Status::deadline_exceeded(format!(
            "deadline exceeded while waiting for a connection: {}",
            unavailable.message()
        ));
        status.with_source(unavailable)
    }

    /// The status of a call that found no connection: the last attempt's failure, named in
    /// the message and kept as the source (so its own source, the connect's `io::Error`, is
    /// one step further down `Error::source`).
    fn unavailable(&self) -> Status {
        let last = lock(&self.inner.last_error).clone();
        let cause = last
            .as_ref()
            .map_or("still connecting", |s| s.message())
            .to_owned();
        let status =
            Status::unavailable(format!("no connection to {}: {cause}", self.inner.endpoint));
        match last {
            Some(last) => status.with_source(last),
            None => status,
        }
    }

    /// Waits until every slot has a live connection, or `deadline`; fails only if none is up.
    pub async fn fill(&self, deadline: Instant) -> Result<(), Status> {
        if self.inner.shut.is_closed() {
            return Err(closed_status());
        }
        self.ensure_maintainer();
        self.inner.wake.notify_one();
        loop {
            let connected = self.inner.connected.notified();
            let failed = self.inner.failed.notified();
            tokio::pin!(connected, failed);
            connected.as_mut().enable();
            failed.as_mut().enable();
            let (live, size) = {
                let slots = lock(&self.inner.slots);
                let live = slots
                    .iter()
                    .filter(|s| matches!(s, Slot::Live(c) if !c.is_closed()))
                    .count();
                (live, slots.len())
            };
            if live == size {
                return Ok(());
            }
            if let Some(status) = lock(&self.inner.last_error).clone() {
                // An attempt failed: with some connections up the pool heals in the background;
                // with none, the caller hears now rather than after every backoff.
                return if live > 0 { Ok(()) } else { Err(status) };
            }
            tokio::select! {
                () = &mut connected => {}
                () = &mut failed => {}
                () = tokio::time::sleep_until(deadline) => {
                    return if live > 0 { Ok(()) } else { Err(self.unavailable()) };
                }
            }
        }
    }

    /// Per-connection load, for tests and stats output.
    pub fn stats(&self) -> Vec<ConnectionStats> {
        lock(&self.inner.slots)
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(conn) => Some(ConnectionStats {
                    in_flight: conn.in_flight(),
                    calls_started: conn.calls_started(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Live connections, for tests that break one on purpose.
    pub fn connections(&self) -> Vec<ClientConnection> {
        lock(&self.inner.slots)
            .iter()
            .filter_map(|slot| match slot {
                Slot::Live(conn) => Some(conn.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Marks the pool's maintainer as gone when its task ends for any reason: the pool is gone, or
/// the task was dropped unfinished with its runtime (which ends the pool's connections too), so
/// that the next use starts another.
///
/// A call on another runtime may have looked while the task was still counted as running (its
/// runtime shutting down, or not driven) and be waiting for a connection that task will never
/// make: the calls waiting are woken, and their next look starts a task on their own runtime.
/// The dead task's backoff goes with it: the next task's first attempt is due at once, and a
/// fail-fast call must not fail for a retry nobody will make.
struct Maintaining(Weak<Inner>);

impl Drop for Maintaining {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            *lock(&inner.retry_at) = None;
            inner.maintained.store(false, Ordering::Release);
            inner.connected.notify_waiters();
            inner.shut.changed();
        }
    }
}

/// The longest a fail-fast call waits for a retry that is due (gRPC's first backoff, 1 s, and
/// its jitter): long enough for the first reconnect after a server restarted, short of making
/// callers wait out a grown backoff.
const SOON: Duration = Duration::from_millis(1_200);

/// How long an unused connection must have stayed up for its close not to count as a failed
/// attempt (a server's idle timeout closing it, say): well past any handshake, short of any
/// idle timeout.
const PROVEN_AFTER: Duration = Duration::from_secs(10);

/// An unused connection the server sends away (GOAWAY) sooner than this after it opened is a
/// failed attempt (a server refusing every connection in its own protocol: a TLS port, a full
/// server); later, it is a server retiring an idle connection, and not counted.
const AT_ONCE: Duration = Duration::from_secs(1);

/// Unused connections a server may retire (FLAG_RETIRE) within [`AT_ONCE`] of opening, within
/// one [`AT_ONCE`], beyond twice the pool's size, before the next counts as a failed attempt.
const YOUNG_RETIREMENTS: usize = 3;

/// Keeps the pool's slots filled, with backoff, and shrinks it when connections sit idle.
///
/// Backoff resets only when a connection that completed the handshake (the server's preface
/// arrived) and carried a call (or stayed up [`PROVEN_AFTER`]) goes away; a connection refused,
/// timed out, closed before the handshake, or closed soon after it without carrying a call
/// counts as a failed attempt, so a peer that accepts and hangs up cannot cause a reconnect
/// storm; so does one sent away (GOAWAY) within [`AT_ONCE`] of opening without carrying a call,
/// and calls waiting for a connection hear the server's reason. One the client closed itself
/// counts as neither. One sent away before it carried a call stays closed until a call needs
/// it, so a peer that sends every connection away at once is not reconnected in a loop either.
async fn maintain(pool: Weak<Inner>, wake: Arc<Notify>, stop: Arc<Notify>) {
    let mut backoff: Option<BackoffState> = None;
    let mut next_attempt = Instant::now();
    // Unused connections retired (FLAG_RETIRE) within `AT_ONCE` of opening, counted over a
    // window of `AT_ONCE` from the first: past twice the pool's size and `YOUNG_RETIREMENTS`
    // within one window, they count as failed attempts, so a server that retires every
    // connection at once cannot keep the pool reconnecting without backoff, while a short idle
    // timeout retiring a pool's eagerly opened slots together costs nothing.
    let mut young_window = Instant::now();
    let mut young_retired = 0usize;
    loop {
        let Some(inner) = pool.upgrade() else { return };
        if inner.shut.is_closed() {
            // Closed for good: no reconnect, no idle upkeep.
            return;
        }
        let backoff = backoff.get_or_insert_with(|| BackoffState::new(inner.endpoint.backoff));
        let idle_timeout = inner.endpoint.idle_timeout;
        let down: Vec<usize> = {
            let mut slots = lock(&inner.slots);
            let young_allowed = 2 * slots.len() + YOUNG_RETIREMENTS;
            for (i, slot) in slots.iter_mut().enumerate() {
                match slot {
                    Slot::Live(conn) if conn.is_closed() => {
                        // Still carrying calls (a draining server's): the pool's shutdown
                        // must reach them too.
                        inner.shut.track(conn);
                        let used = conn.calls_started() > 0;
                        let sent_away = conn.in_flight() == 0 && conn.was_sent_away();
                        // For an unused connection, `idle_for` is its age.
                        let age = conn.idle_for();
                        let proven = conn.is_handshaken() && (used || age >= PROVEN_AFTER);
                        // Sent away unused after a while, or retired in so many words
                        // (FLAG_RETIRE) and not too often within a second: a server's idle
                        // timeout or age, not a refusal.
                        let young = sent_away && !used && age < AT_ONCE && conn.was_retired();
                        if young {
                            if young_window.elapsed() >= AT_ONCE {
                                young_window = Instant::now();
                                young_retired = 0;
                            }
                            young_retired += 1;
                        }
                        let retired = sent_away
                            && conn.is_handshaken()
                            && (age >= AT_ONCE || (young && young_retired <= young_allowed));
                        if proven {
                            backoff.reset();
                        } else if !retired && !conn.closed_by_client() {
                            // Closed before the handshake, or soon after it without carrying a
                            // call (a server that sends its preface, then GOAWAY or a FIN, on
                            // every connection): a failed attempt, not a reason to reconnect
                            // at once; calls waiting for a connection hear why (a call with
                            // no deadline fails with it, as after a refused connect).
                            next_attempt = next_attempt.max(Instant::now() + backoff.current());
                            *lock(&inner.retry_at) = Some(next_attempt);
                            backoff.fail();
                            let why = conn
                                .closed_reason()
                                .map_or_else(String::new, |status| status.message().to_owned());
                            *lock(&inner.last_error) = Some(Status::unavailable(format!(
                                "{} closed the connection at once: {why}",
                                inner.endpoint
                            )));
                            // A peer that does not speak sockrpc will not on the next attempt
                            // either, nor will one that broke the protocol before any call was
                            // made (its first frames are malformed): waiting calls fail now, as
                            // after a TLS refusal, rather than wait out the backoff to meet it
                            // again.
                            if conn.peer_is_foreign() || (!used && conn.peer_broke_protocol()) {
                                inner.refused.store(true, Ordering::Release);
                            }
                            inner.failed.notify_waiters();
                        }
                        // An extra the server sent away (GOAWAY) while it carried nothing, as
                        // a server's idle timeout does when the first connection has room for
                        // every call: reopened when load needs it, not now (else it would be
                        // reconnected at every server idle timeout). So is the first when it
                        // never carried a call: a server that sends every connection away at
                        // once is then not reconnected in a loop.
                        *slot = if sent_away && (i > 0 || !used) {
                            Slot::Idle
                        } else {
                            Slot::Down
                        };
                        if retired && matches!(slot, Slot::Idle) {
                            // Calls waiting for a connection look again: their `pick` reopens
                            // the slot (no failure will come to wake them).
                            inner.connected.notify_waiters();
                        }
                    }
                    // The first connection stays: a pool never shrinks to nothing.
                    Slot::Live(conn) if i > 0 && conn.idle_for() >= idle_timeout => {
                        conn.close();
                        *slot = Slot::Idle;
                    }
                    _ => {}
                }
            }
            slots
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Slot::Down))
                .map(|(i, _)| i)
                .collect()
        };

        if !down.is_empty() && Instant::now() >= next_attempt {
            *lock(&inner.retry_at) = None;
            let started = Instant::now();
            let timeout = backoff.current().max(inner.endpoint.connect_timeout);
            for i in down {
                let attempt = tokio::select! {
                    attempt = connect_one(&inner.endpoint, timeout, Arc::clone(&wake)) => attempt,
                    // Closed while connecting: the attempt is dropped (its socket with it).
                    () = stop.notified() => return,
                };
                match attempt {
                    Ok(conn) => {
                        {
                            let mut slots = lock(&inner.slots);
                            if inner.shut.is_closed() {
                                // Closed as it came up: it closes too, and is waited for.
                                drop(slots);
                                inner.shut.close_late(conn);
                                return;
                            }
                            slots[i] = Slot::Live(conn);
                        }
                        *lock(&inner.last_error) = None;
                        inner.refused.store(false, Ordering::Release);
                        inner.connected.notify_waiters();
                    }
                    Err(ConnectError { status, refused }) => {
                        tracing::debug!(endpoint = %inner.endpoint, error = %status, "connect failed");
                        *lock(&inner.last_error) = Some(status);
                        inner.refused.store(refused, Ordering::Release);
                        // Before the waiters hear of the failure: a call made right after it
                        // must see the backoff.
                        next_attempt = started + backoff.current();
                        *lock(&inner.retry_at) = Some(next_attempt);
                        inner.failed.notify_waiters();
                        backoff.fail();
                        break;
                    }
                }
            }
            continue;
        }
        drop(inner);
        let check = (idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(30));
        let sleep_until = if down.is_empty() {
            Instant::now() + check
        } else {
            next_attempt
        };
        tokio::select! {
            () = wake.notified(), if down.is_empty() => {}
            () = stop.notified() => {}
            () = tokio::time::sleep_until(sleep_until) => {}
        }
    }
}
