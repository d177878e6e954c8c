//! A member's reconnect backoff, kept across its connect tasks (`follow.rs`).
//!
//! Why: a connect task ends as soon as a connection is up (the server's preface arrived), and
//! the next one starts when the member is found unconnected again (by the driver's upkeep every
//! 250 ms, or by a call). With the backoff held by the task, a server that completes the
//! handshake and then drops every connection (a process crashing behind a port that still
//! accepts, a proxy in front of nothing) was reconnected every 250 ms for as long as the channel
//! lived, nobody calling, and each handshake cleared the member's failure, so it never counted
//! as failing (`tests/hostile/balance_flapping.rs`). Now a connection the server ended before
//! it proved itself (no call answered while it was the member's, and up less than
//! [`PROVEN_AFTER`]) counts as a failed attempt: the next waits out the backoff from when that
//! connection came up, and the backoff grows, as the pool's own reconnects do
//! (`pool/maintain.rs`). One that proved the server starts the backoff over, and so does one
//! this side ended (closed it, or its runtime shut down: a channel kept across runtimes). One
//! the server sent away (GOAWAY) after [`RETIRED_AFTER`] counts as neither, as in the pool: a
//! healthy server retiring idle connections (an idle timeout or a maximum age shorter than
//! [`PROVEN_AFTER`]), or draining to restart, is reconnected at once and never marked failing
//! (grpc-go resets a subchannel's backoff once it was READY).
//!
//! A member's pool also reconnects by itself, while its connect task waits out the backoff (the
//! task then ends, the member connected, and keeps that channel: `tests/hostile/balance_kept.rs`).
//! Such a connection was judged by no one: the backoff stayed grown and the failure stayed set
//! (hidden while connected) until the member's next connection, so a server that came back and
//! served for hours was still waited for as a flapping one, and shown failing the moment it went
//! away. The driver's upkeep now judges the connection it finds up ([`Reconnect::seen_connected`])
//! by the same rule: once it proved the server, the backoff starts over and the failure is cleared,
//! as grpc-go resets a subchannel's backoff on READY (`tests/hostile/balance_reset.rs`). What it
//! judges is one connection, the one it noted up (live, past its handshake), and while it lives:
//! connections that each lasted a moment never add up to the proof (`seen_tests.rs`). Pick first's
//! passes (`in_order.rs`) have no connect tasks, and wait out a backoff of their own, but they grow
//! the backoff of each member whose attempt failed, so that its pool's own connection is judged,
//! and its failure cleared, the same way.

use sockrpc_transport::backoff::{Backoff, BackoffState};
use sockrpc_transport::ClientConnection;
use std::time::Duration;
use tokio::time::Instant;

/// How long a connection must have been the member's, with no call answered on it, for its end
/// to count as no failure (a server's idle timeout closing it, say): the pool's bound.
pub(crate) const PROVEN_AFTER: Duration = Duration::from_secs(10);

/// How long a connection must have been up for a GOAWAY ending it, unused, to count as the
/// server retiring it (its idle timeout, its maximum age, or a drain), not as a failed attempt:
/// the pool's bound (`AT_ONCE` in `pool/maintain.rs`). Sooner, it is a server sending every
/// connection away at once, reconnected with backoff.
pub(crate) const RETIRED_AFTER: Duration = Duration::from_secs(1);

/// The member's backoff, and its last connection's start.
#[derive(Debug, Default)]
pub(crate) struct Reconnect {
    /// Made at the first failure; `None` after a connection that proved the server.
    backoff: Option<BackoffState>,
    /// The last connection a connect task set.
    up: Option<Up>,
}

/// The last connection a connect task set.
#[derive(Debug)]
struct Up {
    /// When it came up.
    at: Instant,
    /// The member's count of calls answered then.
    answered: u64,
    /// The connection (`None`: not known, judged as one the server ended).
    conn: Option<ClientConnection>,
}

impl Up {
    /// Whether the server ended it: closed, and not by this side or with its runtime.
    fn ended_by_server(&self) -> bool {
        self.conn.as_ref().is_none_or(|conn| {
            conn.is_closed() && !conn.closed_by_client() && !conn.lost_with_runtime()
        })
    }

    /// Whether the server sent it away (GOAWAY) after its handshake, `lasted` after it came
    /// up: a retirement, when that is [`RETIRED_AFTER`] or more.
    fn retired(&self, lasted: Duration) -> bool {
        lasted >= RETIRED_AFTER
            && self
                .conn
                .as_ref()
                .is_some_and(|conn| conn.is_handshaken() && conn.was_sent_away())
    }
}

/// A connection that did not prove its server: when the next attempt is due, and its age.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Unproven {
    /// The backoff's wait, from when the connection came up.
    pub(crate) due: Instant,
    /// How long the connection was up (at most: until now).
    pub(crate) lasted: Duration,
}

impl Reconnect {
    /// Called as a connect task starts, with the member's count of calls answered now: the
    /// last connection set (if any) proved the server, and the backoff starts over (`None`),
    /// or the server retired it (`None`, the backoff kept), or neither, and it counts as a
    /// failed attempt.
    pub(crate) fn start(&mut self, config: Backoff, answered: u64) -> Option<Unproven> {
        let up = self.up.take()?;
        let lasted = up.at.elapsed();
        if answered != up.answered || lasted >= PROVEN_AFTER || !up.ended_by_server() {
            self.backoff = None;
            return None;
        }
        if up.retired(lasted) {
            return None;
        }
        let due = sockrpc_transport::deadline_after(up.at, self.failed(config));
        Some(Unproven { due, lasted })
    }

