//! etcd discovery and registration (feature `etcd`).
//!
//! ```text
//!  server ── lease (TTL) + put PREFIX/IP:PORT = IP:PORT ──▶ etcd ◀── get + watch PREFIX ── client
//!     └── keep-alive every TTL/3; graceful stop: delete + revoke first, then drain
//! ```
//!
//! A server [`register`]s under a prefix with a lease it keeps alive; a server that dies stops
//! renewing, and etcd deletes its key when the lease expires, which every watcher sees. A
//! graceful shutdown calls [`Registration::deregister`] first, so clients stop sending before
//! the server drains. Clients [`discover`] the prefix: a read of what is there, then a watch
//! from the next revision; when the watch breaks they read again and reconcile.

use super::{Change, Discovery};
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::Endpoint;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

fn unavailable(what: &str, err: etcd_client::Error) -> Status {
    Status::unavailable(format!("etcd {what}: {err}"))
}

/// A server's registration: its key, kept alive by a background task until
/// [`deregister`](Registration::deregister)ed or dropped (dropping stops the keep-alive, so the
/// key goes when the lease expires).
pub struct Registration {
    client: Client,
    key: String,
    lease: i64,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Registers `addr` under `prefix` (key `PREFIX` + `IP:PORT`) with a lease of `ttl` (at least
/// 1 s), renewed every third of it.
pub async fn register(
    endpoints: &[String],
    prefix: &str,
    addr: SocketAddr,
    ttl: Duration,
) -> Result<Registration, Status> {
    let mut client = Client::connect(endpoints, None)
        .await
        .map_err(|e| unavailable("connect", e))?;
    let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let lease = client
        .lease_grant(secs, None)
        .await
        .map_err(|e| unavailable("lease grant", e))?
        .id();
    let key = format!("{prefix}{addr}");
    client
        .put(
            key.as_str(),
            addr.to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| unavailable("put", e))?;
    let (stop, mut stopped) = oneshot::channel();
    let mut renew = client.clone();
    let period = Duration::from_secs(secs as u64) / 3;
    let task = tokio::spawn(async move {
        let Ok((mut keeper, mut replies)) = renew.lease_keep_alive(lease).await else {
            tracing::warn!(lease, "etcd keep-alive could not start");
            return;
        };
        loop {
            if keeper.keep_alive().await.is_err() {
                tracing::warn!(lease, "etcd keep-alive failed");
                return;
            }
            let _ = tokio::time::timeout(period, replies.message()).await;
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(period) => {}
            }
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

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The registered key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Deletes the key and revokes the lease now: watchers see the server leave at once.
    pub async fn deregister(mut self) -> Result<(), Status> {
        self.halt();
        self.client
            .delete(self.key.as_str(), None)
            .await
            .map_err(|e| unavailable("delete", e))?;
        self.client
            .lease_revoke(self.lease)
            .await
            .map_err(|e| unavailable("lease revoke", e))?;
        Ok(())
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Discovery of the servers registered under `prefix`: each key's value is `IP:PORT`, the
/// endpoint made by `template`.
pub async fn discover(
    endpoints: &[String],
    prefix: &str,
    template: impl Fn(SocketAddr) -> Endpoint + Send + 'static,
) -> Result<Discovery, Status> {
    let client = Client::connect(endpoints, None)
        .await
        .map_err(|e| unavailable("connect", e))?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(follow(client, prefix.to_owned(), template, tx));
    let stream = super::futures_util_free::poll_fn_stream(move |cx| rx.poll_recv(cx));
    Ok(Discovery::new(stream))
}

fn insert(value: &[u8], template: &impl Fn(SocketAddr) -> Endpoint) -> Option<(String, Change)> {
    let addr: SocketAddr = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    let key = addr.to_string();
    Some((key.clone(), Change::insert(key, template(addr))))
}

async fn follow(
    mut client: Client,
    prefix: String,
    template: impl Fn(SocketAddr) -> Endpoint + Send,
    tx: mpsc::UnboundedSender<Change>,
) {
    // etcd key → member key, for deletes (whose events carry no value).
    let mut known: std::collections::BTreeMap<Vec<u8>, String> = Default::default();
    let mut pause = Duration::from_millis(100);
    loop {
        if tx.is_closed() {
            return;
        }
        // Read what is there, reconcile, then watch from the next revision.
        let read = client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await;
        let revision = match read {
            Ok(resp) => {
                let mut seen = BTreeSet::new();
                for kv in resp.kvs() {
                    if let Some((key, change)) = insert(kv.value(), &template) {
                        seen.insert(kv.key().to_vec());
                        if known.get(kv.key()) != Some(&key) {
                            known.insert(kv.key().to_vec(), key);
                            let _ = tx.send(change);
                        }
                    }
                }
                let stale: Vec<_> = known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for k in stale {
                    if let Some(key) = known.remove(&k) {
                        let _ = tx.send(Change::Remove(key));
                    }
                }
                resp.header().map_or(0, |h| h.revision())
            }
            Err(err) => {
                tracing::debug!(%err, "etcd read failed");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let Ok(mut stream) = client.watch(prefix.as_str(), Some(options)).await else {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            continue;
        };
        pause = Duration::from_millis(100);
        loop {
            let message = tokio::select! {
                m = stream.message() => m,
                () = tx.closed() => return,
            };
            let Ok(Some(resp)) = message else { break };
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                match event.event_type() {
                    EventType::Put => {
                        if let Some((key, change)) = insert(kv.value(), &template) {
                            known.insert(kv.key().to_vec(), key);
                            let _ = tx.send(change);
                        }
                    }
                    EventType::Delete => {
                        if let Some(key) = known.remove(kv.key()) {
                            let _ = tx.send(Change::Remove(key));
                        }
                    }
                }
            }
        }
    }
}
