//! Making room at the connection cap: the accept loop evicts the oldest connection still in its
//! handshake (`handshakes.rs` says which, and why) and waits, briefly, for its slot.
//!
//! ```text
//!  at the cap ─▶ evict the oldest in its handshake ─▶ tell it (GOAWAY if its PREFACE went out)
//!                  └ none old enough: Full               │
//!                 wait ≤ EVICTION_WAIT for its permit ◀───┘
//!                  ├ released: the newcomer's
//!                  ├ not in time: its task aborted; Full (the newcomer is refused)
//!                  └ the server's shutdown signal: its task aborted; Stopping, at once
//! ```
//!
//! The evicted connection's task is told rather than aborted so that a client that already has
//! the server's PREFACE (and may have written calls) learns from a GOAWAY (last call id 0, the
//! connection limit named) that none of its calls ran, and retries them or fails them as not
//! processed, instead of seeing a bare close. The task writes it without waiting on the client
//! (`conn.rs`) and hands its socket to the server's bounded lingering (`linger.rs`: GOAWAY,
//! FIN, the client's unread bytes read and dropped, so no RST destroys the GOAWAY) on a task
//! that holds no connection slot; so the wait here stays in microseconds unless every thread
//! is busy. The wait also listens for the server's shutdown signal: a server stopping at the
//! cap does not sit in it.

use super::handshakes::Handshakes;
use super::ServerConfig;
use crate::log_limit::{warn_limited, Kind};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The longest the accept loop waits for an evicted connection's task to end and release its
/// permit.
pub(super) const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// What [`make_room`] made.
#[derive(Debug)]
pub(super) enum Room {
    /// The evicted connection's permit, for the newcomer.
    Made(OwnedSemaphorePermit),
    /// None: the newcomer is refused as at the cap.
    Full,
    /// The server's shutdown signal came while waiting: stop accepting.
    Stopping,
}

/// At the connection cap: evicts the oldest connection still in its handshake (TLS or preface)
/// and returns its permit for the newcomer. [`Room::Full`] when no connection can be evicted
/// (every one established, or the oldest in its handshake too young: `handshakes.rs`), or when
/// the evicted one's task has not let go of its permit within [`EVICTION_WAIT`] (the permit
/// frees for a later one). [`Room::Stopping`] as soon as `stop` completes.
pub(super) async fn make_room(
    handshakes: &Handshakes,
    permits: &Arc<Semaphore>,
    config: &ServerConfig,
    stop: impl Future<Output = ()>,
) -> Room {
    let Some(evicted) = handshakes.evict_oldest(config.max_connections) else {
        return Room::Full;
    };
    warn_limited!(
        config.log_limit,
        Kind::Evicted,
        {
            peer = ?evicted.peer,
            age = ?Instant::now().saturating_duration_since(evicted.since),
            limit = config.max_connections,
        },
        "closing connection: evicted at the connection limit for a newer one, its handshake or \
         preface still not done"
    );
    evicted.tell();
    // Only this loop acquires permits: the one the evicted task releases as it ends comes
    // here. A single wait at a time, bounded: no queue of waiters can build up.
    let wait = tokio::time::timeout(EVICTION_WAIT, Arc::clone(permits).acquire_owned());
    let room = tokio::select! {
        waited = wait => match waited {
            Ok(Ok(permit)) => return Room::Made(permit),
            _ => Room::Full,
        },
        () = stop => Room::Stopping,
    };
    evicted.end();
    room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wait_for_an_evicted_slot_ends_at_the_shutdown_signal() {
        let handshakes = Handshakes::default();
        // A connection in its handshake whose task never lets go of its slot.
        let _stuck = handshakes.admit(None);
        tokio::time::advance(Duration::from_millis(100)).await;
        let permits = Arc::new(Semaphore::new(0));
        let config = ServerConfig::default();
        let started = Instant::now();
        let stop = tokio::time::sleep(Duration::from_millis(5));
        let room = make_room(&handshakes, &permits, &config, stop).await;
        assert!(matches!(room, Room::Stopping), "{room:?}");
        assert_eq!(started.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_not_released_in_time_refuses_the_newcomer() {
        let handshakes = Handshakes::default();
        let _stuck = handshakes.admit(None);
        tokio::time::advance(Duration::from_millis(100)).await;
        let permits = Arc::new(Semaphore::new(0));
        let config = ServerConfig::default();
        let started = Instant::now();
        let room = make_room(&handshakes, &permits, &config, std::future::pending()).await;
        assert!(matches!(room, Room::Full), "{room:?}");
        assert_eq!(started.elapsed(), EVICTION_WAIT);
    }
}
