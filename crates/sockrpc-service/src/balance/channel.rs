//! `Balanced`: a channel over a changing set of endpoints, each its own pool, picking one per
//! call.
//!
//! ```text
//!  Discovery ──Change──▶ driver task ──▶ Members (generation n+1) ──▶ connect task per member
//!                                                              └──▶ health watch per member
//!  call ──▶ usable? (connected, SERVING, not ejected, not tried) ──Picker──▶ member's Channel
//!        ◀── NOT_PROCESSED / GOAWAY / lost before sent: the same call on another member
//! ```
//!
//! A call that finds no usable endpoint waits for one (a connection coming up, a health change)
//! up to its deadline (its timeout, or else a `grpc-timeout` metadata entry) or [`BalanceBuilder::wait_for_endpoint`], then fails `Unavailable`, so no
//! call hangs. Every member's latency, in-flight count and failures feed the picker and outlier
//! ejection.

use super::health::{watch_member, HealthProbe};
use super::member::{EndpointStats, Health, Member, Members};
use super::outlier::OutlierConfig;
use super::peak_ewma::DEFAULT_DECAY;
use super::picker::Picker;
use super::P2c;
use crate::discovery::{Change, Discovery, Problem};
use crate::{Body, BoxFuture, Call, Channel};
use sockrpc_protocol::{Code, Response, Status};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_service::Service;

/// Builds a [`Balanced`] channel: the picker, health checking, outlier ejection.
pub struct BalanceBuilder {
    picker: Arc<dyn Picker>,
    probe: Option<Arc<dyn HealthProbe>>,
    outlier: OutlierConfig,
    decay: Duration,
    wait: Duration,
    attempts: u32,
}

