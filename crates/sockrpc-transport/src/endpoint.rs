//! `Endpoint`: where and how a channel connects.

use crate::backoff::Backoff;
use crate::endpoint_unix;
#[cfg(test)]
use crate::endpoint_unix::UNIX_FORMS;
use crate::udp::UdpClientConfig;
use crate::unix_abstract::{abstract_name, abstract_path, check_name};
use crate::{Keepalive, SocketConfig};
use sockrpc_protocol::{Limits, Status, MAX_TIMEOUT};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

/// A server address and the settings for talking to it.
///
/// Accepts `tcp://host:port`, `host:port`, (for tonic users' habits) `http://host:port` and
/// `grpc://`; `unix:path/to.sock` (relative or absolute) or `unix:///abs/path.sock` for a Unix
/// domain socket, and `unix-abstract:NAME` for a Linux abstract one, as gRPC names them and
/// grpc-go reads them (a path beginning with `/` is percent-decoded, `unix:///a%20b.sock`
/// being `/a b.sock`; `unix:rel%20x` is taken as written; `unix://host/path` is refused: a
/// Unix socket has no host, and `unix://tmp/x.sock` is not the path `tmp/x.sock`; a `?query`
/// or `#fragment` is dropped; on Linux `unix:@NAME` is `unix-abstract:NAME`); and
/// `tls://host:port` (or `tcps://`, and as tonic users write it `https://`, `grpcs://`) for TLS
/// with default settings: the platform's CAs, the host as the server name (set others with
/// [`tls`](Endpoint::tls)). Host names resolve through the system resolver at connect time;
/// every address of a name is tried in turn.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Endpoint {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path of a Unix domain socket; when set, `host` and `port` are not used. A path whose
    /// first byte is NUL names the Linux abstract socket after it (as in the socket address,
    /// and as tokio takes it; see [`unix_abstract`](Endpoint::unix_abstract)).
    pub unix_path: Option<PathBuf>,
    /// Time allowed to set up a connection. Default 20 s (gRPC's minimum connect timeout).
    pub connect_timeout: Duration,
    /// Connections kept to this endpoint. Default 1: one connection multiplexes many calls;
    /// more spread a load past [`calls_per_connection`](Endpoint::calls_per_connection) each.
    pub pool_size: usize,
    /// Calls in flight a pooled connection takes before calls go to the next one (when every
    /// connection has this many, to the least loaded). Default 64. A soft share, not a limit:
    /// no call waits for this share. Lower it to spread a moderate load over the pool (several
    /// server threads each reading one connection, or several backends behind one address); the
    /// default keeps calls batched on as few connections as carry them. A server that takes
    /// fewer calls per connection announces its limit in its SETTINGS, and that limit is the
    /// connection's share then; a call made when every connection is at the server's limit
    /// waits on the one that was least loaded when it was made (calls waiting counted) for a
    /// call there to end, up to its deadline, or without one for as long as it takes, as on
    /// HTTP/2. It stays on that connection: give calls behind long-lived streams a deadline.
    pub calls_per_connection: usize,
    /// Keepalive PINGs; default off, as in gRPC.
    pub keepalive: Option<Keepalive>,
    /// Pooled connections beyond the first close after this long without calls. Default 5 min.
    pub idle_timeout: Duration,
    /// Reconnect backoff. Default gRPC's: 1 s, ×1.6, ±20 %, at most 120 s.
    pub backoff: Backoff,
    /// UDP for small unary calls; `None` (the default) sends everything over the stream.
    pub udp: Option<UdpPolicy>,
    /// Timeout for calls that set none themselves; `None`: wait as long as the call takes.
    pub timeout: Option<Duration>,
    /// Whether calls that find no connection wait for one (gRPC's wait-for-ready) rather than
    /// fail fast; a call's own choice (`Request::set_wait_for_ready`) overrides it. Default
    /// off, as in gRPC: a call waits for the outcome of the connection attempt under way (or
    /// of the next, when it is due within the first backoff's wait), within its deadline and
    /// the connect timeout, and fails `UNAVAILABLE` with its error if it fails; in a longer
    /// backoff it fails at once. With it on, a call waits across failed attempts up to its
    /// deadline (then `DEADLINE_EXCEEDED`), or without one until a connection comes up.
    pub wait_for_ready: bool,
    /// Message and metadata limits for this client.
    pub limits: Limits,
    /// Socket options.
    pub socket: SocketConfig,
    /// TLS on every connection, TCP or Unix socket (`None`: plain text). With TLS, UDP is off
    /// unless its policy allows plain text explicitly ([`UdpPolicy::allow_plaintext_with_tls`]):
    /// a datagram cannot carry a TLS session.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::tls::ClientTlsConfig>,
    /// The `user-agent` metadata every call on this endpoint carries (set with
    /// [`user_agent`](Endpoint::user_agent)); `None`, the default, sends none.
    pub user_agent: Option<String>,
    /// Calls in flight at once on a channel made from this endpoint, all its clones together
    /// (tonic's [`concurrency_limit`](Endpoint::concurrency_limit)); `None`, the default: no
    /// limit. A call past it waits in the channel's `poll_ready` until one ends.
    pub concurrency_limit: Option<usize>,
    /// At most `.0` calls started in each window of `.1` on a channel made from this endpoint,
    /// all its clones together (tonic's [`rate_limit`](Endpoint::rate_limit)); `None`, the
    /// default: no limit. A call past it waits in the channel's `poll_ready` for the next window.
    pub rate_limit: Option<(u64, Duration)>,
    /// tonic's keepalive timeout and while-idle, as given (see `endpoint_tonic.rs`).
    pub(crate) tonic_keepalive: crate::endpoint_tonic::KeepaliveParts,
}

