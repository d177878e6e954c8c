//! DNS discovery: A/AAAA records of a name (each address on a given port), or SRV records
//! (target, port, priority, weight), looked up again when the records' TTL runs out.
//!
//! The TTL is bounded below ([`DnsDiscovery::min_ttl`], default 1 s, so a zero TTL does not
//! turn into a query storm) and above ([`DnsDiscovery::max_ttl`], default 5 min, so a long TTL
//! does not hide a change for hours). When a connection to a resolved address fails the
//! balanced channel pokes the discovery, which looks again early (still no more often than
//! `min_ttl`). A failed lookup keeps the last good answer and tries again after `min_ttl`.
//! With SRV, only the records of the best (lowest) priority that resolve are used; their SRV
//! weights become endpoint weights.

use super::{endpoint_key, Change, Discovery};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::Endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A and AAAA records of the name; every address on this port.
    Ip {
        /// The name.
        name: String,
        /// The port.
        port: u16,
    },
    /// SRV records of the name (e.g. `_grpc._tcp.example.com`).
    Srv {
        /// The name.
        name: String,
    },
}

/// A function making the endpoint of a resolved address (to set TLS, pool size, timeouts).
pub type EndpointFn = Arc<dyn Fn(SocketAddr) -> Endpoint + Send + Sync>;

/// DNS discovery settings; [`DnsDiscovery::start`] makes the [`Discovery`].
#[derive(Clone)]
pub struct DnsDiscovery {
    query: Query,
    server: Option<SocketAddr>,
    min_ttl: Duration,
    max_ttl: Duration,
    endpoint: EndpointFn,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("query", &self.query)
            .field("server", &self.server)
            .field("min_ttl", &self.min_ttl)
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

impl DnsDiscovery {
    /// Looks up `query` with the system's resolver configuration (`/etc/resolv.conf`).
    pub fn new(query: Query) -> DnsDiscovery {
        DnsDiscovery {
            query,
            server: None,
            min_ttl: Duration::from_secs(1),
            max_ttl: Duration::from_secs(300),
            endpoint: Arc::new(|addr: SocketAddr| {
                Endpoint::new(addr.ip().to_string(), addr.port())
            }),
        }
    }

    /// A and AAAA records of `name`, on `port`.
    pub fn ip(name: impl Into<String>, port: u16) -> DnsDiscovery {
        DnsDiscovery::new(Query::Ip {
            name: name.into(),
            port,
        })
    }

    /// SRV records of `name`.
    pub fn srv(name: impl Into<String>) -> DnsDiscovery {
        DnsDiscovery::new(Query::Srv { name: name.into() })
    }

    /// Asks this DNS server (UDP, then TCP) instead of the system's.
    pub fn server(mut self, server: SocketAddr) -> DnsDiscovery {
        self.server = Some(server);
        self
    }

    /// The shortest wait between lookups (default 1 s).
    pub fn min_ttl(mut self, ttl: Duration) -> DnsDiscovery {
        self.min_ttl = ttl;
        self
    }

    /// The longest wait between lookups (default 5 min).
    pub fn max_ttl(mut self, ttl: Duration) -> DnsDiscovery {
        self.max_ttl = ttl;
        self
    }

    /// Makes each resolved address's endpoint with `f`.
    pub fn endpoint(
        mut self,
        f: impl Fn(SocketAddr) -> Endpoint + Send + Sync + 'static,
    ) -> DnsDiscovery {
        self.endpoint = Arc::new(f);
        self
    }

    fn resolver(&self) -> Result<TokioResolver, Status> {
        let builder = match self.server {
            Some(addr) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                config.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            }
            None => TokioResolver::builder_tokio().map_err(|e| {
                Status::invalid_argument(format!("no system DNS configuration: {e}"))
            })?,
        };
        let mut builder = builder;
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.options_mut().attempts = 2;
        Ok(builder.build())
    }

