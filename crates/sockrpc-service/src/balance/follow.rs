//! Keeping a balanced channel's members current: the task that follows discovery (inserts,
//! removals, weights) and the per-member connect task that reconnects with backoff, recording
//! each failure so fail-fast calls know not to wait (`channel.rs`, `Shared::all_failing`).

use super::channel::{lock, Shared};
use super::health::watch_member;
use super::member::{Member, Members};
use crate::discovery::Change;
use crate::Channel;
use sockrpc_transport::backoff::BackoffState;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How often the driver looks for servers whose connection went away with no call to notice.
const UPKEEP: Duration = Duration::from_millis(250);

/// Follows discovery until the channel is dropped; between changes, reconnects servers whose
/// connection went away (which also tells discovery, so DNS looks again early).
pub(super) async fn follow(shared: Weak<Shared>, mut changes: crate::discovery::ChangeStream) {
    let mut upkeep = tokio::time::interval(UPKEEP);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    loop {
        // `Some(Some(change))`: a change; `Some(None)`: discovery ended (the set stays as it
        // is); `None`: an upkeep tick.
        let next = tokio::select! {
            change = std::future::poll_fn(|cx| changes.as_mut().poll_next(cx)), if open => Some(change),
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
                open = false;
                shared.answered.store(true, Ordering::Release);
                // Calls waiting on an empty set look again: none is coming now.
                shared.bump();
            }
            None => {
                for m in shared.snapshot().list() {
                    if m.channel().is_some() && !m.is_connected() {
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
                        Some(i) => list[i] = member,
                        None => list.push(member),
                    }
                }
            }
        }
        Change::Remove(key) => {
            lock(&shared.totals).depart(&key);
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
    if let Some(member) = spawn {
        connect(shared, &member);
    }
    shared.bump();
}

/// Starts (re)connecting `member` in the background unless a task already does.
pub(super) fn connect(shared: &Arc<Shared>, member: &Arc<Member>) {
    if !member.begin_connecting() {
        return;
    }
    let weak_member = Arc::downgrade(member);
    let weak_shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        // The endpoint's reconnect backoff (gRPC's: 1 s, ×1.6, ±20 %, at most 120 s), each
        // wait measured from the start of the attempt that failed; made at the first failure.
        let mut backoff: Option<BackoffState> = None;
        loop {
            let Some(endpoint) = weak_member.upgrade().map(|m| m.endpoint().clone()) else {
                return;
            };
            let began = Instant::now();
            let config = endpoint.backoff;
            let timeout = endpoint.connect_timeout;
            let attempt = tokio::time::timeout(timeout, async {
                let channel = Channel::connect(endpoint).await?;
                // Up only once the server's preface arrived: a server shutting down may leave
                // the kernel to complete the TCP handshake from its backlog, then never answer.
                let first = channel.connections().into_iter().next();
                match first {
                    Some(conn) => conn.ready().await.map(|()| channel),
                    None => Err(sockrpc_protocol::Status::unavailable(
                        "no connection came up",
                    )),
                }
            })
            .await;
            let (Some(member), Some(shared)) = (weak_member.upgrade(), weak_shared.upgrade())
            else {
                return;
            };
            match attempt {
                Ok(Ok(channel)) => {
                    let first = member.channel().is_none();
                    member.set_channel(channel);
                    member.connect_succeeded();
                    member.end_connecting();
                    if let (true, Some(probe)) = (first, &shared.probe) {
                        let epoch = weak_shared.clone();
                        let watch = tokio::spawn(watch_member(
                            Arc::downgrade(&member),
                            Arc::clone(probe),
                            move || {
                                if let Some(s) = epoch.upgrade() {
                                    s.bump();
                                }
                            },
                        ));
                        // Stopped when the member goes (removed, or the channel dropped).
                        member.set_health_watch(watch.abort_handle());
                    }
                    shared.bump();
                    return;
                }
                Ok(Err(err)) => {
                    tracing::debug!(endpoint = member.key(), error = %err, "connect failed");
                    member.connect_failed(err.message().to_string());
                }
                Err(_) => {
                    tracing::debug!(endpoint = member.key(), "connect timed out");
                    member.connect_failed(format!("connect timed out after {timeout:?}"));
                }
            }
            if let Some(hint) = &shared.on_failure {
                hint.notify_one();
            }
            // Fail-fast calls waiting for an endpoint look again: this one is failing now.
            shared.bump();
            drop((member, shared));
            let state = backoff.get_or_insert_with(|| BackoffState::new(config));
            let next = began + state.current();
            state.fail();
            tokio::time::sleep_until(next).await;
        }
    });
}