/// The default [`Endpoint::calls_per_connection`]: 64 calls in flight fill one connection's
/// write and read batches (see `docs/PERFORMANCE.md`) before a second connection is worth its
/// extra system calls.
const DEFAULT_CALLS_PER_CONNECTION: usize = 64;

impl Endpoint {
    /// Parses an address such as `tcp://127.0.0.1:50051`, `[::1]:50051` or
    /// `unix:///run/app.sock` (the forms are listed on [`Endpoint`]).
    pub fn from_uri(uri: &str) -> Result<Endpoint, Status> {
        let invalid = || {
            Status::invalid_argument(format!(
                "invalid endpoint {uri:?}: expected tcp://host:port or host:port"
            ))
        };
        if let Some(rest) = uri.strip_prefix("unix:") {
            return endpoint_unix::socket_path(uri, rest).map(Endpoint::unix);
        }
        if let Some(rest) = uri.strip_prefix("unix-abstract:") {
            let name = endpoint_unix::abstract_socket_name(uri, rest)?;
            return Ok(Endpoint::unix(abstract_path(&name)));
        }
        // `https://` and `grpcs://` as tonic and grpc users write them: TLS, as `tls://` is.
        let tls_rest = ["tls://", "tcps://", "https://", "grpcs://"]
            .iter()
            .find_map(|scheme| uri.strip_prefix(scheme));
        let rest = tls_rest.unwrap_or_else(|| {
            ["tcp://", "http://", "grpc://"]
                .iter()
                .find_map(|scheme| uri.strip_prefix(scheme))
                .unwrap_or(uri)
        });

        if rest.contains("://") {
            return Err(Status::invalid_argument(format!(
                "unsupported scheme in endpoint {uri:?}"
            )));
        }
        let rest = rest.trim_end_matches('/');
        let no_port = || {
            // The example keeps the scheme and the host as written, less a trailing ':' (so
            // `127.0.0.1:` suggests `127.0.0.1:50051`, not `127.0.0.1::50051`).
            let scheme = uri.find("://").map_or("", |at| &uri[..at + 3]);
            let host = rest.trim_end_matches(':');
            Status::invalid_argument(format!(
                "endpoint {uri:?} has no port: write host:port (e.g. {:?})",
                format!("{scheme}{host}:50051")
            ))
        };
        let (host, port) = match rest.strip_prefix('[') {
            // [v6]:port
            Some(bracketed) => {
                let (host, after) = bracketed.split_once(']').ok_or_else(invalid)?;
                (host, after.strip_prefix(':').ok_or_else(no_port)?)
            }
            None => rest.rsplit_once(':').ok_or_else(no_port)?,
        };
        if port.is_empty() {
            return Err(no_port());
        }
        let port: u16 = port.parse().map_err(|_| {
            Status::invalid_argument(format!(
                "endpoint {uri:?} has an invalid port {port:?}: expected 0-65535"
            ))
        })?;
        if host.is_empty() {
            return Err(invalid());
        }
        let endpoint = Endpoint::new(host, port);
        match tls_rest {
            None => Ok(endpoint),
            #[cfg(feature = "tls")]
            Some(_) => Ok(endpoint.tls(crate::tls::ClientTlsConfig::new())),
            #[cfg(not(feature = "tls"))]
            Some(_) => Err(Status::invalid_argument(format!(
                "endpoint {uri:?} asks for TLS, which needs sockrpc's `tls` feature"
            ))),
        }
    }

