//! Connecting one endpoint at a time, in order, for [`PickFirst`](super::PickFirst): grpc-go's
//! `pick_first` holds a connection only to the address it uses, not one to each.
//!
//! Why not the per-member connect tasks the other pickers use (`follow.rs`): they keep every
//! endpoint connected, which is what a picker choosing among them per call needs, but a client
//! that sends every call to one server (a primary with standbys listed after it) would hold a
//! connection to each standby for nothing, and each standby would carry one per client.
//!
//! A pass tries the endpoints in discovery's order, one attempt at a time, except that an
//! attempt still under way after [`NEXT_AFTER`] has the next one's start beside it (grpc-go's
//! Happy Eyeballs, gRFC A61); the first to connect is kept, the attempts still under way are
//! dropped, and any other endpoint's channel is let go. When every endpoint failed, the next
//! pass starts after the first endpoint's reconnect backoff; an endpoint discovery adds
//! meanwhile is tried at once, alone (gRFC A62: a new address list is tried in
//! TRANSIENT_FAILURE). When the endpoint in use loses its connection (noticed as the other
//! pickers' members are: a call failing on it, the next call, or the driver's upkeep), a pass
//! starts again from the first endpoint. A set change keeps the endpoint in use while it is
//! still listed; else a pass starts over the new list.

use super::channel::Shared;
use super::follow::{attempt, watch_health};
use super::member::Member;
use crate::Channel;
use sockrpc_transport::backoff::BackoffState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// How long an attempt runs alone before the next endpoint's attempt starts beside it
/// (grpc-go's Happy Eyeballs delay).
pub(super) const NEXT_AFTER: Duration = Duration::from_millis(250);

/// The right to run a pass, given back however the pass task ends (done, the channel dropped,
/// or dropped unfinished with its runtime), so that the next trigger starts another.
pub(super) struct Passing(Weak<Shared>);

#[cfg(test)]
impl Passing {
    /// The right as a pass task holds it, once `shared.passing` was claimed.
    pub(super) fn held(shared: &Arc<Shared>) -> Passing {
        Passing(Arc::downgrade(shared))
    }
}

impl Drop for Passing {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.passing.store(false, Ordering::Release);
        }
    }
}

/// A pass task's end (not a task dropped unfinished): its right given back, then the set looked
/// at again. An endpoint discovery inserted between the pass's last look at the set (empty)
/// and now found the pass running and started none; with no call to start one, it would wait
/// for the next (`in_order_tests.rs`). An insert after the flag is down starts its own.
pub(super) fn pass_ended(passing: Passing, shared: &Weak<Shared>) {
    drop(passing);
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let members = shared.snapshot();
    let list = members.list();
    if !list.is_empty() && !list.iter().any(|m| m.is_connected()) {
        connect_in_order(&shared);
    }
}

/// Starts a pass over the endpoints in the background, unless one runs (one atomic load then):
/// it ends at once when an endpoint is connected, letting the others' channels go.
pub(super) fn connect_in_order(shared: &Arc<Shared>) {
    if shared.passing.load(Ordering::Acquire) || shared.shut.is_closed() {
        return;
    }
    // Counted before the second look at the level: `Balanced::closed` waits for it.
    let task = shared.shut.task(shared);
    if shared.shut.is_closed() || shared.passing.swap(true, Ordering::AcqRel) {
        return;
    }
    let passing = Passing(Arc::downgrade(shared));
    let weak = Arc::downgrade(shared);
    let closing = shared.shut.closing();
    tokio::spawn(async move {
        let _task = task;
        tokio::pin!(closing);
        passes(weak.clone(), &mut closing).await;
        pass_ended(passing, &weak);
    });
}

