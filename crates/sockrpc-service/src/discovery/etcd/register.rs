//! A server's registration: a key under a lease, kept alive through etcd restarts.
//!
//! Why a loop and not a keep-alive call: the lease outlives many things that break a
//! keep-alive stream. etcd restarting (or its leader changing) ends the stream, but the lease
//! survives it, and etcd extends every lease by its TTL when it comes back; so after a broken
//! stream the task asks whether the lease is still there and resumes. When it is not (it
//! expired while etcd was out of reach, or an operator revoked it), the key went with it, and
//! the task grants a new lease and writes the key again. Each renewal's reply is read, so a
//! lease that disappears is noticed within a third of the TTL.
//!
//! ```text
//!  grant + put ─▶ keep-alive every TTL/3 ─┬─ reply TTL > 0 ──────────────▶ (again)
//!                                          ├─ stream broken ─▶ lease alive? ─ yes ─▶ put, resume
//!                                          └─ reply TTL = 0 ─┴──────────── no ──▶ grant + put
//! ```

use super::{members::encode, status, TIMEOUT};
use etcd_client::{Client, PutOptions};
use sockrpc_protocol::Status;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A server's registration: its key, kept alive by a background task until
/// [`deregister`](Registration::deregister)ed or dropped (dropping stops the keep-alive, so the
/// key goes when the lease expires).
pub struct Registration {
    client: Client,
    key: String,
    /// The lease the key is under now (the task replaces it when it has to grant another).
    lease: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Registers `addr` under `prefix` (key `PREFIX/IP:PORT`, a `/` added to a prefix without
/// one, value etcd naming's JSON
/// `{"Op":0,"Addr":"IP:PORT","Metadata":null}`) with a lease of `ttl`, rounded up to whole
/// seconds (etcd's unit) and at least 1 s, renewed every third of it.
///
/// Fails with `INVALID_ARGUMENT` for an endpoint that is not a URI and `UNAVAILABLE` when etcd
/// cannot be reached; once registered, the key is kept through etcd restarts (see the module
/// docs).
pub async fn register(
    endpoints: &[String],
    prefix: &str,
    addr: SocketAddr,
    ttl: Duration,
) -> Result<Registration, Status> {
    let mut client = super::connect(endpoints).await?;
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let secs = i64::try_from(secs.max(1)).unwrap_or(i64::MAX);
    let key = format!("{}{addr}", super::members::key_prefix(prefix));
    let value = encode(addr);
    let lease = grant_and_put(&mut client, secs, &key, &value).await?;
    let lease = Arc::new(AtomicI64::new(lease));
    let (stop, stopped) = oneshot::channel();
    let keeper = Keeper {
        client: client.clone(),
        key: key.clone(),
        value,
        secs,
        lease: lease.clone(),
    };
    let task = tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            () = keeper.run() => {}
        }
    });
    Ok(Registration {
        client,
        key,
        lease,
        stop: Some(stop),
        task: Some(task),
    })
}

async fn grant_and_put(
    client: &mut Client,
    secs: i64,
    key: &str,
    value: &str,
) -> Result<i64, Status> {
    let lease = bounded("lease grant", client.lease_grant(secs, None))
        .await?
        .id();
    put(client, key, value, lease).await?;
    Ok(lease)
}

async fn put(client: &mut Client, key: &str, value: &str, lease: i64) -> Result<(), Status> {
    let options = PutOptions::new().with_lease(lease);
    bounded("put", client.put(key, value, Some(options))).await?;
    Ok(())
}

/// gRPC's NOT_FOUND, which etcd answers for a lease it does not have.
const NOT_FOUND: i32 = 5;

