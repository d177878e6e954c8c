//! The pool's maintainer: the background task that keeps its slots filled (reconnecting with
//! backoff), closes idle extras and reopens them when load returns.
//!
//! Why apart from `pool.rs`: it is the one part of a pool that runs on its own, with its own
//! rules (what counts as a failed attempt, when backoff resets, how a server retiring
//! connections is told from one refusing them); the pool's calls only wake it and read what it
//! leaves in the slots.

use super::{lock, Inner, Pool, Slot};
use crate::attempt::{connect_one, ConnectError};
use crate::backoff::BackoffState;
use crate::timer::deadline_after;
use sockrpc_protocol::Status;
use std::{
    sync::atomic::Ordering,
    sync::{Arc, Weak},
    time::Duration,
};
use tokio::sync::Notify;
use tokio::time::Instant;

impl Pool {
    /// The maintainer starts on first use, inside a runtime (a lazy channel may be built
    /// outside one), and again after it ended with the runtime that ran it: a pool used from
    /// one runtime after another (a client kept in a static) reconnects on each.
    pub(super) fn ensure_maintainer(&self) {
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
                            next_attempt =
                                next_attempt.max(deadline_after(Instant::now(), backoff.current()));
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
                        next_attempt = deadline_after(started, backoff.current());
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