    /// An endpoint for a Unix domain socket at `path` (a path whose first byte is NUL: the
    /// Linux abstract name after it, as [`unix_abstract`](Endpoint::unix_abstract) makes).
    pub fn unix(path: impl AsRef<Path>) -> Endpoint {
        let mut endpoint = Endpoint::new("localhost", 0);
        endpoint.unix_path = Some(path.as_ref().to_path_buf());
        endpoint
    }

    /// An endpoint for the Linux abstract Unix socket `name` (gRPC's `unix-abstract:NAME`;
    /// the name without the NUL that begins it in the socket address). Fails with
    /// `InvalidArgument` off Linux and Android, and for a name that is empty, holds a NUL
    /// byte (gRPC's naming doc has none) or is longer than
    /// [`MAX_ABSTRACT_NAME`](crate::unix_abstract::MAX_ABSTRACT_NAME) bytes.
    pub fn unix_abstract(name: impl AsRef<[u8]>) -> Result<Endpoint, Status> {
        let name = name.as_ref();
        check_name(name).map_err(|why| {
            Status::invalid_argument(format!(
                "invalid abstract socket name {:?}: {why}",
                String::from_utf8_lossy(name)
            ))
        })?;
        Ok(Endpoint::unix(abstract_path(name)))
    }

    /// The Linux abstract name this endpoint connects to, if it names one.
    pub fn unix_abstract_name(&self) -> Option<&[u8]> {
        self.unix_path.as_deref().and_then(abstract_name)
    }

    /// An endpoint for `host` and `port` with default settings.
    pub fn new(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint {
            host: host.into(),
            port,
            unix_path: None,
            connect_timeout: Duration::from_secs(20),
            pool_size: 1,
            calls_per_connection: DEFAULT_CALLS_PER_CONNECTION,
            keepalive: None,
            idle_timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            udp: None,
            timeout: None,
            wait_for_ready: false,
            limits: Limits::default(),
            socket: SocketConfig::default(),
            #[cfg(feature = "tls")]
            tls: None,
            user_agent: None,
            concurrency_limit: None,
            rate_limit: None,
            tonic_keepalive: Default::default(),
        }
    }