/// An etcd request that gives up after [`TIMEOUT`].
async fn bounded<T>(
    what: &str,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, Status> {
    match bounded_raw(request).await {
        Some(result) => result.map_err(|e| status(what, e)),
        None => Err(Status::unavailable(format!(
            "etcd {what}: no answer within {TIMEOUT:?}"
        ))),
    }
}

/// The request's own result, or `None` after [`TIMEOUT`].
async fn bounded_raw<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Option<Result<T, etcd_client::Error>> {
    tokio::time::timeout(TIMEOUT, request).await.ok()
}

/// How a stretch of keeping the lease alive ended.
enum Ended {
    /// The lease is gone (expired or revoked), and the key with it.
    LeaseGone,
    /// etcd could not be reached or the stream broke.
    Failed(Status),
}

/// The background task's state.
struct Keeper {
    client: Client,
    key: String,
    value: String,
    secs: i64,
    lease: Arc<AtomicI64>,
}

impl Keeper {
    fn period(&self) -> Duration {
        Duration::from_millis(
            u64::try_from(self.secs)
                .unwrap_or(u64::MAX)
                .saturating_mul(1000)
                / 3,
        )
    }

    /// Keeps the key registered until the task is stopped.
    async fn run(mut self) {
        let mut pause = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            let ended = self.keep().await;
            let lease = self.lease.load(Ordering::Relaxed);
            match ended {
                Ended::LeaseGone => {
                    tracing::warn!(key = %self.key, lease, "etcd lease gone; registering again");
                    match grant_and_put(&mut self.client, self.secs, &self.key, &self.value).await {
                        Ok(new) => {
                            self.lease.store(new, Ordering::Relaxed);
                            tracing::info!(key = %self.key, lease = new, "etcd key registered again");
                            failures = 0;
                            pause = Duration::from_millis(100);
                            continue;
                        }
                        Err(e) => self.failed(&mut failures, &e),
                    }
                }
                Ended::Failed(e) => self.failed(&mut failures, &e),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.period().max(Duration::from_millis(100)));
        }
    }

    fn failed(&self, failures: &mut u32, e: &Status) {
        *failures += 1;
        if *failures == 1 || failures.is_power_of_two() {
            tracing::warn!(key = %self.key, failures = *failures, "etcd keep-alive: {}; retrying", e.message());
        }
    }

    /// Makes sure the key is there under a live lease, then renews the lease every third of
    /// its TTL until something breaks.
    async fn keep(&mut self) -> Ended {
        let lease = self.lease.load(Ordering::Relaxed);
        // Is the lease still there (after a broken stream, etcd may have restarted)?
        let left = match bounded(
            "lease time-to-live",
            self.client.lease_time_to_live(lease, None),
        )
        .await
        {
            Ok(resp) => resp.ttl(),
            Err(e) => return Ended::Failed(e),
        };
        if left <= 0 {
            return Ended::LeaseGone;
        }
        // Write the key again: someone may have deleted it, and a put of the same value is
        // harmless.
        if let Err(e) = put(&mut self.client, &self.key, &self.value, lease).await {
            return Ended::Failed(e);
        }
        let (mut keeper, mut replies) =
            match bounded("keep-alive", self.client.lease_keep_alive(lease)).await {
                Ok(pair) => pair,
                Err(e) => return Ended::Failed(e),
            };
        let period = self.period();
        loop {
            tokio::time::sleep(period).await;
            if let Err(e) = keeper.keep_alive().await {
                return Ended::Failed(status("keep-alive", e));
            }
            match tokio::time::timeout(period.max(Duration::from_secs(1)), replies.message()).await
            {
                Ok(Ok(Some(reply))) if reply.ttl() <= 0 => return Ended::LeaseGone,
                Ok(Ok(Some(_))) => {}
                Ok(Ok(None)) => {
                    return Ended::Failed(Status::unavailable("etcd keep-alive: the stream ended"))
                }
                Ok(Err(e)) => return Ended::Failed(status("keep-alive", e)),
                Err(_) => return Ended::Failed(Status::unavailable("etcd keep-alive: no reply")),
            }
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("lease", &self.lease())
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The registered key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease the key is under now (a new one after the old one was lost).
    pub fn lease(&self) -> i64 {
        self.lease.load(Ordering::Relaxed)
    }

    /// Stops the keep-alive, deletes the key and revokes the lease now: watchers see the
    /// server leave at once.
    pub async fn deregister(mut self) -> Result<(), Status> {
        self.halt();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let lease = self.lease();
        bounded("delete", self.client.delete(self.key.as_str(), None)).await?;
        match bounded_raw(self.client.lease_revoke(lease)).await {
            // The lease went by itself (expired, or revoked by someone else): so did the key.
            Some(Err(etcd_client::Error::GRpcStatus(s))) if i32::from(s.code()) == NOT_FOUND => {
                Ok(())
            }
            Some(Err(e)) => Err(status("lease revoke", e)),
            Some(Ok(_)) => Ok(()),
            None => Err(Status::unavailable(format!(
                "etcd lease revoke: no answer within {TIMEOUT:?}"
            ))),
        }
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.halt();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
