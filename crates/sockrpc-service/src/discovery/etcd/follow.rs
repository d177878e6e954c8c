//! A client's view of a prefix: read it, then watch it, and read again whenever the watch
//! cannot be trusted.
//!
//! Why read again instead of resuming the watch: a watch that broke (etcd restarted, the
//! connection died) or that etcd canceled (its revision was compacted away, so the events in
//! between are lost) leaves an unknown gap. A read of the whole prefix closes it: the
//! [`Members`] diff turns it into exactly the inserts and removals the channel missed, and the
//! new watch starts at the revision after the read.
//!
//! The task runs on the runtime that started it, and its etcd client's connection belongs to
//! that runtime too; a channel may outlive it (kept in a static, used by tests that each run
//! their own runtime). So the follower's state goes back to the discovery's stream when the
//! task is dropped unfinished ([`Held`]), and the stream, polled on another runtime with no task
//! running, starts one there, which connects again and reads the prefix: the set it keeps turns
//! that read into the changes since.

use super::members::{under, Diff, Members, DEFAULT_MAX_ENDPOINTS};
use super::{status, TIMEOUT};
use crate::discovery::{Change, Discovery, Problem};
use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchResponse};
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::Endpoint;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// Discovery of the servers registered under `prefix` (`PREFIX/IP:PORT`, and the keys
/// `PREFIX` + `IP:PORT` that servers before session 53 wrote for a prefix without a `/`):
/// each key's value is `IP:PORT` or etcd naming's JSON `{"Addr":"IP:PORT",…}`, the endpoint
/// made by `template`; at most [`DEFAULT_MAX_ENDPOINTS`] of them ([`discover_at_most`]).
///
/// Fails with `INVALID_ARGUMENT` for an endpoint that is not a URI; an etcd that cannot be
/// reached is retried in the background (with its error in the status of calls that find no
/// endpoint).
pub async fn discover(
    endpoints: &[String],
    prefix: &str,
    template: impl Fn(SocketAddr) -> Endpoint + Send + 'static,
) -> Result<Discovery, Status> {
    discover_at_most(endpoints, prefix, DEFAULT_MAX_ENDPOINTS, template).await
}

/// [`discover`], giving the channel at most `max_endpoints` addresses (at least 1; `discover`
/// gives [`DEFAULT_MAX_ENDPOINTS`]): with more keys under the prefix, a subset stable while the
/// keys are and different on each client (`members.rs`).
pub async fn discover_at_most(
    endpoints: &[String],
    prefix: &str,
    max_endpoints: usize,
    template: impl Fn(SocketAddr) -> Endpoint + Send + 'static,
) -> Result<Discovery, Status> {
    let client = super::connect(endpoints).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let problem = Problem::default();
    let follower = Follower {
        endpoints: endpoints.to_vec(),
        client: Some(client),
        prefix: prefix.to_owned(),
        template,
        tx,
        members: Members::at_most(max_endpoints),
        problem: problem.clone(),
        failures: 0,
    };
    let mut following = Following {
        parked: Arc::new(Mutex::new(Some(follower))),
        running: Arc::new(AtomicBool::new(false)),
    };
    following.ensure_running();
    let stream = crate::discovery::futures_util_free::poll_fn_stream(move |cx| {
        // Again after the runtime that ran the task ended: one atomic load while it runs.
        following.ensure_running();
        rx.poll_recv(cx)
    });
    Ok(Discovery::new(stream).with_problem(problem))
}

/// The follower while no task runs it, and whether one does; kept by the discovery's stream.
struct Following<F> {
    parked: Arc<Mutex<Option<Follower<F>>>>,
    running: Arc<AtomicBool>,
}

