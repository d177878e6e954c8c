//! `Balanced`: a channel over a changing set of endpoints, each its own pool, picking one per
//! call. `follow.rs` keeps the set current and its members connected (with pick first, only
//! one member at a time: `in_order.rs`).
//!
//! ```text
//!  Discovery ──Change──▶ driver task ──▶ Members (generation n+1) ──▶ connect task per member
//!                                                              └──▶ health watch per member
//!  call ──▶ usable? (connected, SERVING, not ejected, not tried) ──Picker──▶ member's Channel
//!        ◀── NOT_PROCESSED / GOAWAY: the same call on another member (`attempts` in all)
//!        ◀── never sent (no connection up): picked again, uncounted, while the call may wait
//! ```
//!
//! A call that finds no usable endpoint waits for one (a connection coming up, a health change)
//! up to its deadline (its timeout, or else a `grpc-timeout` metadata entry), then fails
//! `DeadlineExceeded`, or up to [`BalanceBuilder::wait_for_endpoint`], then fails
//! `Unavailable`. As in gRPC, a fail-fast call (the default) does not wait when every endpoint
//! is failing (its last connection attempt failed, its health check says `NOT_SERVING`, or its
//! health watch ended or failed, with no answer since) or discovery's answer is an empty set:
//! it fails `Unavailable` at once, naming the last failure. A wait-for-ready call waits
//! through failures up to its deadline (its own, else the endpoints' `Endpoint::timeout`),
//! then fails `DeadlineExceeded`; with neither, it waits until an endpoint is usable. Every
//! member's latency, in-flight count and failures feed the picker and outlier ejection.

use super::builder::BalanceBuilder;
use super::follow::{connect, follow, Following};
use super::health::HealthProbe;
use super::in_order::connect_in_order;
use super::member::{EndpointStats, Health, Member, Members, Outcome};
use super::outlier::OutlierConfig;
use super::picker::Picker;
use super::totals::Totals;
use super::unsent::note_unsent;
use super::wait::{Resolved, Wait};
use crate::discovery::{ChangeStream, Discovery, Problem};
use crate::{Body, BoxFuture, Call, Channel, ConfigDefaults};
use sockrpc_protocol::{Code, Response, Status};
use sockrpc_transport::pool::closed_status;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_service::Service;

impl BalanceBuilder {
    /// The balanced channel over `discovery`. Spawns the task that follows discovery on the
    /// current Tokio runtime (stopped when the last clone of the channel is dropped); outside a
    /// runtime, or once the runtime that ran it ended, the next call (or
    /// [`ready`](Balanced::ready)) starts it on its own runtime.
    pub fn build(self, discovery: impl Into<Discovery>) -> Balanced {
        let Discovery {
            changes,
            on_failure,
            problem,
        } = discovery.into();
        let shared = Arc::new(Shared {
            members: RwLock::new(Arc::new(Members::default())),
            in_order: self.picker.connects_in_order(),
            passing: AtomicBool::new(false),
            picker: self.picker,
            probe: self.probe,
            outlier: self.outlier,
            decay: self.decay,
            wait: self.wait,
            wait_for_ready: self.wait_for_ready,
            attempts: self.attempts,
            epoch: watch::Sender::new(0),
            totals: Mutex::default(),
            on_failure,
            problem,
            answered: AtomicBool::new(false),
            driver: Mutex::new(None),
            driving: AtomicBool::new(false),
            changes: Mutex::new(Some(changes)),
            shut: super::shutdown::Shut::default(),
        });
        shared.ensure_driver();
        Balanced { shared }
    }
}

