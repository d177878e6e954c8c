//! `Member`: one endpoint of a balanced channel — its own pool ([`Channel`]) and what the
//! balancer knows about it (load, health, failures). `Members`: one version of the set.

use super::outlier::{OutlierConfig, OutlierState};
use super::peak_ewma::{PeakEwma, DEFAULT_RTT};
use super::reconnect::Reconnect;
use crate::Channel;
use sockrpc_transport::endpoint::Endpoint;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the health check last said about an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// No answer yet (or no health checking), or none since its watch ended or failed.
    Unknown,
    /// `SERVING`: in rotation.
    Serving,
    /// `NOT_SERVING` (or any other answer but `SERVING`): out of rotation.
    NotServing,
}

/// One endpoint in a balanced channel.
pub struct Member {
    key: String,
    endpoint: Endpoint,
    weight: AtomicU32,
    /// Lower is preferred: calls go to the best priority with a usable endpoint.
    priority: AtomicU32,
    channel: RwLock<Option<Channel>>,
    /// Counts the channels set (or taken away): its health watch, on the channel it had, moves
    /// to a new one.
    channel_set: tokio::sync::watch::Sender<u64>,
    /// Connecting (or reconnecting) now: a task owns that.
    connecting: AtomicBool,
    /// Why its last connection attempt failed, until one succeeds: gRPC's TRANSIENT_FAILURE,
    /// in which a fail-fast call does not wait for it.
    failure: Mutex<Option<String>>,
    in_flight: AtomicUsize,
    ewma: Mutex<PeakEwma>,
    health: AtomicU8,
    /// Why its health watch ended or failed (cleanly, or with an error other than
    /// `UNIMPLEMENTED`), until a new one answers: gRPC's TRANSIENT_FAILURE, in which a
    /// fail-fast call does not wait for it.
    health_failure: Mutex<Option<String>>,
    outlier: Mutex<OutlierState>,
    /// Calls this endpoint answered (shared with the channel's totals, so they outlive it).
    pub(crate) answered: Arc<AtomicU64>,
    /// The task watching its health (`health.rs`), stopped when the member goes.
    health_watch: Mutex<Option<AbortHandle>>,
    /// A health watch task runs (or ended by itself); cleared when it was dropped with its
    /// runtime (`follow.rs`).
    health_watched: AtomicBool,
    /// Its reconnect backoff, kept across connect tasks (`reconnect.rs`).
    reconnect: Mutex<Reconnect>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("key", &self.key)
            .field("weight", &self.weight())
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Member {
    /// A member for `endpoint`, not connected yet.
    pub fn new(key: String, endpoint: Endpoint, weight: u32, decay: Duration) -> Member {
        Member {
            key,
            endpoint,
            weight: AtomicU32::new(weight.max(1)),
            priority: AtomicU32::new(0),
            channel: RwLock::new(None),
            channel_set: tokio::sync::watch::Sender::new(0),
            connecting: AtomicBool::new(false),
            failure: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            ewma: Mutex::new(PeakEwma::new(DEFAULT_RTT, decay)),
            health: AtomicU8::new(0),
            health_failure: Mutex::new(None),
            outlier: Mutex::new(OutlierState::default()),
            answered: Arc::default(),
            health_watch: Mutex::new(None),
            health_watched: AtomicBool::new(false),
            reconnect: Mutex::default(),
        }
    }

    /// The key discovery knows it by (usually `IP:PORT`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Its weight (≥ 1).
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    /// Its priority (lower is preferred; 0 unless discovery says otherwise, as SRV does).
    pub fn priority(&self) -> u32 {
        self.priority.load(Ordering::Relaxed)
    }

    pub(crate) fn set_priority(&self, priority: u32) {
        self.priority.store(priority, Ordering::Relaxed);
    }

    /// Calls in flight through the balancer.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The peak-EWMA round-trip estimate.
    pub fn rtt(&self) -> Duration {
        Duration::from_nanos(lock(&self.ewma).rtt_ns() as u64)
    }

    /// The p2c load: peak-EWMA latency (decayed for the time since its last sample while no
    /// call is in flight) × (in flight + 1) ÷ weight.
    pub fn load(&self) -> f64 {
        self.load_at(Instant::now())
    }

    /// [`Member::load`] at `now` (one clock read for both of p2c's choices).
    pub fn load_at(&self, now: Instant) -> f64 {
        lock(&self.ewma).cost(self.in_flight(), now) / f64::from(self.weight())
    }

    /// The last health answer.
    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            1 => Health::Serving,
            2 => Health::NotServing,
            _ => Health::Unknown,
        }
    }

    /// Records a health answer; returns whether it changed.
    pub(crate) fn set_health(&self, health: Health) -> bool {
        let v = match health {
            Health::Unknown => 0,
            Health::Serving => 1,
            Health::NotServing => 2,
        };
        self.health.swap(v, Ordering::Relaxed) != v
    }

    /// Why its health watch failed, while it has a connection and no answer since: the watch
    /// call ended, cleanly or with an error other than `UNIMPLEMENTED` (gRPC's "connection
    /// active but received health check RPC error"). A fail-fast call does not wait for it.
    pub fn health_failure(&self) -> Option<String> {
        if !self.is_connected() {
            return None;
        }
        lock(&self.health_failure).clone()
    }

    /// Records why its health watch failed (`None`: it answered, or its connection changed);
    /// returns whether that changed.
    pub(crate) fn set_health_failure(&self, failure: Option<String>) -> bool {
        let mut held = lock(&self.health_failure);
        let changed = *held != failure;
        *held = failure;
        changed
    }

    /// The member's channel, once connected.
    pub fn channel(&self) -> Option<Channel> {
        self.channel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets its channel; the one it replaces, whose pool may have connected again by itself
    /// and carry calls: the caller keeps those for the balanced channel's close
    /// (`Shut::retire`), or `close_now` would not reach them nor `closed` wait for them.
    #[must_use = "the replaced channel's calls are kept for the close (`Shut::retire`)"]
    pub(crate) fn set_channel(&self, channel: Channel) -> Option<Channel> {
        let old = self
            .channel
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(channel);
        self.channel_set.send_modify(|n| *n += 1);
        old
    }

    /// Takes its channel away (pick first holds a connection only to the endpoint it uses):
    /// the member counts as unconnected until a channel is set again.
    pub(crate) fn take_channel(&self) -> Option<Channel> {
        let taken = self
            .channel
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if taken.is_some() {
            self.channel_set.send_modify(|n| *n += 1);
        }
        taken
    }

    /// Wakes as a new channel is set, or the channel taken away (after this call): the old
    /// one's pool reconnects by itself, so a health watch that kept it would keep a second
    /// connection to the endpoint. Fails once the member is gone.
    pub(crate) fn channel_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.channel_set.subscribe()
    }

    /// Whether it has a live connection whose handshake completed (as far as the pool knows
    /// without waiting).
    pub fn is_connected(&self) -> bool {
        self.channel
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(Channel::is_connected)
    }

    /// Claims the right to (re)connect it; false when a task already does.
    pub(crate) fn begin_connecting(&self) -> bool {
        !self.connecting.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn end_connecting(&self) {
        self.connecting.store(false, Ordering::Release);
    }

    /// A connection attempt failed for `reason`.
    pub(crate) fn connect_failed(&self, reason: String) {
        *lock(&self.failure) = Some(reason);
    }

    /// Its reconnect backoff, kept across connect tasks.
    pub(crate) fn reconnect(&self) -> MutexGuard<'_, Reconnect> {
        lock(&self.reconnect)
    }

    /// A connection attempt succeeded.
    pub(crate) fn connect_succeeded(&self) {
        *lock(&self.failure) = None;
    }

    /// Found connected by the driver's upkeep: once the connection up proved the server, the
    /// backoff starts over and the failure is cleared (`Reconnect::seen_connected`), whoever
    /// made the connection (its pool reconnects by itself too).
    pub(crate) fn seen_connected(&self) {
        let answered = self.answered.load(Ordering::Relaxed);
        let conns = || self.channel().map(|c| c.connections()).unwrap_or_default();
        if self.reconnect().seen_connected(answered, conns) {
            self.connect_succeeded();
        }
    }

    /// Why its last connection attempt failed, when it failed and no connection is up since:
    /// a fail-fast call does not wait for it (gRPC's TRANSIENT_FAILURE).
    pub fn failure(&self) -> Option<String> {
        if self.is_connected() {
            return None;
        }
        lock(&self.failure).clone()
    }

    /// Claims the right to watch its health; false when a watch runs (or ended by itself).
    pub(crate) fn begin_health_watch(&self) -> bool {
        !self.health_watched.swap(true, Ordering::AcqRel)
    }

    /// Its health watch was dropped unfinished (with its runtime).
    pub(crate) fn end_health_watch(&self) {
        self.health_watched.store(false, Ordering::Release);
    }

    /// The task watching its health: it ends when the member does. A `Watch` stream stays open
    /// while the server's answer stands, so the task cannot see for itself that the member was
    /// removed (or its channel dropped); left running, it would keep the stream, the member's
    /// connection and itself alive for as long as the server is up.
    pub(crate) fn set_health_watch(&self, task: AbortHandle) {
        if let Some(old) = lock(&self.health_watch).replace(task) {
            old.abort();
        }
    }

    /// Whether a health watch task is set and still running.
    #[cfg(test)]
    pub(crate) fn health_watch_running(&self) -> bool {
        lock(&self.health_watch)
            .as_ref()
            .is_some_and(|watch| !watch.is_finished())
    }

    /// Stops its health watch (the channel closed).
    pub(crate) fn stop_health_watch(&self) {
        if let Some(watch) = lock(&self.health_watch).take() {
            watch.abort();
        }
    }

    /// Whether outlier ejection has it out of rotation now.
    pub fn is_ejected(&self) -> bool {
        lock(&self.outlier).is_ejected(Instant::now())
    }

    /// A call starts on it: counted in flight until the [`Attempt`] is finished or dropped.
    pub(crate) fn start(&self) -> Attempt<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Attempt {
            member: self,
            started: Instant::now(),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(watch) = lock(&self.health_watch).take() {
            watch.abort();
        }
    }
}

