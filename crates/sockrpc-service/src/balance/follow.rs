//! Keeping a balanced channel's members current: the task that follows discovery (inserts,
//! removals, weights) and the per-member connect task that reconnects with backoff, recording
//! each failure so fail-fast calls know not to wait (`channel.rs`, `Shared::all_failing`).
//!
//! Both run on the runtime of whoever started them, and a channel may outlive that runtime (a
//! channel kept in a static, used by tests that each run their own runtime). So neither task
//! owns anything the channel needs afterwards: the discovery stream goes back to the channel
//! when the following task ends unfinished ([`Following`]), and a member's right to connect is
//! given back however its task ends ([`Connecting`]); the next call, on whatever runtime it
//! runs, starts them again there.

use super::channel::{lock, Shared};
use super::health::{watch_member, HealthProbe};
use super::in_order::connect_in_order;
use super::member::{Member, Members};
use crate::discovery::{Change, ChangeStream};
use crate::Channel;
use sockrpc_transport::endpoint::Endpoint;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How often the driver looks for servers whose connection went away with no call to notice.
const UPKEEP: Duration = Duration::from_millis(250);

/// The discovery stream, held by the task following it: given back to the channel when the
/// task ends unfinished (dropped with its runtime), so that the next one takes it up where this
/// one stopped; `None` once discovery ended. Either way the channel's driver counts as stopped
/// afterwards, and the calls waiting for an endpoint look again (and start another).
pub(super) struct Following {
    shared: Weak<Shared>,
    changes: Option<ChangeStream>,
}

impl Following {
    pub(super) fn new(shared: Weak<Shared>, changes: Option<ChangeStream>) -> Following {
        Following { shared, changes }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.driver_stopped(self.changes.take());
        }
    }
}

/// Follows discovery until the channel is dropped; between changes, reconnects servers whose
/// connection went away (which also tells discovery, so DNS looks again early).
pub(super) async fn follow(mut following: Following) {
    let shared = following.shared.clone();
    let mut upkeep = tokio::time::interval(UPKEEP);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // `Some(Some(change))`: a change; `Some(None)`: discovery ended (the set stays as it
        // is); `None`: an upkeep tick.
        let open = following.changes.is_some();
        let next = tokio::select! {
            change = std::future::poll_fn(|cx| match following.changes.as_mut() {
                Some(changes) => changes.as_mut().poll_next(cx),
                None => std::task::Poll::Pending,
            }), if open => Some(change),
            _ = upkeep.tick() => None,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match next {
            Some(Some(change)) => {
                apply(&shared, change);
                // The last change of an answer on its way: calls that woke before it clears
                // the error look again (they would wait for a next change).
                if shared
                    .problem
                    .as_ref()
                    .is_some_and(crate::discovery::Problem::applied)
                {
                    shared.bump();
                }
                // After the change (a call must never see the set answered and still empty
                // before its first insert), then a second wake for calls that looked between.
                if !shared.answered.swap(true, Ordering::AcqRel) {
                    shared.bump();
                }
            }
            Some(None) => {
                // Not polled again (a stream may panic when polled after its end).
                following.changes = None;
                shared.answered.store(true, Ordering::Release);
                // Calls waiting on an empty set look again: none is coming now.
                shared.bump();
            }
            None => {
                for m in shared.snapshot().list() {
                    if m.channel().is_none() {
                        continue;
                    }
                    if m.is_connected() {
                        // Its backoff and failure end once the connection proves the server,
                        // whoever made it (`reconnect.rs`).
                        m.seen_connected();
                    } else {
                        connect(&shared, m);
                    }
                }
            }
        }
    }
}

fn apply(shared: &Arc<Shared>, change: Change) {
    let current = shared.snapshot();
    let mut list = current.list().to_vec();
    let mut spawn = None;
    // The connections of members that leave the set: they close as their pools go, and are
    // kept (`Shut::retire`) while they carry calls.
    let mut gone = Vec::new();
    match change {
        Change::Insert {
            key,
            endpoint,
            weight,
            priority,
        } => {
            let same = list.iter().position(|m| m.key() == key);
            match same {
                Some(i) if list[i].endpoint().to_string() == endpoint.to_string() => {
                    list[i].set_weight(weight);
                    list[i].set_priority(priority);
                }
                _ => {
                    let mut member = Member::new(key.clone(), *endpoint, weight, shared.decay);
                    member.set_priority(priority);
                    member.answered = lock(&shared.totals).arrive(key, list.len());
                    let member = Arc::new(member);
                    spawn = Some(Arc::clone(&member));
                    match same {
                        Some(i) => {
                            let old = std::mem::replace(&mut list[i], member);
                            gone.extend(old.channel().map(|c| c.connections()));
                        }
                        None => list.push(member),
                    }
                }
            }
        }
        Change::Remove(key) => {
            lock(&shared.totals).depart(&key);
            gone.extend(
                list.iter()
                    .filter(|m| m.key() == key)
                    .filter_map(|m| m.channel())
                    .map(|c| c.connections()),
            );
            list.retain(|m| m.key() != key);
        }
        Change::Weight(key, weight) => {
            if let Some(m) = list.iter().find(|m| m.key() == key) {
                m.set_weight(weight);
            }
        }
    }
    let next = Arc::new(Members::new(current.generation() + 1, list));
    *shared.members.write().unwrap_or_else(|p| p.into_inner()) = next;
    shared.shut.retire(gone.into_iter().flatten());
    if shared.in_order {
        // The endpoint in use stays while it is listed (as grpc-go's pick_first keeps its
        // connection); else a pass starts from the first of the new list.
        connect_in_order(shared);
    } else if let Some(member) = spawn {
        connect(shared, &member);
    }
    shared.bump();
}

