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
//! `maintain.rs`: the maintainer task (reconnects, backoff, idle upkeep). `shutdown.rs`:
//! closing the pool for good (gracefully or at once) and waiting for its end.
//! `close_signal.rs`: that close as the layers above the channel see it.

mod close_signal;
mod maintain;
mod shutdown;

pub use close_signal::{CloseSignal, CloseTrigger, Closing};
pub use shutdown::{closed_status, closing_now_status, StartedCall, StartedConn};

use crate::endpoint::Endpoint;
use crate::ClientConnection;
use sockrpc_protocol::Status;
use std::{
    sync::atomic::{AtomicBool, Ordering},
    sync::{Arc, Mutex, MutexGuard},
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
    /// A maintainer task runs ([`maintain::Maintaining`] clears it as the task ends, however it ends).
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
                    let unfailed = lock(&self.inner.last_error).is_none();
                    let expired = deadline.is_some_and(|d| Instant::now() >= d) && unfailed;
                    return Err(if wait_for_ready || expired {
                        self.deadline_passed()
                    } else if unfailed {
                        // The connect timeout ran out with the attempt still under way (a
                        // server stalled in its handshake): the attempt's own timeout fires at
                        // the same instant but may not have been recorded yet.
                        self.connect_timed_out()
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
        // Not `mul_f64`: an initial wait of `Duration::MAX` ("never again") panicked the caller.
        let first = crate::backoff::seconds(
            backoff.initial.as_secs_f64() * (1.0 + backoff.jitter.clamp(0.0, 1.0)),
        );
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

    /// The status of a fail-fast call that waited its connect timeout for an attempt still
    /// under way: said as the attempt's own timeout says it, not "still connecting".
    fn connect_timed_out(&self) -> Status {
        let endpoint = &self.inner.endpoint;
        Status::unavailable(format!(
            "no connection to {endpoint}: connecting timed out after {:?}",
            endpoint.connect_timeout
        ))
        .never_sent()
    }

    /// The status of a call that takes no connection but one up now and found none (its
    /// caller sends it elsewhere rather than wait): `UNAVAILABLE`, [never
    /// sent](Status::is_never_sent), naming the last attempt's failure, as when waiting ends.
    pub fn no_connection(&self) -> Status {
        if self.inner.shut.is_closed() {
            return closed_status();
        }
        self.unavailable()
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
            Status::unavailable(format!("no connection to {}: {cause}", self.inner.endpoint))
                .never_sent();
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
                    // No attempt failed yet: the one under way ran out of the connect timeout
                    // (`Channel::connect`'s deadline) at this same instant.
                    return if live > 0 { Ok(()) } else { Err(self.connect_timed_out()) };
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

    /// Whether a pooled connection is up and past its handshake, as far as the pool knows
    /// without waiting: what a balancer asks of each endpoint on every call, so nothing is
    /// cloned or allocated for it.
    pub fn is_connected(&self) -> bool {
        lock(&self.inner.slots).iter().any(|slot| match slot {
            Slot::Live(conn) => !conn.is_closed() && conn.is_handshaken(),
            _ => false,
        })
    }

    /// Waits until one of its connections is up and past its handshake
    /// ([`is_connected`](Self::is_connected)), making none for it: for whoever follows the
    /// pool's connections without calling (a balanced channel's health watch), which would
    /// otherwise have to look again now and then. Never resolves once the pool is closed.
    pub async fn connection_up(&self) {
        loop {
            let connected = self.inner.connected.notified();
            tokio::pin!(connected);
            connected.as_mut().enable();
            if self.inner.shut.is_closed() {
                return std::future::pending().await;
            }
            // Up but still in its handshake: that handshake's end, or another connection.
            let handshaking = {
                let slots = lock(&self.inner.slots);
                let mut handshaking = None;
                for slot in slots.iter() {
                    if let Slot::Live(conn) = slot {
                        if conn.is_closed() {
                            continue;
                        }
                        if conn.is_handshaken() {
                            return;
                        }
                        handshaking = Some(conn.clone());
                    }
                }
                handshaking
            };
            match handshaking {
                Some(conn) => {
                    tokio::select! {
                        _ = conn.ready() => {}
                        () = &mut connected => {}
                    }
                }
                None => connected.await,
            }
        }
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

/// The longest a fail-fast call waits for a retry that is due (gRPC's first backoff, 1 s, and
/// its jitter): long enough for the first reconnect after a server restarted, short of making
/// callers wait out a grown backoff.
const SOON: Duration = Duration::from_millis(1_200);