    /// An attempt (or a connection) failed: the wait before the next, and the backoff grows.
    pub(crate) fn failed(&mut self, config: Backoff) -> Duration {
        let state = self
            .backoff
            .get_or_insert_with(|| BackoffState::new(config));
        let wait = state.current();
        state.fail();
        wait
    }

    /// The driver's upkeep found the member connected, having answered `answered` calls so far;
    /// `conns` gives its pool's connections. With no backoff grown (nearly always) nothing is
    /// done. Otherwise the connection noted is judged while it stays live; one gone (or never
    /// known) gives way to the connection up now, noted from now: live and past its handshake
    /// (a pool's other slots may hold one still waiting for the server's preface), and when
    /// none is (it closed since the upkeep looked) nothing is noted, as a gap between two
    /// connections must not join them into one that lasted. Once the one noted proved the
    /// server (a call answered since, or up [`PROVEN_AFTER`]) the backoff starts over: true
    /// then, and the caller clears the member's failure.
    pub(crate) fn seen_connected(
        &mut self,
        answered: u64,
        conns: impl FnOnce() -> Vec<ClientConnection>,
    ) -> bool {
        if self.backoff.is_none() {
            return false;
        }
        let noted = self
            .up
            .as_ref()
            .filter(|up| up.conn.as_ref().is_some_and(|c| !c.is_closed()));
        let Some(up) = noted else {
            // The connection up is not the one noted (that one closed, or was judged).
            let up = conns()
                .into_iter()
                .find(|c| !c.is_closed() && c.is_handshaken());
            if up.is_some() {
                self.came_up(answered, up);
            }
            return false;
        };
        if answered == up.answered && up.at.elapsed() < PROVEN_AFTER {
            return false;
        }
        self.backoff = None;
        true
    }

    /// Whether the backoff grew since a connection last proved the server.
    #[cfg(test)]
    pub(crate) fn grown(&self) -> bool {
        self.backoff.is_some()
    }

    /// A connect task set a channel over `conn`, the member having answered `answered` calls
    /// so far.
    pub(crate) fn came_up(&mut self, answered: u64, conn: Option<ClientConnection>) {
        self.up = Some(Up {
            at: Instant::now(),
            answered,
            conn,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unproven_connection_is_a_failed_attempt_and_a_proven_one_resets() {
        let config = Backoff::default();
        let mut reconnect = Reconnect::default();
        assert!(reconnect.start(config, 0).is_none(), "nothing set yet");
        reconnect.came_up(0, None);
        tokio::time::advance(Duration::from_millis(5)).await;
        let first = reconnect
            .start(config, 0)
            .expect("dropped at once, nothing answered");
        assert!(first.lasted < Duration::from_secs(1));
        reconnect.came_up(0, None);
        let second = reconnect.start(config, 0).expect("again");
        assert!(
            second.due - Instant::now() > first.due - Instant::now(),
            "the backoff grows: {first:?} then {second:?}"
        );
        // A call answered on it: proven, the backoff starts over.
        reconnect.came_up(0, None);
        assert!(reconnect.start(config, 1).is_none());
        assert!(reconnect.backoff.is_none());
        // Up long enough: proven too.
        reconnect.came_up(1, None);
        reconnect.start(config, 1);
        reconnect.came_up(1, None);
        tokio::time::advance(PROVEN_AFTER).await;
        assert!(reconnect.start(config, 1).is_none());
        assert!(reconnect.backoff.is_none());
    }

    #[tokio::test]
    async fn a_connection_seen_up_resets_the_backoff_once_it_proves_the_server() {
        // The pool's connection: a real one, up past its handshake.
        let port = super::super::health_tests::hello_server().await;
        let channel = crate::Channel::connect(sockrpc_transport::Endpoint::new("127.0.0.1", port))
            .await
            .expect("connected");
        tokio::time::timeout(Duration::from_secs(10), channel.connection_up())
            .await
            .expect("handshaken in time");
        let live = channel.connections();
        tokio::time::pause();
        let config = Backoff::default();
        let mut reconnect = Reconnect::default();
        // Nothing grown: nothing noted, however long it is up.
        assert!(!reconnect.seen_connected(0, || live.clone()));
        assert!(reconnect.up.is_none());
        // A connection that ended at once, judged by the next connect task: the backoff grows.
        reconnect.came_up(0, None);
        assert!(reconnect.start(config, 0).is_some());
        assert!(reconnect.backoff.is_some());
        // Its pool reconnected by itself while the task waited: seen up, noted from now.
        assert!(
            !reconnect.seen_connected(0, || live.clone()),
            "not proven yet"
        );
        assert!(reconnect.up.is_some(), "the pool's connection noted");
        assert!(
            !reconnect.seen_connected(0, || live.clone()),
            "still nothing answered"
        );
        assert!(reconnect.backoff.is_some());
        // A call answered on it: proven, the backoff starts over.
        assert!(reconnect.seen_connected(1, || live.clone()));
        assert!(reconnect.backoff.is_none());
        // And when it goes, the next task judges it proven: no wait.
        assert!(reconnect.start(config, 1).is_none());

        // Up long enough with nothing answered proves it too.
        reconnect.came_up(1, None);
        assert!(reconnect.start(config, 1).is_some());
        assert!(!reconnect.seen_connected(1, || live.clone()));
        tokio::time::advance(PROVEN_AFTER).await;
        assert!(reconnect.seen_connected(1, || live.clone()));
        assert!(reconnect.backoff.is_none());

        // Nothing up to note (the connection closed since the upkeep looked): nothing noted.
        reconnect.came_up(1, None);
        assert!(reconnect.start(config, 1).is_some());
        assert!(!reconnect.seen_connected(1, Vec::new));
        assert!(reconnect.up.is_none());
    }
}
