//! tonic's `Endpoint` builder names, kept apart from the endpoint itself, so a client set-up
//! ported from tonic compiles and does what it did there: making an endpoint from an address
//! (`from_static`, `from_shared`, `TryFrom`), socket options (`tcp_nodelay`, `tcp_keepalive`,
//! `local_address`: setters over its [`SocketConfig`](crate::SocketConfig), which every TCP
//! connection of the endpoint is made with), HTTP/2's keepalive settings mapped onto sockrpc's
//! PING keepalive ([`Keepalive`]), the channel's limits (`concurrency_limit`, `rate_limit`,
//! applied by the channel made from the endpoint), and `tls_config`.
//!
//! tonic sets keepalive in three calls, in any order, where sockrpc has one value: the
//! timeout and while-idle settings are kept as given ([`KeepaliveParts`]) and make up the
//! [`Keepalive`] once `http2_keep_alive_interval` turns it on, with hyper's defaults for what
//! was not given (a 20 s PONG wait, no PINGs while idle), as tonic's.

use crate::{Endpoint, Keepalive};
use sockrpc_protocol::Status;
use std::net::IpAddr;
use std::time::Duration;

/// hyper's default wait for a keepalive PONG, which tonic keeps.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// tonic's keepalive settings as given, before or after its interval.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeepaliveParts {
    timeout: Option<Duration>,
    while_idle: Option<bool>,
}

/// tonic's names for making an endpoint from an address.
impl Endpoint {
    /// An endpoint from a constant address, as tonic's `Endpoint::from_static`.
    ///
    /// # Panics
    /// If `uri` is not an address [`from_uri`](Endpoint::from_uri) takes, as tonic's does.
    pub fn from_static(uri: &'static str) -> Endpoint {
        match Endpoint::from_uri(uri) {
            Ok(endpoint) => endpoint,
            Err(status) => panic!("Endpoint::from_static({uri:?}): {}", status.message()),
        }
    }

    /// An endpoint from an address held at run time, as tonic's `Endpoint::from_shared`:
    /// [`from_uri`](Endpoint::from_uri) for an owned string (or bytes, which must be UTF-8).
    pub fn from_shared(uri: impl Into<Vec<u8>>) -> Result<Endpoint, Status> {
        let uri = String::from_utf8(uri.into())
            .map_err(|_| Status::invalid_argument("invalid endpoint: not UTF-8"))?;
        Endpoint::from_uri(&uri)
    }
}

/// `Endpoint::try_from("tcp://127.0.0.1:50051")`, as tonic's.
impl TryFrom<&str> for Endpoint {
    type Error = Status;

    fn try_from(uri: &str) -> Result<Endpoint, Status> {
        Endpoint::from_uri(uri)
    }
}

/// `Endpoint::try_from(address_string)`, as tonic's.
impl TryFrom<String> for Endpoint {
    type Error = Status;

    fn try_from(uri: String) -> Result<Endpoint, Status> {
        Endpoint::from_uri(&uri)
    }
}

/// `"tcp://127.0.0.1:50051".parse::<Endpoint>()`, as tonic's.
impl std::str::FromStr for Endpoint {
    type Err = Status;

    fn from_str(uri: &str) -> Result<Endpoint, Status> {
        Endpoint::from_uri(uri)
    }
}

/// tonic's names for socket options, over [`SocketConfig`](crate::SocketConfig).
impl Endpoint {
    /// Sets `TCP_NODELAY` on this endpoint's connections (on by default, as tonic's).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.socket = self.socket.nodelay(on);
        self
    }

    /// Sends TCP keepalive probes after `idle` without traffic (`None`: none; default 60 s),
    /// tonic's `tcp_keepalive`. sockrpc's own PING keepalive is
    /// [`keepalive`](Endpoint::keepalive).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.socket = self.socket.keepalive(idle);
        self
    }

    /// Binds each TCP connection to this local IP address before it connects (`None`: the
    /// system picks), tonic's `local_address`. As hyper's connector does, an address of the
    /// other family than the server's (IPv4 for an IPv6 server) is not used.
    pub fn local_address(mut self, addr: Option<IpAddr>) -> Self {
        self.socket = self.socket.local_address(addr);
        self
    }
}