impl std::fmt::Debug for BalanceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceBuilder")
            .field("outlier", &self.outlier)
            .field("health_checked", &self.probe.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for BalanceBuilder {
    fn default() -> Self {
        BalanceBuilder {
            picker: Arc::new(P2c),
            probe: None,
            outlier: OutlierConfig::default(),
            decay: DEFAULT_DECAY,
            wait: Duration::from_secs(10),
            attempts: 3,
        }
    }
}

impl BalanceBuilder {
    /// The picker ([`P2c`] by default).
    pub fn picker(mut self, picker: impl Picker) -> Self {
        self.picker = Arc::new(picker);
        self
    }

    /// Watches every endpoint's health through `probe` (e.g. `sockrpc_health::GrpcHealthProbe`):
    /// an endpoint takes calls only once it said `SERVING`, and none while it says otherwise.
    pub fn health_check(mut self, probe: impl HealthProbe) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// Outlier ejection settings.
    pub fn outlier(mut self, outlier: OutlierConfig) -> Self {
        self.outlier = outlier;
        self
    }

    /// The peak-EWMA decay time constant.
    pub fn decay(mut self, decay: Duration) -> Self {
        self.decay = decay;
        self
    }

    /// How long a call without a (shorter) deadline waits for a usable endpoint. Default 10 s.
    pub fn wait_for_endpoint(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Endpoints a call refused unprocessed tries in all (default 3).
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The balanced channel over `discovery`. Call inside a Tokio runtime: it spawns the task
    /// that follows discovery (stopped when the last clone of the channel is dropped).
    pub fn build(self, discovery: impl Into<Discovery>) -> Balanced {
        let Discovery {
            changes,
            on_failure,
            problem,
        } = discovery.into();
        let shared = Arc::new(Shared {
            members: RwLock::new(Arc::new(Members::default())),
            picker: self.picker,
            probe: self.probe,
            outlier: self.outlier,
            decay: self.decay,
            wait: self.wait,
            attempts: self.attempts,
            epoch: watch::Sender::new(0),
            totals: Mutex::default(),
            on_failure,
            problem,
            driver: Mutex::new(None),
        });
        let driver = tokio::spawn(follow(Arc::downgrade(&shared), changes));
        *lock(&shared.driver) = Some(driver);
        Balanced { shared }
    }
}

impl Channel {
    /// A channel balancing calls over the endpoints `discovery` reports, with p2c on
    /// peak-EWMA load; see [`BalanceBuilder`] for the other pickers and health checking. Call
    /// inside a Tokio runtime (it spawns the task following discovery).
    pub fn balance(discovery: impl Into<Discovery>) -> Balanced {
        BalanceBuilder::default().build(discovery)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Shared {
    members: RwLock<Arc<Members>>,
    picker: Arc<dyn Picker>,
    probe: Option<Arc<dyn HealthProbe>>,
    outlier: OutlierConfig,
    decay: Duration,
    wait: Duration,
    attempts: u32,
    /// Bumped whenever an endpoint may have become usable (or unusable).
    epoch: watch::Sender<u64>,
    /// Calls each key's endpoints answered, kept after they leave.
    totals: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    on_failure: Option<Arc<Notify>>,
    /// Why discovery has no answer, when it says (see [`Problem`]).
    problem: Option<Problem>,
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    /// `message`, with discovery's latest error when it has one.
    fn with_problem(&self, message: String) -> String {
        match self.problem.as_ref().and_then(Problem::get) {
            Some(problem) => format!("{message} ({problem})"),
            None => message,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
        }
    }
}

impl Shared {
    fn snapshot(&self) -> Arc<Members> {
        Arc::clone(&self.members.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn bump(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    fn usable(&self, m: &Member) -> bool {
        let health = m.health();
        // With a probe, only an endpoint that said SERVING; without, any not NOT_SERVING.
        let healthy = !matches!(
            (&self.probe, health),
            (_, Health::NotServing) | (Some(_), Health::Unknown)
        );
        healthy && m.is_connected()
    }
}

/// How often the driver looks for servers whose connection went away with no call to notice.
const UPKEEP: Duration = Duration::from_millis(250);

/// Follows discovery until the channel is dropped; between changes, reconnects servers whose
/// connection went away (which also tells discovery, so DNS looks again early).
async fn follow(shared: Weak<Shared>, mut changes: crate::discovery::ChangeStream) {
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
            Some(Some(change)) => apply(&shared, change),
            Some(None) => open = false,
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
                    member.answered = Arc::clone(lock(&shared.totals).entry(key).or_default());
                    let member = Arc::new(member);
                    spawn = Some(Arc::clone(&member));
                    match same {
                        Some(i) => list[i] = member,
                        None => list.push(member),
                    }
                }
            }
        }
        Change::Remove(key) => list.retain(|m| m.key() != key),
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

/// The lowest priority among the members `ok` accepts.
fn best_priority(list: &[Arc<Member>], ok: impl Fn(usize) -> bool) -> Option<u32> {
    (0..list.len())
        .filter(|&i| ok(i))
        .map(|i| list[i].priority())
        .min()
}

/// The longest pause between connection attempts to a server that is down.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

/// Starts (re)connecting `member` in the background unless a task already does.
fn connect(shared: &Arc<Shared>, member: &Arc<Member>) {
    if !member.begin_connecting() {
        return;
    }
    let weak_member = Arc::downgrade(member);
    let weak_shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(50);
        loop {
            let Some(endpoint) = weak_member.upgrade().map(|m| m.endpoint().clone()) else {
                return;
            };
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
                    member.end_connecting();
                    if let (true, Some(probe)) = (first, &shared.probe) {
                        let epoch = weak_shared.clone();
                        tokio::spawn(watch_member(
                            Arc::downgrade(&member),
                            Arc::clone(probe),
                            move || {
                                if let Some(s) = epoch.upgrade() {
                                    s.bump();
                                }
                            },
                        ));
                    }
                    shared.bump();
                    return;
                }
                Ok(Err(err)) => {
                    tracing::debug!(endpoint = member.key(), error = %err, "connect failed")
                }
                Err(_) => tracing::debug!(endpoint = member.key(), "connect timed out"),
            }
            if let Some(hint) = &shared.on_failure {
                hint.notify_one();
            }
            drop((member, shared));
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
        }
    });
}

/// A channel over a changing set of endpoints (see the [module docs](crate::balance)). Clone
/// it freely; clones share the set. A `tower::Service<Call>` like [`Channel`], so generated
/// clients (`FooClient::new(balanced)`) and tower layers take it as they take a `Channel`.
///
/// A call that finds no usable endpoint waits for one up to its deadline (its timeout, or else
/// a `grpc-timeout` metadata entry) or [`BalanceBuilder::wait_for_endpoint`], then fails
/// `Unavailable`; a call refused unprocessed goes to another endpoint, within the same
/// deadline.
#[derive(Clone)]
pub struct Balanced {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Balanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balanced")
            .field("endpoints", &self.shared.snapshot().list().len())
            .finish_non_exhaustive()
    }
}

impl Balanced {
    /// Each current endpoint's state.
    pub fn stats(&self) -> Vec<EndpointStats> {
        self.shared
            .snapshot()
            .list()
            .iter()
            .map(|m| EndpointStats::from(&**m))
            .collect()
    }