    /// Speaks TLS on every connection, with `config`'s CAs, server name and identity.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: crate::tls::ClientTlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Whether connections speak TLS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// The UDP policy in force: the one set, except with TLS, where UDP is off unless the policy
    /// allows plain text explicitly.
    pub fn udp_in_effect(&self) -> Option<&UdpPolicy> {
        self.udp
            .as_ref()
            .filter(|policy| !self.is_tls() || policy.allow_plaintext_with_tls)
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// Sets the pool size (at least 1).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// Sets how many calls in flight a pooled connection takes before the next one gets calls
    /// (at least 1; 1 spreads calls over the pool one by one).
    pub fn calls_per_connection(mut self, calls: usize) -> Self {
        self.calls_per_connection = calls.max(1);
        self
    }

    /// Sets keepalive.
    pub fn keepalive(mut self, keepalive: Option<Keepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Sets the idle timeout for pooled connections beyond the first.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets whether calls wait for a connection by default ([`Endpoint::wait_for_ready`]).
    pub fn wait_for_ready(mut self, wait: bool) -> Self {
        self.wait_for_ready = wait;
        self
    }

    /// Sets the reconnect backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sends unary calls whose request fits a datagram over UDP to `addr` (the server's UDP
    /// port), everything else over the stream; a reply too large for a datagram is fetched over
    /// the stream without running the call twice. UDP is plain text: with TLS it stays off
    /// unless the policy allows it ([`UdpPolicy::allow_plaintext_with_tls`]).
    pub fn udp(mut self, addr: SocketAddr) -> Self {
        self.udp = Some(UdpPolicy::new(addr));
        self
    }

    /// Sets (or clears) the UDP policy with all its settings.
    pub fn udp_policy(mut self, policy: Option<UdpPolicy>) -> Self {
        self.udp = policy;
        self
    }

    /// Sets the default per-call timeout (at most [`MAX_TIMEOUT`]: a longer one is taken as it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout.min(MAX_TIMEOUT));
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The largest answer message received (tonic's name; default 4 MiB).
    pub fn max_decoding_message_size(mut self, bytes: usize) -> Self {
        self.limits = self.limits.with_max_message_size(bytes);
        self
    }

    /// The largest request message sent (tonic's name; default: the receive limit).
    pub fn max_encoding_message_size(mut self, bytes: usize) -> Self {
        self.limits = self.limits.with_max_send_message_size(bytes);
        self
    }

    /// Sets the socket options.
    pub fn socket_config(mut self, socket: SocketConfig) -> Self {
        self.socket = socket;
        self
    }

    /// Sends `user-agent: <agent> sockrpc/<version>` with every call (as gRPC clients do, and
    /// tonic's `Endpoint::user_agent`), so servers can tell clients apart in logs and
    /// interceptors. A call that sets `user-agent` itself keeps its own. Costs one metadata
    /// entry per call; fails with `InvalidArgument` unless `agent` is printable ASCII.
    pub fn user_agent(mut self, agent: impl Into<String>) -> Result<Self, Status> {
        let agent = agent.into();
        if !agent.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(Status::invalid_argument(format!(
                "user agent {agent:?} must be printable ASCII"
            )));
        }
        let version = env!("CARGO_PKG_VERSION");
        self.user_agent = Some(if agent.is_empty() {
            format!("sockrpc/{version}")
        } else {
            format!("{agent} sockrpc/{version}")
        });
        Ok(self)
    }

    /// Resolves the host to socket addresses.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, Status> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|err| Status::unavailable(format!("cannot resolve {}: {err}", self.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(Status::unavailable(format!(
                "{} has no addresses",
                self.host
            )));
        }
        Ok(addrs)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.is_tls() { "tls" } else { "tcp" };
        if let Some(path) = &self.unix_path {
            // `unix:///abs`, `unix:rel` or `unix-abstract:NAME`: each parses back to it.
            endpoint_unix::write_uri(f, path)?;
            if self.is_tls() {
                f.write_str(" (TLS)")?;
            }
            Ok(())
        } else if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// Where and how a channel sends small calls over UDP.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UdpPolicy {
    /// The server's UDP address.
    pub addr: SocketAddr,
    /// Datagram size, retransmission and fallback settings.
    pub config: UdpClientConfig,
    /// Send small calls over (plain-text) UDP even when the endpoint's stream connections
    /// speak TLS. Default off: on a TLS endpoint, UDP is not used.
    pub allow_plaintext_with_tls: bool,
}

impl UdpPolicy {
    /// UDP to `addr` with default settings (1232-byte datagrams).
    pub fn new(addr: SocketAddr) -> UdpPolicy {
        UdpPolicy {
            addr,
            config: UdpClientConfig::default(),
            allow_plaintext_with_tls: false,
        }
    }

    /// Allows plain-text UDP beside TLS streams (calls and answers then travel unencrypted and
    /// unauthenticated).
    pub fn allow_plaintext_with_tls(mut self, on: bool) -> UdpPolicy {
        self.allow_plaintext_with_tls = on;
        self
    }
}

/// Anything a channel can connect to: an [`Endpoint`], a string, a socket address.
pub trait IntoEndpoint {
    /// Converts, failing with `InvalidArgument` on a malformed address.
    fn into_endpoint(self) -> Result<Endpoint, Status>;
}

impl IntoEndpoint for Endpoint {
    fn into_endpoint(self) -> Result<Endpoint, Status> {
        Ok(self)
    }
}

impl IntoEndpoint for &str {
    fn into_endpoint(self) -> Result<Endpoint, Status> {
        Endpoint::from_uri(self)
    }
}

impl IntoEndpoint for String {
    fn into_endpoint(self) -> Result<Endpoint, Status> {
        Endpoint::from_uri(&self)
    }
}

impl IntoEndpoint for &String {
    fn into_endpoint(self) -> Result<Endpoint, Status> {
        Endpoint::from_uri(self)
    }
}

impl IntoEndpoint for SocketAddr {
    fn into_endpoint(self) -> Result<Endpoint, Status> {
        Ok(Endpoint::new(self.ip().to_string(), self.port()))
    }
}

#[cfg(test)]
#[path = "endpoint_tests.rs"]
mod tests;
