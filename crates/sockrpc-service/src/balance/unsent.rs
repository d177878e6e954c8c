//! A balanced call that was never sent (its endpoint had no connection up as it was picked)
//! made no attempt: grpc-go picks such a call again, uncounted, until its deadline (a
//! transparent retry of a call that reached no transport), where one a server refused
//! unprocessed goes to `BalanceBuilder::attempts` endpoints at most. Counted as attempts, three
//! in a row failed a wait-for-ready call `UNAVAILABLE` with its deadline far. The loop is bounded
//! by the call's wait for an endpoint (`choose`, `wait.rs`) and paced here, so that a call
//! without a deadline whose endpoint keeps failing it unsent never spins.

use super::channel::Balanced;
use super::member::Member;
use super::wait::{Resolved, Wait};
use sockrpc_protocol::Status;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl Balanced {
    /// Waits before a call never sent again and again is picked again (`note_unsent`): for news
    /// of the endpoints (a connection up or gone, a health change) or [`PACE`], whichever comes
    /// first, so that a call whose endpoints keep failing it unsent never spins; within the
    /// call's wait for an endpoint, past which it fails as that wait does.
    pub(super) async fn pause(&self, wait: Wait, last: &Status, unsent: u32) -> Result<(), Status> {
        let mut epoch = self.shared.epoch.subscribe();
        let members = self.shared.snapshot();
        let Resolved {
            for_ready,
            until,
            deadline,
        } = wait.resolve(members.list());
        let wake = Instant::now() + PACE;
        let wake = until.map_or(wake, |until| wake.min(until));
        tokio::select! {
            _ = epoch.changed() => {}
            () = tokio::time::sleep_until(wake) => {}
        }
        if until.is_none_or(|until| Instant::now() < until) {
            return Ok(());
        }
        let message = self.shared.with_problem(format!(
            "no endpoint took the call: not sent, {unsent} times; last: {}",
            last.message()
        ));
        // As when the wait for an endpoint ends (`choose`).
        let expired = deadline.is_some_and(|d| Instant::now() >= d);
        Err(if for_ready || expired {
            Status::deadline_exceeded(message)
        } else {
            Status::unavailable(message)
        })
    }
}

/// How long a call never sent again and again waits for news before it is picked again
/// ([`Balanced::pause`]), as a call waiting for an endpoint looks again (`choose`).
const PACE: Duration = Duration::from_millis(50);

/// Notes that `member` failed the call never sent: it is tried last from now on, and the call
/// goes again, as grpc-go picks again, uncounted, a call that reached no transport, until its
/// deadline. Whether the call waits ([`Balanced::pause`]) before it is picked again: once it
/// was never sent `attempts` times, so that the loop is paced, not only bounded by the deadline
/// (a call without one would otherwise spin on an endpoint that keeps failing it so).
pub(super) fn note_unsent(
    tried: &mut Vec<Arc<Member>>,
    member: Arc<Member>,
    unsent: &mut u32,
    attempts: u32,
) -> bool {
    *unsent += 1;
    if !tried.iter().any(|t| Arc::ptr_eq(t, &member)) {
        tried.push(member);
    }
    *unsent >= attempts
}
