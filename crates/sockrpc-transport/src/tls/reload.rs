//! `ServerTls`: a server's TLS configuration, replaceable while it serves.
//!
//! ```text
//!  reload(config) ─build─▶ ok? ──swap──▶ current ◀── read by each new handshake
//!                           └ error: the old one stays, the caller hears why
//!  watch(files, every) ── reads the files each tick; when their bytes change: reload
//! ```
//!
//! A handshake takes the configuration current when it starts; a connection keeps the session
//! it made. Nothing is restarted and no connection is dropped. TLS session resumption state is
//! not carried across a reload, so a session made under an old client CA is not resumed under
//! a new one.

use super::pem::{Certificates, Identity, TlsError};
use super::server::ServerTlsConfig;
use std::{
    fmt,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, RwLock,
    },
    time::Duration,
};

struct Inner {
    /// What new handshakes use.
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The settings `current` was built from; its lock also orders reloads.
    settings: Mutex<ServerTlsConfig>,
    reloads: AtomicU64,
}

/// A server's TLS configuration, live: every new handshake uses what it holds at that moment,
/// and [`reload`](ServerTls::reload) (or a [`watch`](ServerTls::watch) on the files) replaces
/// it while the server runs. Clones share it: keep one to rotate the certificate of a server
/// built with another.
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("client_auth", &self.config().effective_client_auth())
            .field("reloads", &self.reloads())
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl ServerTls {
    /// Builds `config` (checking it) and holds it.
    pub fn new(config: ServerTlsConfig) -> Result<ServerTls, TlsError> {
        let built = config.build()?;
        Ok(ServerTls {
            inner: Arc::new(Inner {
                current: RwLock::new(built),
                settings: Mutex::new(config),
                reloads: AtomicU64::new(0),
            }),
        })
    }

    /// Replaces the whole configuration. On error the current one stays.
    pub fn reload(&self, config: ServerTlsConfig) -> Result<(), TlsError> {
        self.update(|_| config)
    }

    /// Replaces the server's certificate and key, keeping the rest.
    pub fn reload_identity(&self, identity: Identity) -> Result<(), TlsError> {
        self.update(|config| config.identity(identity))
    }

    /// Replaces the client CAs (`None`: none, and no client authentication unless it was set
    /// explicitly), keeping the rest.
    pub fn reload_client_ca(&self, client_ca: Option<Certificates>) -> Result<(), TlsError> {
        self.update(|config| match client_ca {
            Some(ca) => config.client_ca(ca),
            None => config.no_client_ca(),
        })
    }

    fn update(
        &self,
        change: impl FnOnce(ServerTlsConfig) -> ServerTlsConfig,
    ) -> Result<(), TlsError> {
        let mut settings = lock(&self.inner.settings);
        let next = change(settings.clone());
        let built = next.build()?;
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = built;
        *settings = next;
        self.inner.reloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!("TLS configuration reloaded");
        Ok(())
    }

    /// The settings in force.
    pub fn config(&self) -> ServerTlsConfig {
        lock(&self.inner.settings).clone()
    }

    /// Reloads so far.
    pub fn reloads(&self) -> u64 {
        self.inner.reloads.load(Ordering::Relaxed)
    }

    /// The rustls configuration a handshake starting now uses: for a TLS listener of your own
    /// that should rotate with this one (it requires ALPN `sockrpc/1` of its clients).
    pub fn rustls_config(&self) -> Arc<rustls::ServerConfig> {
        self.current()
    }

    /// What a handshake starting now uses.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(
            &self
                .inner
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Reads `files` every `every` and reloads when their contents change (a half-finished
    /// rotation — a new certificate beside the old key — is logged and retried on the next
    /// tick; the configuration in force stays until the files agree). Needs a tokio runtime;
    /// the watch stops when the returned [`TlsWatch`] is dropped.
    pub fn watch(&self, files: TlsFiles, every: Duration) -> TlsWatch {
        let tls = self.clone();
        // The files as they are now, read before returning: a change made right after this
        // call is a change, whenever the task first runs.
        let mut seen = files.read().ok();
        let task = tokio::spawn(async move {
            let mut failed: Option<Snapshot> = None;
            // What the last failed read said: a file that stays missing is warned of once,
            // not on every tick.
            let mut unread: Option<String> = None;
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let now = match files.read() {
                    Ok(now) => now,
                    Err(err) => {
                        let err = err.to_string();
                        if unread.as_ref() != Some(&err) {
                            tracing::warn!(error = %err, "TLS watch: cannot read the files; keeping the configuration in force (said once until it changes)");
                        } else {
                            tracing::debug!(error = %err, "TLS watch: cannot read the files");
                        }
                        unread = Some(err);
                        continue;
                    }
                };
                if unread.take().is_some() {
                    tracing::info!("TLS watch: the files can be read again");
                }
                if seen.as_ref() == Some(&now) || failed.as_ref() == Some(&now) {
                    continue;
                }
                match tls.reload_from(&files, &now) {
                    Ok(()) => {
                        seen = Some(now);
                        failed = None;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "TLS watch: the new files are not usable yet; keeping the configuration in force");
                        failed = Some(now);
                    }
                }
            }
        });
        TlsWatch { task }
    }

    fn reload_from(&self, paths: &TlsFiles, files: &Snapshot) -> Result<(), TlsError> {
        let identity = Identity::from_pem_named(&files.cert, &paths.cert, &files.key, &paths.key)?;
        let client_ca = match (&files.client_ca, &paths.client_ca) {
            (Some(pem), Some(path)) => Some(Certificates::from_pem_named(pem, path)?),
            _ => None,
        };
        self.update(|config| {
            let config = config.identity(identity);
            match client_ca {
                Some(ca) => config.client_ca(ca),
                None => config,
            }
        })
    }
}

/// The PEM files a [`ServerTls::watch`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
    /// The client CAs, if any.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// A certificate and its key.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        }
    }

    /// Also the client CAs.
    pub fn client_ca(mut self, path: impl Into<PathBuf>) -> TlsFiles {
        self.client_ca = Some(path.into());
        self
    }

    fn read(&self) -> std::io::Result<Snapshot> {
        // The error names its file: "No such file or directory" alone says not which.
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|err| {
                std::io::Error::new(err.kind(), format!("{}: {err}", path.display()))
            })
        };
        Ok(Snapshot {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            client_ca: self.client_ca.as_ref().map(read).transpose()?,
        })
    }
}

#[derive(PartialEq, Eq)]
struct Snapshot {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

/// A running watch on TLS files; dropping it stops the watch.
#[derive(Debug)]
pub struct TlsWatch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