impl Channel {
    /// A channel balancing calls over the endpoints `discovery` reports, with p2c on
    /// peak-EWMA load; see [`BalanceBuilder`] for the other pickers and health checking. Call
    /// inside a Tokio runtime (it spawns the task following discovery; see
    /// [`BalanceBuilder::build`]).
    pub fn balance(discovery: impl Into<Discovery>) -> Balanced {
        BalanceBuilder::default().build(discovery)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every clone of a [`Balanced`] shares.
pub(super) struct Shared {
    pub(super) members: RwLock<Arc<Members>>,
    pub(super) picker: Arc<dyn Picker>,
    /// The picker's [`Picker::connects_in_order`]: one endpoint connected at a time
    /// (`in_order.rs`), not each its own connect task.
    pub(super) in_order: bool,
    /// A pass over the endpoints runs (`in_order.rs`).
    pub(super) passing: AtomicBool,
    pub(super) probe: Option<Arc<dyn HealthProbe>>,
    pub(super) outlier: OutlierConfig,
    pub(super) decay: Duration,
    pub(super) wait: Duration,
    pub(super) wait_for_ready: Option<bool>,
    pub(super) attempts: u32,
    /// Bumped whenever an endpoint may have become usable (or unusable).
    pub(super) epoch: watch::Sender<u64>,
    /// Calls each key's endpoints answered, kept after they leave (a bounded number of them).
    pub(super) totals: Mutex<Totals>,
    pub(super) on_failure: Option<Arc<Notify>>,
    /// Why discovery has no answer, when it says (see [`Problem`]).
    pub(super) problem: Option<Problem>,
    /// Discovery has made a change (or ended): an empty set is then its answer, not a wait
    /// for its first one.
    pub(super) answered: AtomicBool,
    pub(super) driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The driver task runs ([`Following`] clears it as the task ends, however it ends).
    driving: AtomicBool,
    /// The discovery stream while no driver holds it (`None` once discovery ended, or the
    /// channel closed).
    pub(super) changes: Mutex<Option<ChangeStream>>,
    /// Closed or not (`shutdown.rs`).
    pub(super) shut: super::shutdown::Shut,
}

impl Shared {
    /// `message`, with discovery's latest error when it has one.
    pub(super) fn with_problem(&self, message: String) -> String {
        match self.problem.as_ref().and_then(Problem::describe) {
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
    /// Starts the driver (following discovery, reconnecting members) on the current runtime
    /// unless it runs: at first, and again after the runtime that ran it ended (a channel kept
    /// in a static, used from one runtime after another). One atomic load while it runs.
    pub(super) fn ensure_driver(self: &Arc<Self>) {
        if self.driving.load(Ordering::Acquire) || self.shut.is_closed() {
            return;
        }
        // Outside a runtime (`build` documents that it needs one), the next call starts it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.driving.swap(true, Ordering::AcqRel) {
            return;
        }
        let changes = lock(&self.changes).take();
        let following = Following::new(Arc::downgrade(self), changes);
        let driver = runtime.spawn(follow(following));
        if let Some(old) = lock(&self.driver).replace(driver) {
            old.abort();
        }
        if self.shut.is_closed() {
            // Closed as it started: `shut_down` may have looked before it was in place.
            if let Some(driver) = lock(&self.driver).take() {
                driver.abort();
            }
        }
    }

    /// The driver ended (dropped with its runtime): its discovery stream, if any is left, waits
    /// for the next, and the calls waiting for an endpoint look again, which starts it.
    pub(super) fn driver_stopped(&self, changes: Option<ChangeStream>) {
        // Closed: the stream goes (a DNS or etcd source's lookup task ends with it).
        *lock(&self.changes) = changes;
        if self.shut.is_closed() {
            // After the store: `shut_down` may have looked before it.
            let gone = lock(&self.changes).take();
            drop(gone);
        }
        self.driving.store(false, Ordering::Release);
        self.bump();
    }

    pub(super) fn snapshot(&self) -> Arc<Members> {
        Arc::clone(&self.members.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub(super) fn bump(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Why no call should wait for an endpoint, if none is worth waiting for: every endpoint's
    /// last connection attempt failed, its health check says `NOT_SERVING` or its health watch
    /// ended or failed with no answer since (gRPC's TRANSIENT_FAILURE for all), or discovery
    /// found none and reports an error.
    /// Members still making their first attempt, or reconnecting after a connection was lost,
    /// are waited for.
    fn all_failing(&self, list: &[Arc<Member>]) -> Option<String> {
        if list.is_empty() {
            if self.problem.as_ref().is_some_and(Problem::answer_pending) {
                // Discovery's answer is on its way: wait for it.
                return None;
            }
            let problem = self.problem.as_ref().and_then(Problem::get);
            return match problem {
                Some(problem) => Some(format!("no endpoints ({problem})")),
                None if self.answered.load(Ordering::Acquire) => {
                    Some("discovery reports no endpoints".to_owned())
                }
                None => None,
            };
        }
        let mut last = None;
        for m in list {
            if let Some(failure) = m.health_failure() {
                last = Some(format!("{}: {failure}", m.key()));
                continue;
            }
            if m.is_connected() && m.health() == Health::NotServing {
                last.get_or_insert_with(|| format!("{} is not serving", m.key()));
                continue;
            }
            let failure = m.failure()?;
            last = Some(format!("{}: {failure}", m.key()));
        }
        last.map(|last| format!("all {} endpoints are failing; {last}", list.len()))
    }

    fn usable(&self, m: &Member) -> bool {
        self.healthy(m) && m.is_connected()
    }

    /// Whether `m`'s health lets it take calls: with a probe, only an endpoint that said
    /// SERVING; without, any not NOT_SERVING.
    fn healthy(&self, m: &Member) -> bool {
        !matches!(
            (&self.probe, m.health()),
            (_, Health::NotServing) | (Some(_), Health::Unknown)
        )
    }
}

/// The lowest priority among the members `ok` accepts.
fn best_priority(list: &[Arc<Member>], ok: impl Fn(usize) -> bool) -> Option<u32> {
    (0..list.len())
        .filter(|&i| ok(i))
        .map(|i| list[i].priority())
        .min()
}

/// A channel over a changing set of endpoints (see the [module docs](crate::balance)). Clone
/// it freely; clones share the set. A `tower::Service<Call>` like [`Channel`], so generated
/// clients (`FooClient::new(balanced)`) and tower layers take it as they take a `Channel`.
///
/// A call that finds no usable endpoint waits for one up to its deadline (its timeout, or else
/// a `grpc-timeout` metadata entry; then it fails `DeadlineExceeded`) or
/// [`BalanceBuilder::wait_for_endpoint`] (then `Unavailable`); when every endpoint is failing,
/// a fail-fast call fails at once and a wait-for-ready call waits up to its deadline
/// ([`BalanceBuilder::wait_for_ready`]). A call refused unprocessed, or never sent (its
/// endpoint's connection had just gone: a call never waits for one endpoint's reconnection),
/// goes to an endpoint connected now, else waits for one within the same deadline. One refused
/// unprocessed goes to [`BalanceBuilder::attempts`] endpoints at most; one never sent made no
/// attempt, and goes again as long as it may wait (after `attempts` of them, each time once an
/// endpoint changed or 50 ms passed), as grpc-go picks again a call that reached no transport.
/// [`close`](Balanced::close), [`close_now`](Balanced::close_now) and
/// [`closed`](Balanced::closed) shut it down for every clone, as on a [`Channel`].
#[derive(Clone)]
pub struct Balanced {
    pub(super) shared: Arc<Shared>,
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

    /// Calls answered per endpoint key since the channel was made, departed endpoints included
    /// (at least the [`DEPARTED_KEPT`](super::DEPARTED_KEPT) that left last: under discovery
    /// churn, older ones are forgotten).
    pub fn answered(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.totals).snapshot()
    }

    /// Waits until at least `count` endpoints may take calls, up to `within`. With
    /// [`PickFirst`](super::PickFirst), at most one ever is (it holds no connection to the
    /// others).
    pub async fn ready(&self, count: usize, within: Duration) -> Result<(), Status> {
        let deadline = sockrpc_transport::deadline_after(Instant::now(), within);
        let mut epoch = self.shared.epoch.subscribe();
        loop {
            self.shared.ensure_driver();
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

    /// The member for `call` among those usable now, without waiting (`None`: none is). Every
    /// call starts here; only one that finds none waits, in [`choose`](Self::choose).
    fn pick_now(&self, call: &Call, tried: &[Arc<Member>]) -> Result<Option<Arc<Member>>, Status> {
        let shared = &self.shared;
        if shared.shut.is_closed() {
            return Err(closed_status());
        }
        // Again after the runtime that ran it ended; a call that waits looks each turn.
        shared.ensure_driver();
        let members = shared.snapshot();
        let list = members.list();
        let mut connected = false;
        let now_usable: Vec<bool> = list
            .iter()
            .map(|m| {
                if !m.is_connected() {
                    // Lost its connection without a call failing on it (a server that
                    // restarted): reconnect in the background, once. In order, the others
                    // hold no connection on purpose: only none connected starts a pass.
                    if !shared.in_order {
                        connect(shared, m);
                    }
                    return false;
                }
                connected = true;
                shared.healthy(m)
            })
            .collect();
        if shared.in_order && !connected {
            connect_in_order(shared);
        }
        let fresh = |i: usize| !tried.iter().any(|t| Arc::ptr_eq(t, &list[i]));
        let healthy = |i: usize| now_usable[i] && !list[i].is_ejected();
        // The best priority with a healthy endpoint, else with a usable one: a worse priority
        // takes calls only when the better ones cannot.
        let best = best_priority(list, healthy).or_else(|| best_priority(list, |i| now_usable[i]));
        let in_best = |i: usize| Some(list[i].priority()) == best;
        let tiers: [&dyn Fn(usize) -> bool; 4] = [
            &|i| healthy(i) && in_best(i) && fresh(i),
            &|i| now_usable[i] && in_best(i) && fresh(i),
            &|i| now_usable[i] && fresh(i),
            &|i| now_usable[i],
        ];
        for tier in tiers {
            if let Some(i) = shared.picker.pick(&members, call, tier) {
                return Ok(Some(Arc::clone(&list[i])));
            }
        }
        Ok(None)
    }

    /// Picks the member for `call`, waiting for one as `wait` says.
    async fn choose(
        &self,
        // `&mut`: a `Call` is `Send` but not `Sync`, and this future must be `Send`.
        call: &mut Call,
        tried: &[Arc<Member>],
        wait: Wait,
    ) -> Result<Arc<Member>, Status> {
        let shared = &self.shared;
        let mut epoch = shared.epoch.subscribe();
        loop {
            // Before the look: a change after it wakes the wait below.
            epoch.mark_unchanged();
            if let Some(member) = self.pick_now(call, tried)? {
                return Ok(member);
            }
            let members = shared.snapshot();
            let list = members.list();
            let Resolved {
                for_ready,
                until,
                deadline,
            } = wait.resolve(list);
            let failing = shared.all_failing(list);
            if let (false, Some(reason)) = (for_ready, &failing) {
                let message = format!("no endpoint can take the call: {reason}");
                // Failing endpoints and a failing discovery: the set may be stale, so say
                // both (an empty set's reason already holds discovery's).
                let message = match list.is_empty() {
                    true => message,
                    false => shared.with_problem(message),
                };
                return Err(Status::unavailable(message));
            }
            // Nobody usable (the unconnected are connecting): wait for news.
            let wake = Instant::now() + Duration::from_millis(50);
            let wake = until.map_or(wake, |deadline| wake.min(deadline));
            tokio::select! {
                _ = epoch.changed() => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            if until.is_some_and(|deadline| Instant::now() >= deadline) {
                let connected = list.iter().filter(|m| m.is_connected()).count();
                let why = failing.map_or(String::new(), |reason| format!("; {reason}"));
                let message = shared.with_problem(format!(
                    "no endpoint can take the call: {} known, {connected} connected, none serving and connected{why}",
                    list.len()
                ));
                // The call's own deadline passed (grpc-go's DEADLINE_EXCEEDED, fail-fast or
                // not), or a fail-fast call ran out of `wait_for_endpoint` first.
                let expired = deadline.is_some_and(|d| Instant::now() >= d);
                return Err(if for_ready || expired {
                    Status::deadline_exceeded(message)
                } else {
                    Status::unavailable(message)
                });
            }
        }
    }

    /// One call, on the member picked for it (and on others it is refused unprocessed by).
    ///
    /// An `async` block, not an `async fn`: an `async fn` keeps its arguments twice in its
    /// future (the call is 224 bytes), and this future is boxed once per call; the wait for a
    /// member, which only a call that finds none usable does, is boxed on its own. Together
    /// they took it from 1,312 bytes to under 1,032, glibc's per-thread cache
    /// (`tests::a_balanced_calls_future_fits_the_allocators_fast_path`).
    #[allow(clippy::manual_async_fn)] // On purpose: see above.
    pub(super) fn run(
        self,
        mut call: Call,
    ) -> impl std::future::Future<Output = Result<Response<Body>, Status>> + Send + 'static {
        async move {
            let entered = Instant::now();
            // When the caller's method noted the start (a timeout may come below it), a timeout
            // given below (a `grpc-timeout` entry, an endpoint's default) counts from there.
            let started = call.request().started().unwrap_or(entered);
            // A `grpc-timeout` entry is the call's deadline as much as a timeout set: the wait for
            // an endpoint and every attempt count against it, and each attempt carries what
            // remains as its timeout.
            // A deadline the caller fixed before encoding stands.
            let call_deadline = match call.request().deadline() {
                Some(fixed) => Some(fixed),
                // An entry's, still bounded by the endpoint's default (`Wait::deadline_for`).
                None => ConfigDefaults::resolve_entry(call.request_mut()).map(|t| started + t),
            };
            let wait = Wait {
                for_ready: call
                    .request()
                    .wait_for_ready()
                    .or(self.shared.wait_for_ready),
                config: call.request().extensions().get::<ConfigDefaults>().copied(),
                started,
                deadline: call_deadline,
                cap: sockrpc_transport::deadline_after(entered, self.shared.wait),
            };
            let mut tried: Vec<Arc<Member>> = Vec::new();
            let attempts = self.shared.attempts;
            // Attempts a server may have seen: a call never sent is none (`note_unsent`).
            let mut attempt = 0;
            let mut unsent = 0;
            loop {
                let member = match self.pick_now(&call, &tried)? {
                    Some(member) => member,
                    None => Box::pin(self.choose(&mut call, &tried, wait)).await?,
                };
                let Some(mut channel) = member.channel() else {
                    // Its connection went as it was picked (pick first moved on): never sent.
                    let status = Status::unavailable(format!(
                        "{} had no connection when picked",
                        member.key()
                    ));
                    if note_unsent(&mut tried, member, &mut unsent, attempts) {
                        Box::pin(self.pause(wait, &status, unsent)).await?;
                    }
                    continue;
                };
                // The endpoint's default deadline counts from when the call began, wait included.
                let deadline = wait.deadline_for(member.endpoint());
                if let Some(deadline) = deadline {
                    call.request_mut()
                        .hand_on_deadline(deadline, Instant::now());
                }
                // Kept whatever the attempt: a call never sent may always go again.
                let spare = call.try_clone();
                let begun = member.start();
                // On the connection up now, or not at all: a member whose connection just went
                // fails it at once, never sent, and it goes to one connected now (or waits once
                // for one, within its deadline), not for this one's connect timeout.
                let result = channel.call_now(call).await;
                let failed = matches!(&result, Err(s) if s.code() == Code::Unavailable);
                let outcome = match &result {
                    // The server never saw it: nothing counts (`Outcome::NotSent`).
                    Err(s) if s.is_refused_before_sending() || s.is_never_sent() => {
                        Outcome::NotSent
                    }
                    _ if failed => Outcome::Failed,
                    _ => Outcome::Answered,
                };
                begun.finish(outcome, &self.shared.outlier);
                if failed && !member.is_connected() {
                    // Its connection is gone: reconnect in the background, and let discovery know.
                    connect(&self.shared, &member);
                    if let Some(hint) = &self.shared.on_failure {
                        hint.notify_one();
                    }
                    self.shared.bump();
                }
                let never_sent = matches!(&result, Err(s) if s.is_never_sent());
                if !never_sent {
                    attempt += 1;
                }
                match (result, spare) {
                    // Never written to a connection (the member's went away and it could get no
                    // other): no attempt at all. It goes again, as long as the call may wait.
                    (Err(status), Some(again)) if never_sent => {
                        tracing::debug!(endpoint = member.key(), "not sent; picking again");
                        call = again;
                        if note_unsent(&mut tried, member, &mut unsent, attempts) {
                            Box::pin(self.pause(wait, &status, unsent)).await?;
                        }
                    }
                    // Refused unstarted by the server: no server ran it, but one saw it; tried
                    // on `attempts` endpoints in all.
                    (Err(status), Some(again))
                        if status.is_not_processed() && attempt < attempts =>
                    {
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
        }
    }
}

impl Service<Call> for Balanced {
    type Response = Response<Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        if self.shared.shut.is_closed() {
            return Poll::Ready(Err(closed_status()));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        Box::pin(self.clone().run(call))
    }
}
