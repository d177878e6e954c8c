//! tonic's names for the server builder's settings, so a builder chain ported from tonic
//! compiles: each is a thin alias of the sockrpc setting with the same effect (HTTP/2 names
//! map to sockrpc's own frames: `http2_keepalive_*` is the connection's PING keepalive,
//! `max_concurrent_streams` its limit of calls; `concurrency_limit_per_connection` is with
//! `load_shed`, in `load_shed.rs`).

use super::{Finish, ServerBuilder};
use crate::{BoxError, Call, IntoCallResponse, NamedService};
use sockrpc_transport::Keepalive;
use std::{io, path::Path, time::Duration};
use tower_service::Service;

/// tonic's default wait for a keepalive PONG.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

impl<L> ServerBuilder<L> {
    /// Mounts `service` if there is one (tonic's `add_optional_service`): a server whose
    /// services depend on its configuration builds in one chain.
    pub fn add_optional_service<S>(self, service: Option<S>) -> Self
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        match service {
            Some(service) => self.add_service(service),
            None => self,
        }
    }

    /// tonic's (HTTP/2's) name for [`max_concurrent_calls`](ServerBuilder::max_concurrent_calls);
    /// `None` leaves the limit as it is.
    ///
    /// # Panics
    /// If `n` is `Some(0)`.
    pub fn max_concurrent_streams(self, n: impl Into<Option<u32>>) -> Self {
        match n.into() {
            Some(n) => self.max_concurrent_calls(usize::try_from(n).unwrap_or(usize::MAX)),
            None => self,
        }
    }

    /// Sets `TCP_NODELAY` on accepted connections (on by default, as tonic's).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.config.socket = self.config.socket.nodelay(on);
        self
    }

    /// Sets TCP keepalive probes on accepted connections after `idle` (`None`: off).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.config.socket = self.config.socket.keepalive(idle);
        self
    }

    /// PINGs a client heard nothing from for `interval` (`None`: never PING), tonic's
    /// `http2_keepalive_interval`; the PONG's wait stays as set (20 s by default).
    pub fn http2_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        let timeout = self
            .config
            .keepalive
            .map_or(KEEPALIVE_TIMEOUT, |keepalive| keepalive.timeout);
        self.config.keepalive = interval.map(|interval| Keepalive::new(interval, timeout));
        self
    }

    /// How long the server waits for a keepalive PONG before closing the connection, tonic's
    /// `http2_keepalive_timeout` (`None`: 20 s). No effect while keepalive is off.
    pub fn http2_keepalive_timeout(mut self, timeout: Option<Duration>) -> Self {
        if let Some(keepalive) = &mut self.config.keepalive {
            keepalive.timeout = timeout.unwrap_or(KEEPALIVE_TIMEOUT);
        }
        self
    }
}

#[cfg(feature = "tls")]
impl<L> ServerBuilder<L> {
    /// Serves every connection over TLS with `config`, tonic's `tls_config`: the same as
    /// [`tls`](ServerBuilder::tls), which fails as tonic's does when rustls cannot use the
    /// identity or client CAs.
    pub fn tls_config(
        self,
        config: sockrpc_transport::tls::ServerTlsConfig,
    ) -> Result<Self, sockrpc_transport::tls::TlsError> {
        self.tls(config)
    }
}

impl<L: Finish> ServerBuilder<L> {
    /// Binds a Unix socket at `path` and serves until the process ends:
    /// [`serve_unix_with_shutdown`](ServerBuilder::serve_unix_with_shutdown) without a signal.
    pub async fn serve_unix(self, path: impl AsRef<Path>) -> io::Result<()> {
        self.serve_unix_with_shutdown(path, std::future::pending::<()>())
            .await
    }
}