/// A member's right to connect, given back when its connect task ends for any reason:
/// connected, the member gone, or dropped unfinished with its runtime (in the middle of an
/// attempt, or of its backoff), so that the next call or upkeep starts another.
struct Connecting(Weak<Member>);

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(member) = self.0.upgrade() {
            member.end_connecting();
        }
    }
}

/// A member's health watch running: cleared when the task is dropped unfinished (with its
/// runtime), so that the member's next connection starts another. A watch that ended by itself
/// (the member is gone) stays ended; one runs for the member's life, following its connections.
struct Watching {
    member: Weak<Member>,
    ended: bool,
}

impl Watching {
    /// The watch ended by itself: it stays ended.
    fn finish(mut self) {
        self.ended = true;
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let (false, Some(member)) = (self.ended, self.member.upgrade()) {
            member.end_health_watch();
        }
    }
}

/// Starts `member`'s health watch through `probe` unless one runs.
pub(super) fn watch_health(
    shared: &Arc<Shared>,
    member: &Arc<Member>,
    probe: &Arc<dyn HealthProbe>,
) {
    if !member.begin_health_watch() {
        return;
    }
    let epoch = Arc::downgrade(shared);
    let watching = Watching {
        member: Arc::downgrade(member),
        ended: false,
    };
    let watch = watch_member(Arc::downgrade(member), Arc::clone(probe), move || {
        if let Some(s) = epoch.upgrade() {
            s.bump();
        }
    });
    let task = tokio::spawn(async move {
        watch.await;
        watching.finish();
    });
    // Stopped when the member goes (removed, or the channel dropped).
    member.set_health_watch(task.abort_handle());
    // Or now, if the channel closed since its connect task last looked: `shut_down` raises
    // the level before it stops each member's watch, so either it found this one or the level
    // shows here (the member's watch lock orders the two).
    if shared.shut.is_closed() {
        member.stop_health_watch();
    }
}

