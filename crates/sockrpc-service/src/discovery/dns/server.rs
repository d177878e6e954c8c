//! The DNS server a discovery asks, and the resolver that asks it: the system's (as
//! `/etc/resolv.conf` says), one at an address, or one named by host name.
//!
//! Why a host name: grpc-go's `dns://dns.internal:53/svc:50051` names its DNS server by name
//! (its dialer looks the name up for each query), and a user moving from it, or a test writing
//! `dns://localhost:5353/…`, expects the form to work rather than be refused. Here the name is
//! looked up with the system's resolver (the hosts file, then its DNS servers) when the lookup
//! task builds its resolver, and again after a lookup that failed, so a DNS server that moved is
//! found again; each address it has is asked, as `/etc/resolv.conf`'s `nameserver` lines are.

use super::connected::{self, Connected, DnsResolver};
use super::DnsDiscovery;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::GenericConnector;
use hickory_resolver::proto::xfer::Protocol;
use sockrpc_protocol::Status;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The port of a DNS server named without one.
pub(super) const DNS_PORT: u16 = 53;

/// The most addresses of a DNS server's name that are asked (`/etc/resolv.conf` reads three
/// `nameserver` lines, glibc's `MAXNS`).
const MAX_ADDRESSES: usize = 3;

/// The longest a DNS server's name is looked up for (the system's resolver has timeouts of its
/// own; this bounds a lookup task that would otherwise wait on a blocking thread).
const NAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A DNS server to ask instead of the system's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Server {
    /// At this address.
    Addr(SocketAddr),
    /// At the addresses of this name, on this port.
    Host {
        /// The name, looked up with the system's resolver.
        name: String,
        /// The DNS port.
        port: u16,
    },
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Addr(addr) => write!(f, "{addr}"),
            Server::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

impl DnsDiscovery {
    /// The resolver, when it can be made without waiting: the system's as `/etc/resolv.conf`
    /// configures it (its `timeout:` and `attempts:` options included), or one asking
    /// [`server`](Self::server) with a 2 s timeout, twice; [`timeout`](Self::timeout) and
    /// [`attempts`](Self::attempts) override either. `None` for a server named by host name:
    /// the lookup task makes that one ([`resolver_named`](Self::resolver_named)).
    pub(super) fn resolver(&self) -> Result<Option<DnsResolver>, Status> {
        match &self.server {
            None => {
                let builder = DnsResolver::builder(connected::provider()).map_err(|e| {
                    Status::invalid_argument(format!("no system DNS configuration: {e}"))
                })?;
                Ok(Some(self.finish(builder)))
            }
            Some(Server::Addr(addr)) => Ok(Some(self.asking(&[*addr]))),
            Some(Server::Host { .. }) => Ok(None),
        }
    }

    /// The resolver asking a DNS server named by host name, once the name is looked up.
    /// `Err` says why it could not be made; the caller backs off and tries again.
    pub(super) async fn resolver_named(&self) -> Result<DnsResolver, String> {
        let Some(Server::Host { name, port }) = &self.server else {
            return match self.resolver() {
                Ok(Some(resolver)) => Ok(resolver),
                Ok(None) => Err("no resolver".to_owned()),
                Err(status) => Err(status.message().to_owned()),
            };
        };
        let found = tokio::time::timeout(NAME_TIMEOUT, tokio::net::lookup_host((&**name, *port)))
            .await
            .map_err(|_| {
                format!("the DNS server's name {name:?} found no address within {NAME_TIMEOUT:?}")
            })?
            .map_err(|e| format!("the DNS server's name {name:?}: {e}"))?;
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for addr in found {
            if !addrs.contains(&addr) && addrs.len() < MAX_ADDRESSES {
                addrs.push(addr);
            }
        }
        if addrs.is_empty() {
            return Err(format!("the DNS server's name {name:?} has no address"));
        }
        Ok(self.asking(&addrs))
    }

    /// A resolver asking these DNS servers over UDP, and over TCP when an answer was truncated
    /// (2 s timeout, 2 attempts unless set).
    fn asking(&self, addrs: &[SocketAddr]) -> DnsResolver {
        let mut config = ResolverConfig::new();
        for addr in addrs {
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Udp));
            config.add_name_server(NameServerConfig::new(*addr, Protocol::Tcp));
        }
        let mut builder = DnsResolver::builder_with_config(config, connected::provider());
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 2;
        self.finish(builder)
    }

    fn finish(
        &self,
        mut builder: hickory_resolver::ResolverBuilder<GenericConnector<Connected>>,
    ) -> DnsResolver {
        // EDNS0 (RFC 6891): without it a server may send a UDP answer longer than the 512
        // bytes hickory then reads, which it drops as malformed and waits out to a timeout
        // (50 A records is 850 bytes); with it, the answer fits the 1232 bytes offered, or
        // comes back truncated and is asked again over TCP.
        builder.options_mut().edns0 = true;
        if let Some(timeout) = self.timeout {
            builder.options_mut().timeout = timeout;
        }
        if let Some(attempts) = self.attempts {
            builder.options_mut().attempts = attempts;
        }
        builder.build()
    }
}

/// The DNS server an authority names: `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT`, `NAME` or
/// `NAME:PORT` (port 53 by default).
pub(super) fn parse(authority: &str) -> Result<Server, String> {
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(Server::Addr(addr));
    }
    let bare = authority
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(authority);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Server::Addr(SocketAddr::new(ip, DNS_PORT)));
    }
    let (name, port) = super::target::host_port(authority, DNS_PORT)
        .map_err(|why| format!("the DNS server {authority:?}: {why}"))?;
    if name.starts_with('[') || super::check_name(&name).is_err() {
        return Err(format!(
            "the DNS server {authority:?} is not IP[:PORT] nor NAME[:PORT]"
        ));
    }
    Ok(Server::Host { name, port })
}