impl<F: Fn(SocketAddr) -> Endpoint + Send + 'static> Following<F> {
    /// Starts the follower's task on the current runtime unless one runs.
    fn ensure_running(&mut self) {
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(follower) = lock(&self.parked).take() else {
            return;
        };
        self.running.store(true, Ordering::Release);
        let held = Held {
            parked: Arc::clone(&self.parked),
            running: Arc::clone(&self.running),
            follower: Some(follower),
        };
        runtime.spawn(async move {
            // The whole guard, not only the field, lives in the task.
            let mut held = held;
            if let Some(follower) = held.follower.as_mut() {
                follower.run().await;
            }
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The follower, held by its task: parked again when the task ends, however it ends (dropped
/// with its runtime included), without its client (whose connection belonged to that runtime):
/// the next task connects again.
struct Held<F> {
    parked: Arc<Mutex<Option<Follower<F>>>>,
    running: Arc<AtomicBool>,
    follower: Option<Follower<F>>,
}

impl<F> Drop for Held<F> {
    fn drop(&mut self) {
        if let Some(mut follower) = self.follower.take() {
            follower.client = None;
            *lock(&self.parked) = Some(follower);
        }
        self.running.store(false, Ordering::Release);
    }
}

/// The background task's state.
struct Follower<F> {
    /// etcd's endpoints, to connect again from another runtime.
    endpoints: Vec<String>,
    /// Connected; `None` until the task connects (again, on another runtime).
    client: Option<Client>,
    prefix: String,
    template: F,
    tx: mpsc::UnboundedSender<Change>,
    members: Members,
    problem: Problem,
    /// Failures in a row (logged at the first and at powers of two).
    failures: u32,
}

impl<F: Fn(SocketAddr) -> Endpoint + Send> Follower<F> {
    async fn run(&mut self) {
        let mut pause = Duration::from_millis(100);
        while !self.tx.is_closed() {
            let tx = self.tx.clone();
            let ended = tokio::select! {
                ended = self.connect_read_and_watch() => ended,
                () = tx.closed() => return,
            };
            match ended {
                Err(e) => {
                    self.failed(&e);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                // The watch ended without an error (canceled, or closed by etcd): read again now.
                Ok(()) => pause = Duration::from_millis(100),
            }
        }
    }

    fn failed(&mut self, e: &Status) {
        self.failures += 1;
        self.problem.set(e.message().to_owned());
        if self.failures == 1 || self.failures.is_power_of_two() {
            tracing::warn!(prefix = %self.prefix, failures = self.failures, "etcd discovery: {}; retrying", e.message());
        }
    }

    /// Connects unless connected, then [`read_and_watch`](Self::read_and_watch).
    async fn connect_read_and_watch(&mut self) -> Result<(), Status> {
        let mut client = match self.client.take() {
            Some(client) => client,
            None => super::connect(&self.endpoints).await?,
        };
        let ended = self.read_and_watch(&mut client).await;
        self.client = Some(client);
        ended
    }

    /// One read of the prefix, then its watch until the watch can no longer be trusted.
    async fn read_and_watch(&mut self, client: &mut Client) -> Result<(), Status> {
        let options = GetOptions::new().with_prefix();
        let read = tokio::time::timeout(TIMEOUT, client.get(self.prefix.as_str(), Some(options)))
            .await
            .map_err(|_| Status::unavailable(format!("etcd read: no answer within {TIMEOUT:?}")))?
            .map_err(|e| status("read", e))?;
        let prefix = self.prefix.as_str();
        self.members.reset(
            read.kvs()
                .iter()
                .filter(|kv| under(prefix, kv.key()))
                .map(|kv| (kv.key(), kv.value())),
        );
        // The problem clears once the channel has what was read: a call in between waits.
        self.tell(true);
        if self.failures > 0 {
            tracing::info!(prefix = %self.prefix, failures = self.failures, "etcd discovery reads again");
        }
        self.failures = 0;
        let revision = read.header().map_or(0, |h| h.revision());
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream =
            tokio::time::timeout(TIMEOUT, client.watch(self.prefix.as_str(), Some(options)))
                .await
                .map_err(|_| {
                    Status::unavailable(format!("etcd watch: no answer within {TIMEOUT:?}"))
                })?
                .map_err(|e| status("watch", e))?;
        loop {
            let Some(resp) = stream.message().await.map_err(|e| status("watch", e))? else {
                tracing::info!(prefix = %self.prefix, "etcd closed the watch; reading again");
                return Ok(());
            };
            if resp.canceled() {
                self.canceled(&resp);
                return Ok(());
            }
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                if !under(&self.prefix, kv.key()) {
                    continue;
                }
                match event.event_type() {
                    EventType::Put => self.members.put(kv.key(), kv.value()),
                    EventType::Delete => self.members.delete(kv.key()),
                }
            }
            self.tell(false);
        }
    }

    fn canceled(&self, resp: &WatchResponse) {
        if resp.compact_revision() > 0 {
            tracing::warn!(
                prefix = %self.prefix,
                compacted = resp.compact_revision(),
                "etcd canceled the watch: the revision it was at has been compacted; reading again"
            );
        } else {
            tracing::warn!(prefix = %self.prefix, reason = resp.cancel_reason(), "etcd canceled the watch; reading again");
        }
    }

    /// Sends the channel what changed; with `clears`, the problem clears once the channel has
    /// applied it (at once when nothing changed).
    fn tell(&mut self, clears: bool) {
        let diffs = self.members.diff();
        if clears {
            self.problem.clear_after(diffs.len());
        }
        for diff in diffs {
            let change = match diff {
                Diff::Add(addr) => Change::insert(addr.to_string(), (self.template)(addr)),
                Diff::Remove(addr) => Change::Remove(addr.to_string()),
            };
            let _ = self.tx.send(change);
        }
    }
}
