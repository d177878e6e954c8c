//! `UdpServerConfig`: what a UDP server may send, run and keep, and for how long.

use super::cache::ReplyCacheConfig;
use super::datagram::DEFAULT_MAX_DATAGRAM;
use super::limiter::RateLimit;
use sockrpc_protocol::Limits;
use std::{collections::HashSet, time::Duration};

/// UDP server settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UdpServerConfig {
    /// Largest datagram sent; a larger answer goes out as TRUNCATED. Default 1232.
    pub max_datagram: usize,
    /// Metadata limits, the send limit (an answer's message over it is refused
    /// `RESOURCE_EXHAUSTED`, as over TCP) and the status message cap (the receive limit is
    /// moot: a datagram is smaller). The service crate's `Server` takes these within its own
    /// limits (each the smaller of the two), so that a cap set on the server holds over UDP too.
    pub limits: Limits,
    /// Calls running at once; requests beyond are refused unrun, with `NOT_PROCESSED` (its
    /// client may carry them over TCP). Default 4096.
    pub max_in_flight: usize,
    /// Calls one verified source (an IPv4 address, or an IPv6 /64) may have running at once
    /// (unverified sources draw on `max_unverified_in_flight` instead), of those
    /// `max_in_flight` counts (calls whose handler did not answer on its first poll); past it the
    /// source's new calls are refused unrun, with `NOT_PROCESSED` (its client may carry them
    /// over TCP), so that one host cannot hold every call slot. Default 512, an eighth of
    /// `max_in_flight`; 0 behaves as 1 (a source with nothing running may always start one).
    pub max_in_flight_per_source: usize,
    /// Calls all sources without a valid cookie (perhaps forged) may have running at once
    /// together, of those `max_in_flight` counts, whatever addresses they claim; past it every
    /// unverified call is refused unrun, with `NOT_PROCESSED` (counted `unverified_refused`), so
    /// verified clients keep the rest. Unverified calls count here only, never against a
    /// verified source's share. Default 256, a sixteenth of `max_in_flight`.
    pub max_unverified_in_flight: usize,
    /// Full paths (`/package.Service/Method`) of methods that may run more than once — marked
    /// `NO_SIDE_EFFECTS` or `IDEMPOTENT` in their `.proto` — and so skip the reply cache: a
    /// retransmission runs them again. A TCP re-issue of one finds nothing cached; the router
    /// runs it again only if the mounted service marks it idempotent. Empty by default;
    /// the service crate's `Server`, when it serves UDP, adds the methods its mounted services
    /// mark idempotent.
    pub idempotent_methods: HashSet<String>,
    /// A cookie is valid for this long to twice this long. Default 60 s.
    pub cookie_lifetime: Duration,
    /// Rate limit for datagrams from sources without a valid cookie.
    pub rate_limit: RateLimit,
    /// How long running calls may finish after shutdown begins. Default 5 s.
    pub grace_period: Duration,
    /// The server-wide cap on any call's deadline, as
    /// [`ServerConfig::timeout`](crate::server::ServerConfig::timeout). Default `None`.
    pub timeout: Option<Duration>,
    /// The bounds and ttl of the reply cache that the service crate's `Server` makes for this
    /// socket (and shares with its TCP side, for re-issues). [`UdpServer::new`] takes its
    /// cache ready-made instead and does not read this.
    ///
    /// [`UdpServer::new`]: super::UdpServer::new
    pub reply_cache: ReplyCacheConfig,
    /// `SO_RCVBUF` the socket is raised to when it has less (never lowered; the kernel caps it
    /// at `net.core.rmem_max`), so that a burst of datagrams is not dropped by a full buffer:
    /// Linux's default of 208 KiB holds about a hundred. `None` leaves the socket as it is.
    /// Default 4 MiB ([`UDP_RECV_BUFFER`](crate::socket::UDP_RECV_BUFFER)).
    pub recv_buffer_size: Option<usize>,
}

impl Default for UdpServerConfig {
    fn default() -> UdpServerConfig {
        UdpServerConfig {
            max_datagram: DEFAULT_MAX_DATAGRAM,
            limits: Limits::default(),
            max_in_flight: 4096,
            max_in_flight_per_source: 512,
            max_unverified_in_flight: 256,
            idempotent_methods: HashSet::new(),
            cookie_lifetime: Duration::from_secs(60),
            rate_limit: RateLimit::default(),
            grace_period: Duration::from_secs(5),
            timeout: None,
            reply_cache: ReplyCacheConfig::default(),
            recv_buffer_size: Some(crate::socket::UDP_RECV_BUFFER),
        }
    }
}

impl UdpServerConfig {
    /// Whether `path` skips the reply cache (see [`idempotent_methods`](Self::idempotent_methods)).
    /// The UDP server asks this for each request; a re-issued call missing from the cache is the
    /// router's to judge, by the methods its services mark idempotent.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.idempotent_methods.contains(path)
    }
}