/// Passes until an endpoint is connected, the set is empty, or the channel closes or goes.
async fn passes(shared: Weak<Shared>, closing: &mut (impl Future<Output = ()> + Unpin)) {
    // The first endpoint's reconnect backoff (gRPC's: 1 s, ×1.6, ±20 %, at most 120 s)
    // between passes, each wait measured from the start of the pass that failed.
    let mut backoff: Option<BackoffState> = None;
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let members = s.snapshot();
        if let Some(held) = members.list().iter().find(|m| m.is_connected()) {
            // The endpoint in use (this pass's, or one still up): the others hold nothing.
            release_others(&s, held);
            return;
        }
        // An empty set: the next insert starts a pass.
        let Some(first) = members.list().first() else {
            return;
        };
        let config = first.endpoint().backoff;
        // The endpoints this pass knows of (weak: one removed goes, its channel with it).
        let mut known: Vec<Weak<Member>> = members.list().iter().map(Arc::downgrade).collect();
        drop((s, members));
        let began = Instant::now();
        if !pass(&shared, &mut known, false).await {
            return;
        }
        if !is_connected(&shared) {
            let state = backoff.get_or_insert_with(|| BackoffState::new(config));
            let next = sockrpc_transport::deadline_after(began, state.current());
            state.fail();
            // Meanwhile an endpoint discovery adds is tried at once, alone: grpc-go's
            // pick_first tries a new address list in TRANSIENT_FAILURE (gRFC A62) without
            // waiting out the backoff of the addresses that failed (up to 120 s). Those that
            // failed keep their wait, and one this pass did not reach (it stopped at an
            // endpoint that connected, then lost its connection at once) is not new.
            loop {
                match backoff_until(&shared, next, &known, closing).await {
                    Wake::Gone => return,
                    Wake::Due => break,
                    Wake::Added => {
                        if !pass(&shared, &mut known, true).await {
                            return;
                        }
                        if is_connected(&shared) {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// A pass over the endpoints (with `only_new`, over those not `known` only), each one tried
/// added to `known`; what [`first_to_connect`] returns.
async fn pass(shared: &Weak<Shared>, known: &mut Vec<Weak<Member>>, only_new: bool) -> bool {
    let skip = if only_new { known.clone() } else { Vec::new() };
    let mut tried = Vec::new();
    let open = first_to_connect(shared, &mut tried, &skip).await;
    known.extend(tried.iter().map(Arc::downgrade));
    open
}

/// Whether an endpoint of the set is connected.
fn is_connected(shared: &Weak<Shared>) -> bool {
    shared
        .upgrade()
        .is_some_and(|s| s.snapshot().list().iter().any(|m| m.is_connected()))
}

/// Why [`backoff_until`] returned.
enum Wake {
    /// The wait is over: the next pass is due.
    Due,
    /// The set holds an endpoint not known to the passes since the wait's.
    Added,
    /// The channel closed or went.
    Gone,
}

/// Waits until `next`, or until the set holds an endpoint not in `known`.
async fn backoff_until(
    shared: &Weak<Shared>,
    next: Instant,
    known: &[Weak<Member>],
    closing: &mut (impl Future<Output = ()> + Unpin),
) -> Wake {
    let Some(mut epoch) = shared.upgrade().map(|s| s.epoch.subscribe()) else {
        return Wake::Gone;
    };
    loop {
        // Before the look: a change after it wakes the wait below.
        epoch.mark_unchanged();
        let Some(s) = shared.upgrade() else {
            return Wake::Gone;
        };
        let added = s.snapshot().list().iter().any(|m| !is_known(known, m));
        drop(s);
        if added {
            return Wake::Added;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => return Wake::Due,
            () = &mut *closing => return Wake::Gone,
            changed = epoch.changed() => {
                if changed.is_err() {
                    return Wake::Gone;
                }
            }
        }
    }
}

/// Whether `member` is one of `known`.
fn is_known(known: &[Weak<Member>], member: &Arc<Member>) -> bool {
    let member = Arc::downgrade(member);
    known.iter().any(|k| k.ptr_eq(&member))
}

/// An attempt under way: its member, and the channel it brings up or why not.
type Attempt = Pin<Box<dyn Future<Output = (Arc<Member>, Result<Channel, String>)> + Send>>;

/// One pass: tries the endpoints in order, but those in `skip`, until one connects (set as its
/// member's channel) or every one failed (each recorded), each one tried pushed to `tried`.
/// False when the channel closed or went: the attempts under way end then too (each watches the
/// close), and one that connected is closed the channel's way, waited for by
/// [`Balanced::closed`](super::Balanced::closed).
async fn first_to_connect(
    shared: &Weak<Shared>,
    tried: &mut Vec<Arc<Member>>,
    skip: &[Weak<Member>],
) -> bool {
    let mut attempts: Vec<Attempt> = Vec::new();
    // When the next endpoint's attempt starts (`None`: every endpoint is tried).
    let mut next_at = Some(Instant::now());
    loop {
        if next_at.is_some_and(|at| at <= Instant::now()) {
            let Some(s) = shared.upgrade() else {
                return false;
            };
            // In the set as it is now: one inserted meanwhile has its turn too.
            let next = s
                .snapshot()
                .list()
                .iter()
                .find(|m| !tried.iter().any(|t| Arc::ptr_eq(t, m)) && !is_known(skip, m))
                .cloned();
            next_at = match next {
                Some(member) => {
                    tried.push(Arc::clone(&member));
                    let endpoint = member.endpoint().clone();
                    let mut closing = Box::pin(s.shut.closing());
                    attempts.push(Box::pin(async move {
                        let outcome = attempt(endpoint, &mut closing).await;
                        (member, outcome)
                    }));
                    Some(Instant::now() + NEXT_AFTER)
                }
                None => None,
            };
            if s.shut.is_closed() {
                next_at = None;
            }
        }
        if attempts.is_empty() {
            // Every endpoint failed, or the channel closed.
            return shared.upgrade().is_some_and(|s| !s.shut.is_closed());
        }
        let start_next = async {
            match next_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let (member, outcome) = tokio::select! {
            done = std::future::poll_fn(|cx| first_done(&mut attempts, cx)) => done,
            () = start_next => continue,
        };
        let Some(s) = shared.upgrade() else {
            return false;
        };
        if s.shut.is_closed() {
            // Closed: no more attempts; what came up is closed with the channel.
            next_at = None;
            if let Ok(channel) = outcome {
                s.shut.close_late(channel);
            }
            continue;
        }
        match outcome {
            Ok(channel) if !s.snapshot().list().iter().any(|m| Arc::ptr_eq(m, &member)) => {
                // Removed from the set meanwhile: let go, and the next one's turn now.
                drop(channel);
                if next_at.is_some() {
                    next_at = Some(Instant::now());
                }
            }
            Ok(channel) => {
                // The attempts still under way are dropped with their channels.
                drop(attempts);
                keep(&s, &member, channel);
                return !s.shut.is_closed();
            }
            Err(reason) => {
                tracing::debug!(endpoint = member.key(), error = %reason, "connect failed");
                member.connect_failed(reason);
                // Its pool, if it kept a channel, may reconnect by itself meanwhile: the
                // driver's upkeep clears this failure once that connection proves the server,
                // but only for a member whose backoff grew (`Reconnect::seen_connected`).
                member.reconnect().failed(member.endpoint().backoff);
                if let Some(hint) = &s.on_failure {
                    hint.notify_one();
                }
                // Fail-fast calls waiting for an endpoint look again: this one is failing.
                s.bump();
                // The next endpoint's turn, now.
                if next_at.is_some() {
                    next_at = Some(Instant::now());
                }
            }
        }
    }
}

/// The first attempt to end, taken out of `attempts`.
fn first_done(
    attempts: &mut Vec<Attempt>,
    cx: &mut Context<'_>,
) -> Poll<(Arc<Member>, Result<Channel, String>)> {
    for i in 0..attempts.len() {
        if let Poll::Ready(done) = attempts[i].as_mut().poll(cx) {
            drop(attempts.swap_remove(i));
            return Poll::Ready(done);
        }
    }
    Poll::Pending
}

/// `member` connected: its channel is set (or closed, when the balanced channel closed), the
/// others' let go, its health watched, and the calls waiting for an endpoint look again.
fn keep(shared: &Arc<Shared>, member: &Arc<Member>, channel: Channel) {
    if shared.shut.is_closed() {
        shared.shut.close_late(channel);
        return;
    }
    if member.is_connected() {
        // Its kept channel's pool reconnected by itself while the attempt ran, and may carry
        // calls: that channel stays, and this one closes (as a connect task does, `follow.rs`).
        channel.close();
        member.seen_connected();
    } else if let Some(old) = member.set_channel(channel.clone()) {
        // Replaced: its pool may have connected since the look, calls on it kept for the close.
        shared.shut.retire(old.connections());
    }
    if shared.shut.is_closed() {
        // Closed just now: `shut_down` may have looked before it was set.
        shared.shut.close_late(channel);
        return;
    }
    member.connect_succeeded();
    release_others(shared, member);
    if let Some(probe) = &shared.probe {
        watch_health(shared, member, probe);
    }
    shared.bump();
}

/// Every member but `held` lets its channel go: its connection closes once the calls it
/// carries end (kept for the balanced channel's close meanwhile, as a removed member's).
fn release_others(shared: &Shared, held: &Arc<Member>) {
    for member in shared.snapshot().list() {
        if Arc::ptr_eq(member, held) {
            continue;
        }
        if let Some(channel) = member.take_channel() {
            shared.shut.retire(channel.connections());
        }
    }
}