/// How a call on a member ended, for its load and outlier statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server answered (any status): its latency counts.
    Answered,
    /// It failed for the endpoint's sake (`UNAVAILABLE`): an outlier's failure.
    Failed,
    /// The endpoint never saw it, and nothing counts, neither as a failure nor as a success:
    /// this side refused it before sending, or it was never written to a connection
    /// (`Status::is_never_sent`: none was up, or the one it was given closed before any byte
    /// of it was written). Such a failure tells of a connection, which reconnecting handles,
    /// not of how the server answers calls, which ejection is for; counted a failure, calls
    /// re-picked again and again on a connection that kept closing ejected an endpoint that
    /// had failed no call, and counted a success, it would clear a failing one's record.
    /// grpc-go's picker, too, ends a pick whose connection is not ready without an error (so
    /// no failure for its outlier detection) and picks again.
    NotSent,
}

/// One call in flight on a [`Member`]. Dropped unfinished (its caller gave up on the call, or
/// a hedge cancelled the copy), it leaves the in-flight count and changes nothing else: a
/// leaked count would make p2c shun the endpoint for good.
#[must_use = "dropping the attempt ends it"]
pub(crate) struct Attempt<'a> {
    member: &'a Member,
    started: Instant,
}

impl Attempt<'_> {
    /// The call ended with `outcome`. Returns whether this ejected the endpoint.
    pub(crate) fn finish(self, outcome: Outcome, outlier: &OutlierConfig) -> bool {
        let member = self.member;
        let started = self.started;
        // Leaving the in-flight count is the drop's job.
        drop(self);
        let now = Instant::now();
        match outcome {
            Outcome::Answered => {
                member.answered.fetch_add(1, Ordering::Relaxed);
                lock(&member.ewma).observe(now.saturating_duration_since(started), now);
                lock(&member.outlier).success();
                false
            }
            Outcome::Failed => lock(&member.outlier).failure(outlier, now),
            Outcome::NotSent => false,
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.member.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One version of a balanced channel's endpoint set. `generation` changes with every change,
/// so pickers may cache what they derive from the set (a hash ring).
#[derive(Debug, Default)]
pub struct Members {
    generation: u64,
    list: Vec<Arc<Member>>,
}

/// What pickers' unit tests pick from.
#[cfg(test)]
pub(crate) mod test_set {
    use super::{Member, Members};
    use crate::{Body, Call};
    use sockrpc_protocol::{MethodPath, Request};
    use sockrpc_transport::endpoint::Endpoint;
    use std::sync::Arc;
    use std::time::Duration;

    /// Endpoints `10.0.0.I:1`, one per weight, in order.
    pub(crate) fn weighted(weights: &[u32]) -> Members {
        let list = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Arc::new(Member::new(
                    format!("10.0.0.{i}:1"),
                    Endpoint::new("127.0.0.1", 1),
                    *w,
                    Duration::from_secs(1),
                ))
            })
            .collect();
        Members::new(1, list)
    }

    /// A unary call to pick for.
    pub(crate) fn call() -> Call {
        Call::new(
            MethodPath::from_static("/a.B/C"),
            Request::new(Body::once(bytes::Bytes::new())),
        )
    }
}