/// Starts (re)connecting `member` in the background unless a task already does; with a picker
/// that connects in order ([`Picker::connects_in_order`](super::Picker::connects_in_order)),
/// starts a pass over the endpoints instead, unless one runs or one endpoint is connected
/// (`in_order.rs`).
pub(super) fn connect(shared: &Arc<Shared>, member: &Arc<Member>) {
    if shared.in_order {
        return connect_in_order(shared);
    }
    // Counted before the look at the level: `Balanced::closed` waits for every task counted.
    let task = shared.shut.task(shared);
    if shared.shut.is_closed() || !member.begin_connecting() {
        return;
    }
    let weak_member = Arc::downgrade(member);
    let weak_shared = Arc::downgrade(shared);
    let connecting = Connecting(Arc::downgrade(member));
    let closing = shared.shut.closing();
    tokio::spawn(async move {
        let _task = task;
        // Stops when the channel closes, an attempt or a backoff under way dropped with it.
        tokio::pin!(closing);
        // Given back exactly once, by the guard, however the task ends.
        let connecting = connecting;
        // The endpoint's reconnect backoff (gRPC's: 1 s, ×1.6, ±20 %, at most 120 s), each
        // wait measured from the start of the attempt that failed, kept by the member across
        // its connect tasks (`reconnect.rs`). A last connection that ended before it proved
        // the server is a failed attempt: its wait is served first.
        if !wait_unproven(&weak_member, &weak_shared, &mut closing).await {
            return;
        }
        loop {
            let Some(endpoint) = weak_member.upgrade().map(|m| m.endpoint().clone()) else {
                return;
            };
            let began = Instant::now();
            let config = endpoint.backoff;
            let outcome = attempt(endpoint, &mut closing).await;
            let (Some(member), Some(shared)) = (weak_member.upgrade(), weak_shared.upgrade())
            else {
                return;
            };
            if shared.shut.is_closed() {
                if let Ok(channel) = outcome {
                    shared.shut.close_late(channel);
                }
                return;
            }
            match outcome {
                Ok(channel) if member.is_connected() => {
                    // Its pool reconnected by itself while the attempt ran, and may carry
                    // calls: that channel stays, as when the task wakes to it below, and this
                    // one closes (`tests/hostile/balance_raced.rs`).
                    channel.close();
                    member.seen_connected();
                    drop(connecting);
                    shared.bump();
                    return;
                }
                Ok(channel) => {
                    let answered = member.answered.load(Ordering::Relaxed);
                    let conn = channel.connections().into_iter().next();
                    member.reconnect().came_up(answered, conn);
                    // Replaced all the same when its pool connected since the look above.
                    if let Some(old) = member.set_channel(channel.clone()) {
                        shared.shut.retire(old.connections());
                    }
                    if shared.shut.is_closed() {
                        // Closed just now: `shut_down` may have looked before it was set.
                        shared.shut.close_late(channel);
                        return;
                    }
                    member.connect_succeeded();
                    // Given back now, and not again as the task ends: by then another connect
                    // task may have claimed the member, whose claim a second release would
                    // clear, letting a third start beside it.
                    drop(connecting);
                    // The first connection's, or one that replaces a watch gone with its
                    // runtime.
                    if let Some(probe) = &shared.probe {
                        watch_health(&shared, &member, probe);
                    }
                    shared.bump();
                    return;
                }
                Err(reason) => {
                    tracing::debug!(endpoint = member.key(), error = %reason, "connect failed");
                    member.connect_failed(reason);
                }
            }
            if let Some(hint) = &shared.on_failure {
                hint.notify_one();
            }
            // Fail-fast calls waiting for an endpoint look again: this one is failing now.
            shared.bump();
            let next = sockrpc_transport::deadline_after(began, member.reconnect().failed(config));
            drop((member, shared));
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = &mut closing => return,
            }
            // Its pool may have reconnected by itself meanwhile. That channel stays: a second
            // one would replace it, the calls on it, its connection closed for nothing (a
            // grpc-go subchannel never has two transports racing for one address). Its
            // connection is judged as the upkeep judges any it finds up (`reconnect.rs`).
            let Some(member) = weak_member.upgrade() else {
                return;
            };
            if member.is_connected() {
                member.seen_connected();
                return;
            }
        }
    });
}

/// Waits out the backoff when the server ended the member's last connection before it proved
/// itself (`reconnect.rs`), the member counted as failing meanwhile, so fail-fast calls do not wait
/// for it. False when the task is to end: the member or the channel gone, the channel
/// closing, or the member connected again meanwhile (its pool reconnected by itself).
async fn wait_unproven(
    member: &Weak<Member>,
    shared: &Weak<Shared>,
    closing: &mut (impl Future<Output = ()> + Unpin),
) -> bool {
    let unproven = {
        let (Some(member), Some(shared)) = (member.upgrade(), shared.upgrade()) else {
            return false;
        };
        let answered = member.answered.load(Ordering::Relaxed);
        let backoff = member.endpoint().backoff;
        let Some(unproven) = member.reconnect().start(backoff, answered) else {
            return true;
        };
        tracing::debug!(
            endpoint = member.key(),
            lasted = ?unproven.lasted,
            "connection ended before the server answered a call: reconnecting with backoff"
        );
        member.connect_failed(format!(
            "the connection closed {:?} after it came up, before the server answered a call",
            unproven.lasted
        ));
        if let Some(hint) = &shared.on_failure {
            hint.notify_one();
        }
        // Fail-fast calls waiting for an endpoint look again: this one is failing now.
        shared.bump();
        unproven
    };
    tokio::select! {
        () = tokio::time::sleep_until(unproven.due) => {}
        () = &mut *closing => return false,
    }
    member.upgrade().is_some_and(|m| !m.is_connected())
}

/// One connection attempt to `endpoint`, within its connect timeout: the channel, up once the
/// server's preface arrived (a server shutting down may leave the kernel to complete the TCP
/// handshake from its backlog, then never answer), else why not. `closing` (the balanced
/// channel closing) ends it: a channel still in its handshake is then handed back as it is,
/// to be closed with the balanced channel and waited for.
pub(super) async fn attempt(
    endpoint: Endpoint,
    closing: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Channel, String> {
    let timeout = endpoint.connect_timeout;
    let attempt = tokio::time::timeout(timeout, async {
        let channel = tokio::select! {
            channel = Channel::connect(endpoint) => channel?,
            () = &mut *closing => {
                return Err(sockrpc_protocol::Status::cancelled("the channel closed"));
            }
        };
        let Some(conn) = channel.connections().into_iter().next() else {
            return Err(sockrpc_protocol::Status::unavailable(
                "no connection came up",
            ));
        };
        tokio::select! {
            ready = conn.ready() => ready.map(|()| channel),
            () = &mut *closing => Ok(channel),
        }
    })
    .await;
    match attempt {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(err)) => Err(err.message().to_owned()),
        Err(_) => Err(format!("connect timed out after {timeout:?}")),
    }
}