/// tonic's HTTP/2 keepalive settings, mapped onto sockrpc's [`Keepalive`] PINGs.
impl Endpoint {
    /// PINGs the server every `interval` and fails the connection, and with it its calls
    /// (`UNAVAILABLE`), when a PONG does not come within the keepalive timeout: tonic's
    /// `http2_keep_alive_interval`, which turns keepalive on. The timeout and while-idle are
    /// those given with [`keep_alive_timeout`](Self::keep_alive_timeout) and
    /// [`keep_alive_while_idle`](Self::keep_alive_while_idle), before or after this, else those
    /// of a keepalive already set, else hyper's (20 s; only while calls are in flight).
    pub fn http2_keep_alive_interval(mut self, interval: Duration) -> Self {
        let current = self.keepalive;
        let parts = self.tonic_keepalive;
        self.keepalive = Some(Keepalive {
            interval,
            timeout: parts
                .timeout
                .or(current.map(|k| k.timeout))
                .unwrap_or(KEEPALIVE_TIMEOUT),
            while_idle: parts
                .while_idle
                .or(current.map(|k| k.while_idle))
                .unwrap_or(false),
        });
        self
    }

    /// How long to wait for a keepalive PONG, tonic's `keep_alive_timeout` (default 20 s). No
    /// PING is sent until [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) is set.
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.tonic_keepalive.timeout = Some(timeout);
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.timeout = timeout;
        }
        self
    }

    /// Also PINGs while no call is in flight, tonic's `keep_alive_while_idle` (default off),
    /// once [`http2_keep_alive_interval`](Self::http2_keep_alive_interval) is set.
    pub fn keep_alive_while_idle(mut self, on: bool) -> Self {
        self.tonic_keepalive.while_idle = Some(on);
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.while_idle = on;
        }
        self
    }
}

/// tonic's limits of a channel: tower's `ConcurrencyLimit` and `RateLimit`, applied by the
/// channel made from this endpoint to all its clones together.
impl Endpoint {
    /// At most `limit` calls in flight at once on the channel (tonic's `concurrency_limit`);
    /// one more waits in `poll_ready` until a call's answer (its headers, for a stream)
    /// has come. See [`Endpoint::concurrency_limit`](Endpoint#structfield.concurrency_limit).
    /// As tower's, a limit of 0 lets no call start.
    pub fn concurrency_limit(mut self, limit: usize) -> Self {
        self.concurrency_limit = Some(limit);
        self
    }

    /// At most `limit` calls started in each window of `per` on the channel (tonic's
    /// `rate_limit`, tower's `RateLimit`: a window begins with the first call after the one
    /// before is over; as tower's, a limit of 0 lets one call through per window). See
    /// [`Endpoint::rate_limit`](Endpoint#structfield.rate_limit).
    pub fn rate_limit(mut self, limit: u64, per: Duration) -> Self {
        self.rate_limit = Some((limit, per));
        self
    }
}

/// tonic's `tls_config`.
#[cfg(feature = "tls")]
impl Endpoint {
    /// Speaks TLS on every connection with `config`, as [`tls`](Endpoint::tls), under tonic's
    /// name and signature: the configuration is built now, so CAs or an identity rustls
    /// cannot use fail here, as tonic's do, rather than at the first connect.
    pub fn tls_config(
        self,
        config: crate::tls::ClientTlsConfig,
    ) -> Result<Self, crate::tls::TlsError> {
        config.build()?;
        Ok(self.tls(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tonic's `tcp_nodelay` and `tcp_keepalive` reach the socket a connection is made with
    /// (`attempt.rs` connects with the endpoint's `socket`).
    #[tokio::test]
    async fn tonics_socket_options_reach_the_connected_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connect = |endpoint: Endpoint| async move {
            let stream = crate::socket::connect_tcp(addr, &endpoint.socket, Duration::from_secs(5))
                .await
                .expect("connect");
            crate::socket::SocketOptions::read(&stream).expect("read")
        };
        let base = Endpoint::from_static("tcp://127.0.0.1:1");
        let tuned = base
            .clone()
            .tcp_nodelay(false)
            .tcp_keepalive(Some(Duration::from_secs(7)));
        let opts = connect(tuned).await;
        assert!(!opts.nodelay, "{opts:?}");
        assert_eq!(
            opts.keepalive_idle,
            Some(Duration::from_secs(7)),
            "{opts:?}"
        );
        let opts = connect(base.clone().tcp_keepalive(None)).await;
        assert!(opts.nodelay, "{opts:?}");
        assert!(!opts.keepalive, "{opts:?}");
    }
}