    /// Starts looking up (in a task that ends when the discovery is dropped).
    pub fn start(self) -> Result<Discovery, Status> {
        if self.min_ttl > self.max_ttl {
            return Err(Status::invalid_argument("DNS min_ttl is above max_ttl"));
        }
        let resolver = self.resolver()?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let hint = Arc::new(Notify::new());
        tokio::spawn(follow(self, resolver, tx, Arc::clone(&hint)));
        let stream = super::futures_util_free::poll_fn_stream(move |cx| rx.poll_recv(cx));
        Ok(Discovery::new(stream).with_failure_hint(hint))
    }
}

/// One lookup's answer: weight per address, and the TTL.
type Answer = (BTreeMap<SocketAddr, u32>, Duration);

async fn lookup(resolver: &TokioResolver, query: &Query) -> Result<Answer, String> {
    resolver.clear_cache();
    match query {
        Query::Ip { name, port } => {
            let found = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let ttl = found.as_lookup().records().iter().map(|r| r.ttl()).min();
            let addrs = found
                .iter()
                .map(|ip| (SocketAddr::new(ip, *port), 1))
                .collect();
            Ok((addrs, Duration::from_secs(u64::from(ttl.unwrap_or(0)))))
        }
        Query::Srv { name } => {
            let found = resolver
                .srv_lookup(name.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let mut ttl = found.as_lookup().records().iter().map(|r| r.ttl()).min();
            let mut by_priority: BTreeMap<u16, BTreeMap<SocketAddr, u32>> = BTreeMap::new();
            for srv in found.iter() {
                let Ok(ips) = resolver.lookup_ip(srv.target().clone()).await else {
                    continue;
                };
                let ip_ttl = ips.as_lookup().records().iter().map(|r| r.ttl()).min();
                ttl = ttl.min(ip_ttl).or(ttl).or(ip_ttl);
                for ip in ips.iter() {
                    by_priority.entry(srv.priority()).or_default().insert(
                        SocketAddr::new(ip, srv.port()),
                        u32::from(srv.weight()).max(1),
                    );
                }
            }
            let best = by_priority
                .into_iter()
                .next()
                .map(|(_, a)| a)
                .unwrap_or_default();
            Ok((best, Duration::from_secs(u64::from(ttl.unwrap_or(0)))))
        }
    }
}

async fn follow(
    config: DnsDiscovery,
    resolver: TokioResolver,
    tx: mpsc::UnboundedSender<Change>,
    hint: Arc<Notify>,
) {
    // Each address's weight and the key its endpoint was inserted under.
    let mut known: BTreeMap<SocketAddr, (u32, String)> = BTreeMap::new();
    loop {
        let looked = Instant::now();
        let wait = match lookup(&resolver, &config.query).await {
            Ok((found, ttl)) => {
                let mut changes = Vec::new();
                known.retain(|addr, (_, key)| {
                    let keep = found.contains_key(addr);
                    if !keep {
                        changes.push(Change::Remove(key.clone()));
                    }
                    keep
                });
                for (addr, weight) in found {
                    match known.get_mut(&addr) {
                        None => {
                            let endpoint = (config.endpoint)(addr);
                            let key = endpoint_key(&endpoint);
                            changes.push(Change::Insert {
                                key: key.clone(),
                                endpoint: Box::new(endpoint),
                                weight,
                            });
                            known.insert(addr, (weight, key));
                        }
                        Some((old, key)) if *old != weight => {
                            *old = weight;
                            changes.push(Change::Weight(key.clone(), weight));
                        }
                        Some(_) => {}
                    }
                }
                for change in changes {
                    if tx.send(change).is_err() {
                        return;
                    }
                }
                ttl.clamp(config.min_ttl, config.max_ttl)
            }
            Err(error) => {
                tracing::debug!(query = ?config.query, %error, "DNS lookup failed; keeping the last answer");
                config.min_ttl
            }
        };
        // Until the TTL runs out, or earlier (but not before min_ttl) when a connection failed.
        let early = async {
            hint.notified().await;
            tokio::time::sleep_until(looked + config.min_ttl).await;
        };
        tokio::select! {
            () = tokio::time::sleep_until(looked + wait) => {}
            () = early => {}
            () = tx.closed() => return,
        }
    }
}