    /// Calls answered per endpoint key since the channel was made, departed endpoints included.
    pub fn answered(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.totals)
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }

    /// Waits until at least `count` endpoints may take calls, up to `within`.
    pub async fn ready(&self, count: usize, within: Duration) -> Result<(), Status> {
        let deadline = Instant::now() + within;
        let mut epoch = self.shared.epoch.subscribe();
        loop {
            epoch.mark_unchanged();
            let usable = self
                .shared
                .snapshot()
                .list()
                .iter()
                .filter(|m| self.shared.usable(m))
                .count();
            if usable >= count {
                return Ok(());
            }
            // Connections can close without an epoch change: look again now and then.
            let wake = Instant::now() + Duration::from_millis(50);
            tokio::select! {
                _ = epoch.changed() => {}
                () = tokio::time::sleep_until(wake.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                return Err(Status::unavailable(self.shared.with_problem(format!(
                    "{usable} of the {count} endpoints wanted are usable"
                ))));
            }
        }
    }

    /// Picks the member for `call`, waiting for one up to `deadline`.
    async fn choose(
        &self,
        // `&mut`: a `Call` is `Send` but not `Sync`, and this future must be `Send`.
        call: &mut Call,
        tried: &[Arc<Member>],
        deadline: Instant,
    ) -> Result<Arc<Member>, Status> {
        let shared = &self.shared;
        let mut epoch = shared.epoch.subscribe();
        loop {
            epoch.mark_unchanged();
            let members = shared.snapshot();
            let list = members.list();
            let now_usable: Vec<bool> = list
                .iter()
                .map(|m| {
                    if !m.is_connected() {
                        // Lost its connection without a call failing on it (a server that
                        // restarted): reconnect in the background, once.
                        connect(shared, m);
                        return false;
                    }
                    shared.usable(m)
                })
                .collect();
            let fresh = |i: usize| !tried.iter().any(|t| Arc::ptr_eq(t, &list[i]));
            let healthy = |i: usize| now_usable[i] && !list[i].is_ejected();
            // The best priority with a healthy endpoint, else with a usable one: a worse
            // priority takes calls only when the better ones cannot.
            let best =
                best_priority(list, healthy).or_else(|| best_priority(list, |i| now_usable[i]));
            let in_best = |i: usize| Some(list[i].priority()) == best;
            let tiers: [&dyn Fn(usize) -> bool; 4] = [
                &|i| healthy(i) && in_best(i) && fresh(i),
                &|i| now_usable[i] && in_best(i) && fresh(i),
                &|i| now_usable[i] && fresh(i),
                &|i| now_usable[i],
            ];
            for tier in tiers {
                if let Some(i) = shared.picker.pick(&members, &*call, tier) {
                    return Ok(Arc::clone(&list[i]));
                }
            }
            // Nobody usable (the unconnected are connecting): wait for news.
            let wake = Instant::now() + Duration::from_millis(50);
            tokio::select! {
                _ = epoch.changed() => {}
                () = tokio::time::sleep_until(wake.min(deadline)) => {}
            }
            if Instant::now() >= deadline {
                let connected = list.iter().filter(|m| m.is_connected()).count();
                return Err(Status::unavailable(shared.with_problem(format!(
                    "no endpoint can take the call: {} known, {connected} connected, none serving and connected",
                    list.len()
                ))));
            }
        }
    }

    async fn run(self, mut call: Call) -> Result<Response<Body>, Status> {
        let started = Instant::now();
        // A `grpc-timeout` entry is the call's deadline as much as a timeout set: the wait for
        // an endpoint and every attempt count against it, and each attempt carries what
        // remains as its timeout.
        let call_deadline = call.request_mut().resolve_timeout().map(|t| started + t);
        let wait_deadline = call_deadline.map_or(started + self.shared.wait, |d| {
            d.min(started + self.shared.wait)
        });
        let mut tried: Vec<Arc<Member>> = Vec::new();
        let attempts = self.shared.attempts;
        for attempt in 1..=attempts {
            let member = self.choose(&mut call, &tried, wait_deadline).await?;
            let Some(mut channel) = member.channel() else {
                tried.push(member);
                continue;
            };
            if let Some(deadline) = call_deadline {
                call.request_mut()
                    .set_timeout(deadline.saturating_duration_since(Instant::now()));
            }
            let spare = if attempt < attempts {
                call.try_clone()
            } else {
                None
            };
            let begun = member.start();
            let result = channel.call(call).await;
            let failed = matches!(&result, Err(s) if s.code() == Code::Unavailable);
            member.finish(begun, !failed, &self.shared.outlier);
            if failed && !member.is_connected() {
                // Its connection is gone: reconnect in the background, and let discovery know.
                connect(&self.shared, &member);
                if let Some(hint) = &self.shared.on_failure {
                    hint.notify_one();
                }
                self.shared.bump();
            }
            match (result, spare) {
                (Err(status), Some(again)) if status.is_not_processed() => {
                    tracing::debug!(
                        endpoint = member.key(),
                        "refused unprocessed; trying another endpoint"
                    );
                    tried.push(member);
                    call = again;
                }
                (result, _) => return result,
            }
        }
        Err(Status::unavailable(format!(
            "{attempts} endpoints refused the call unprocessed"
        )))
    }
}

impl Service<Call> for Balanced {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        Box::pin(self.clone().run(call))
    }
}