impl Members {
    /// A set (for pickers' own tests, or a picker built outside a channel).
    pub fn new(generation: u64, list: Vec<Arc<Member>>) -> Members {
        Members { generation, list }
    }

    /// Which version of the set this is.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The endpoints, in the order they were inserted.
    pub fn list(&self) -> &[Arc<Member>] {
        &self.list
    }
}

/// A snapshot of one endpoint, for stats and tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointStats {
    /// The discovery key (usually `IP:PORT`).
    pub key: String,
    /// Its weight.
    pub weight: u32,
    /// Its priority (lower is preferred).
    pub priority: u32,
    /// Calls in flight.
    pub in_flight: usize,
    /// Calls it answered so far.
    pub answered: u64,
    /// The peak-EWMA latency estimate.
    pub rtt: Duration,
    /// The last health answer.
    pub health: Health,
    /// Whether outlier ejection has it out of rotation.
    pub ejected: bool,
    /// Whether it has a live connection.
    pub connected: bool,
    /// Why its last connection attempt failed, when no connection is up since.
    pub failure: Option<String>,
    /// Why its health watch failed (or ended cleanly), while it is connected and the server
    /// has not answered since.
    pub health_failure: Option<String>,
}

impl From<&Member> for EndpointStats {
    fn from(m: &Member) -> Self {
        EndpointStats {
            key: m.key.clone(),
            weight: m.weight(),
            priority: m.priority(),
            in_flight: m.in_flight(),
            answered: m.answered.load(Ordering::Relaxed),
            rtt: m.rtt(),
            health: m.health(),
            ejected: m.is_ejected(),
            connected: m.is_connected(),
            failure: m.failure(),
            health_failure: m.health_failure(),
        }
    }
}
