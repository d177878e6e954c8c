//! DNS discovery: the addresses of a name (the hosts file's, else its A and AAAA records; each
//! address on a given port), or SRV records (target, port, priority, weight), looked up again
//! when the records' TTL runs out.
//!
//! The TTL is bounded below ([`DnsDiscovery::min_ttl`], default 1 s, so a zero TTL does not
//! turn into a query storm) and above ([`DnsDiscovery::max_ttl`], default 5 min, so a long TTL
//! does not hide a change for hours). When a connection to a resolved address fails the
//! balanced channel pokes the discovery, which looks again early: `min_ttl` after the last
//! lookup, then, while early lookups find nothing new (a server down, not moved), 1.6 times
//! later each time up to 30 s, grpc-go's shortest time between resolutions, so connections that
//! keep failing do not ask DNS every `min_ttl`; a change (however found), or 30 s without a
//! failed connection, starts over from `min_ttl` (`early.rs`).
//!
//! An answer that is not whole is followed by a backoff instead of a TTL: the next lookup comes
//! after `min_ttl`, then 1.6 times later each time (± 20 %, as grpc-go backs off after a
//! resolver error), up to 2 min (and `max_ttl`), starting over whenever the set changes:
//! - a failed lookup (SERVFAIL, REFUSED, a timeout) keeps the last good answer;
//! - one that came back in part (A answered, AAAA timed out) takes the half that answered and
//!   keeps the last answer's addresses of the other family (an SRV answer with a target that
//!   failed outright keeps the last answer whole; one family of a target failing does not
//!   count); with no answer yet, the part that came is used. Its backoff is capped by the TTL
//!   of the records that did come, so the half that answered is followed as a whole answer
//!   would be;
//! - a name that does not exist (NXDOMAIN), has no addresses, or whose SRV records name no
//!   usable target is an answer, an empty one: its endpoints leave, and calls fail at once with
//!   the reason (grpc-go's "produced zero addresses") until it comes back; it is asked again at
//!   most its negative TTL (or 30 s) later.
//!
//! With SRV, every priority's targets become endpoints with that priority, and their SRV
//! weights endpoint weights; the balanced channel sends calls to the best priority that has a
//! usable endpoint (RFC 2782's rule: a worse priority only when the better ones are down). How one lookup reads its answers: `lookup.rs`;
//! how an SRV answer's targets are looked up (each name once, several at a time, at most 64,
//! within one deadline): `targets.rs`. One answer gives at most
//! [`DnsDiscovery::max_endpoints`] endpoints (100), a subset of a larger one: `subset.rs`.
//!
//! Why a lookup failed is kept for the balanced channel, which says it when no endpoint can
//! take a call (grpc-go's "name resolver error"), instead of only that none is usable; before
//! the first answer, a call that gives up waiting says which server and name it waited for.
//!
//! Queries carry EDNS0, so that an answer longer than 512 bytes (50 addresses) comes whole
//! over UDP or truncated, then over TCP. A query's timeout and attempts are settable
//! ([`DnsDiscovery::timeout`], [`DnsDiscovery::attempts`]), and gRPC's `dns:` target strings are
//! read by [`DnsDiscovery::target`] (`target.rs`). The whole behaviour, and where it differs from
//! grpc-go's: `docs/DNS.md`.

mod apply;
mod connected;
mod early;
mod lookup;
mod search;
mod server;
mod subset;
mod target;
mod targets;
mod txt;

pub use target::DEFAULT_PORT;

use super::{Change, Discovery, Problem, ServiceConfigFeed};
use apply::apply;
use connected::DnsResolver;
use hickory_resolver::Hosts;
use lookup::{literal, lookup, Keep, Place};
use server::Server;
use sockrpc_protocol::Status;
use sockrpc_transport::backoff::{Backoff, BackoffState};
use sockrpc_transport::endpoint::Endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    server: Option<Server>,
    min_ttl: Duration,
    max_ttl: Duration,
    /// Per-query timeout and attempts; `None`: 2 s and 2 with [`server`](Self::server), else
    /// what `/etc/resolv.conf` says.
    timeout: Option<Duration>,
    attempts: Option<usize>,
    /// The most endpoints one answer gives (`subset.rs`).
    max_endpoints: usize,
    endpoint: EndpointFn,
    /// Where the service config of `_grpc_config.NAME` goes, when asked for, and who this
    /// client is when choosing it.
    service_config: Option<(ServiceConfigFeed, txt::Client)>,
}

impl std::fmt::Debug for DnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsDiscovery")
            .field("query", &self.query)
            .field("server", &self.server)
            .field("min_ttl", &self.min_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("max_endpoints", &self.max_endpoints)
            .field("service_config", &self.service_config.is_some())
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
            timeout: None,
            attempts: None,
            max_endpoints: subset::DEFAULT_MAX_ENDPOINTS,
            endpoint: Arc::new(|addr: SocketAddr| {
                Endpoint::new(addr.ip().to_string(), addr.port())
            }),
            service_config: None,
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

    /// Asks this DNS server instead of the system's: over UDP, and over TCP when an answer was
    /// truncated.
    pub fn server(mut self, server: SocketAddr) -> DnsDiscovery {
        self.server = Some(Server::Addr(server));
        self
    }

    /// Asks the DNS server named `name` on `port` instead of the system's, as
    /// [`server`](Self::server) does; the name is looked up with the system's resolver (the
    /// hosts file, then DNS) when the lookups start, and again after a lookup that failed
    /// (grpc-go's `dns://NAME:PORT/…` authority).
    pub fn server_host(mut self, name: impl Into<String>, port: u16) -> DnsDiscovery {
        self.server = Some(Server::Host {
            name: name.into(),
            port,
        });
        self
    }

    /// The shortest wait between lookups (default 1 s; at least 100 ms, a shorter one is
    /// raised to it, so that a zero TTL or a failing server cannot turn into a query storm).
    pub fn min_ttl(mut self, ttl: Duration) -> DnsDiscovery {
        self.min_ttl = ttl.max(MIN_TTL_FLOOR);
        self
    }

    /// The longest wait between lookups (default 5 min).
    pub fn max_ttl(mut self, ttl: Duration) -> DnsDiscovery {
        self.max_ttl = ttl;
        self
    }

    /// How long one query waits for the DNS server's answer (default 2 s with
    /// [`server`](Self::server), else `/etc/resolv.conf`'s `timeout:`, 5 s by default; at least
    /// 10 ms). A server that never answers holds a lookup for about `timeout` ×
    /// [`attempts`](Self::attempts), and up to twice that with [`server`](Self::server) (UDP,
    /// then TCP): until the first lookup ends, a call waits for an endpoint, up to its
    /// deadline, and its status then says the DNS answer is still awaited.
    pub fn timeout(mut self, timeout: Duration) -> DnsDiscovery {
        self.timeout = Some(timeout.max(Duration::from_millis(10)));
        self
    }

    /// How many times a query is sent before the lookup gives up (default 2 with
    /// [`server`](Self::server), else `/etc/resolv.conf`'s `attempts:`; at least 1).
    pub fn attempts(mut self, attempts: usize) -> DnsDiscovery {
        self.attempts = Some(attempts.max(1));
        self
    }

    /// The most endpoints (servers the channel connects to) one answer gives, default 100, at
    /// least 1. A larger answer (a DNS answer over TCP may hold 4,000 addresses, and SRV
    /// multiplies that by its targets) gives a subset: the best SRV priorities first, then
    /// chosen by a hash under a seed of this client's, so the subset stays the same from one
    /// lookup to the next while the answer does, and clients together cover the whole answer.
    pub fn max_endpoints(mut self, max: usize) -> DnsDiscovery {
        self.max_endpoints = max.max(1);
        self
    }

    /// Also looks up the service config in DNS (gRFC A2: the TXT record `_grpc_config.NAME`,
    /// at each lookup of the name's addresses) and publishes the config chosen for this
    /// client into `feed`, which `sockrpc-middleware`'s `DynamicServiceConfigLayer` applies to
    /// the channel's calls. Off unless asked for, as in grpc-java (grpc-go asks by default): a
    /// TXT query at every lookup costs, and a record anyone with the zone can write changes
    /// the client's timeouts and retries. No record (or no choice for this client) publishes
    /// `None`, the user's default; a malformed record, or a failed TXT lookup, leaves the last
    /// config in place, and a malformed one is logged once per change. For an IP literal, and
    /// for SRV queries, nothing is looked up (grpc-go looks up the TXT of the target's host,
    /// which an SRV query here does not have).
    pub fn service_config(mut self, feed: &ServiceConfigFeed) -> DnsDiscovery {
        self.service_config = Some((feed.clone(), txt::Client::this_machine()));
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

    /// Starts looking up (in a task that ends when the discovery is dropped, or with its
    /// runtime: then the next runtime to poll the discovery starts another). A name that is
    /// not a valid DNS name (nor an IP address) is refused here, `INVALID_ARGUMENT`, rather
    /// than looked up in vain every `min_ttl`.
    pub fn start(self) -> Result<Discovery, Status> {
        if self.min_ttl > self.max_ttl {
            return Err(Status::invalid_argument(format!(
                "DNS min_ttl ({:?}, at least {MIN_TTL_FLOOR:?}) is above max_ttl ({:?})",
                self.min_ttl, self.max_ttl
            )));
        }
        let name = match &self.query {
            Query::Ip { name, .. } | Query::Srv { name } => name,
        };
        check_name(name)?;
        let resolver = self.resolver()?;
        // Read once, as the resolver reads its configuration once.
        let hosts = Arc::new(Hosts::from_system().unwrap_or_default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let hint = Arc::new(Notify::new());
        let problem = Problem::default();
        // Until the first answer (or error): what a call that gives up waiting says.
        problem.waiting(Some(format!(
            "waiting for the first DNS answer for {} from {}",
            describe_query(&self.query),
            self.server
                .as_ref()
                .map_or_else(|| "the system's DNS servers".to_owned(), |s| s.to_string()),
        )));
        let mut lookups = Lookups {
            config: self,
            resolver,
            hosts,
            tx,
            hint: Arc::clone(&hint),
            problem: problem.clone(),
            known: Arc::default(),
            running: Arc::new(AtomicBool::new(false)),
        };
        lookups.ensure_running();
        let stream = super::futures_util_free::poll_fn_stream(move |cx| {
            // Again after the runtime that ran the task ended (a channel kept in a static):
            // one atomic load while it runs.
            lookups.ensure_running();
            rx.poll_recv(cx)
        });
        Ok(Discovery::new(stream)
            .with_failure_hint(hint)
            .with_problem(problem))
    }
}

/// Each address's weight and priority, and the key its endpoint was inserted under: what the
/// channel was told, kept across the lookup task's restarts.
type Known = BTreeMap<SocketAddr, (Place, String)>;

/// What the lookup task needs, kept by the discovery's stream: the task runs on the runtime
/// that started it and ends with it, and the stream starts another, on the runtime polling it,
/// when it finds none running. The endpoints the channel was told of stay in `known`, so the
/// next task's first answer is told as the changes since, removals included.
struct Lookups {
    config: DnsDiscovery,
    /// The resolver for the first task; a later one makes its own (the first one's connections
    /// belonged to the runtime that ended). `None` for a DNS server named by host name: the
    /// task makes it.
    resolver: Option<DnsResolver>,
    hosts: Arc<Hosts>,
    /// The stream holds a sender too: the channel does not end when a task dies with its
    /// runtime (a task still ends when the stream is dropped: `tx.closed()`).
    tx: mpsc::UnboundedSender<Change>,
    hint: Arc<Notify>,
    problem: Problem,
    known: Arc<Mutex<Known>>,
    /// A task runs; cleared by [`Running`] as it ends, however it ends.
    running: Arc<AtomicBool>,
}

impl Lookups {
    /// Starts the lookup task on the current runtime unless one runs.
    fn ensure_running(&mut self) {
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let resolver = match self.resolver.take() {
            Some(resolver) => Some(resolver),
            None => match self.config.resolver() {
                Ok(resolver) => resolver,
                Err(status) => {
                    self.problem.set(status.message().to_owned());
                    return;
                }
            },
        };
        self.running.store(true, Ordering::Release);
        let running = Running(Arc::clone(&self.running));
        let task = follow(
            self.config.clone(),
            resolver,
            Arc::clone(&self.hosts),
            self.tx.clone(),
            Arc::clone(&self.hint),
            self.problem.clone(),
            Arc::clone(&self.known),
        );
        runtime.spawn(async move {
            let _running = running;
            task.await;
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the lookup task as ended, however it ends (dropped with its runtime included).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The longest wait between lookups while answers are not whole (gRPC's backoff cap).
const RETRY_CAP: Duration = Duration::from_secs(120);

/// The floor of [`DnsDiscovery::min_ttl`].
const MIN_TTL_FLOOR: Duration = Duration::from_millis(100);

/// The query in words: `NAME:PORT`, or `SRV NAME`.
fn describe_query(query: &Query) -> String {
    match query {
        Query::Ip { name, port } => format!("{name}:{port}"),
        Query::Srv { name } => format!("SRV {name}"),
    }
}

/// Refuses a name no lookup can answer: empty, or not a DNS name (`dns:///x` or
/// `dns://server/x` written where a name goes, a port left in it).
fn check_name(name: &str) -> Result<(), Status> {
    if literal(name).is_some() {
        return Ok(());
    }
    if name.trim_end_matches('.').is_empty() {
        return Err(Status::invalid_argument("the DNS name is empty"));
    }
    if name.contains([':', '/']) {
        return Err(Status::invalid_argument(format!(
            "{name:?} is not a DNS name: a name has no ':' or '/' (the port goes apart)"
        )));
    }
    hickory_resolver::Name::from_utf8(name)
        .map(|_| ())
        .map_err(|_| Status::invalid_argument(format!("{name:?} is not a DNS name")))
}

async fn follow(
    config: DnsDiscovery,
    mut resolver: Option<DnsResolver>,
    hosts: Arc<Hosts>,
    tx: mpsc::UnboundedSender<Change>,
    hint: Arc<Notify>,
    problem: Problem,
    known: Arc<Mutex<Known>>,
) {
    // The wait after an answer that was not whole (empty, partial, failed): from `min_ttl`, ×1.6
    // ± 20 % after each, as gRPC's backoff, up to [`RETRY_CAP`]; reset when the set changes.
    let mut retry = BackoffState::new(Backoff::starting_at(config.min_ttl).max(RETRY_CAP));
    // The malformed TXT record last logged: logged again only when it changes.
    let mut txt_problem: Option<String> = None;
    let mut subset = subset::Subset::new(config.max_endpoints);
    // The shortest wait from a lookup to an early one (a connection failed): `early.rs`.
    let mut early_gap = early::Early::new(config.min_ttl);
    // Whether the lookup under way was woken early.
    let mut early_now = false;
    loop {
        let looked = Instant::now();
        // Whether the set changed, and the next wait: a whole answer's TTL, or (`Err`) a
        // backoff capped by what is given.
        let made = match resolver.take() {
            Some(resolver) => Ok(resolver),
            None => config.resolver_named().await,
        };
        let result = match made {
            Ok(made) => {
                let both = async {
                    tokio::join!(
                        lookup(&made, &hosts, &config.query),
                        txt::follow(&config, &made, &mut txt_problem)
                    )
                };
                // Nobody listens any more: the lookup under way (up to its deadline) is
                // dropped, not finished.
                let (result, ()) = tokio::select! {
                    both = both => both,
                    () = tx.closed() => return,
                };
                // A DNS server named by host name is looked up again after a failure: it
                // may have moved.
                let named = matches!(config.server, Some(Server::Host { .. }));
                resolver = (result.is_ok() || !named).then_some(made);
                result
            }
            Err(why) => Err(why),
        };
        let (changed, next): (bool, Result<Duration, Duration>) = match result {
            Ok(found) if found.failed.is_none() => {
                let ttl = found.ttl.clamp(config.min_ttl, config.max_ttl);
                if let Some(why) = &found.none {
                    // Said before the endpoints leave: a call between hears why.
                    problem.set(format!("DNS found no address: {why}"));
                }
                let empty = found.none.is_some();
                // A whole answer with addresses clears the problem once the channel has its
                // changes: a call in between waits for them.
                let clears = (!empty).then_some(&problem);
                let addrs = subset.take(found.addrs, &config.query);
                let applied = apply(&config, &mut lock(&known), addrs, &tx, clears);
                let Some(changed) = applied else {
                    return;
                };
                if empty {
                    // Asked again soon, then less often, up to how long the absence
                    // stands: a name that is created late is seen within seconds.
                    (changed, Err(ttl))
                } else {
                    retry.reset();
                    (changed, Ok(ttl))
                }
            }
            // Part of the answer failed: the last answer's addresses stand in for that part
            // (for SRV, the whole last answer stands), or, with none yet, the part that came
            // is taken (a server that never answers AAAA must not keep a name from ever
            // resolving, nor freeze its IPv4 addresses).
            Ok(found) => {
                let error = found.failed.unwrap_or_default();
                tracing::debug!(query = ?config.query, %error, "DNS lookup partly failed");
                problem.set(format!("DNS lookup failed: {error}"));
                let ttl = found.ttl.clamp(config.min_ttl, config.max_ttl);
                let mut known = lock(&known);
                let merged = match (known.is_empty(), found.keep) {
                    (true, _) => Some(found.addrs),
                    (false, Keep::All) => None,
                    (false, keep) => {
                        let mut merged = found.addrs;
                        for (addr, (place, _)) in known.iter() {
                            if keep.covers(addr) {
                                merged.entry(*addr).or_insert(*place);
                            }
                        }
                        Some(merged)
                    }
                };
                let changed = match merged.map(|merged| subset.take(merged, &config.query)) {
                    Some(merged) => match apply(&config, &mut known, merged, &tx, None) {
                        Some(changed) => changed,
                        None => return,
                    },
                    None => false,
                };
                (changed, Err(ttl))
            }
            Err(error) => {
                tracing::debug!(query = ?config.query, %error, "DNS lookup failed; keeping the last answer");
                problem.set(format!("DNS lookup failed: {error}"));
                (false, Err(config.max_ttl))
            }
        };
        early_gap.looked(std::mem::take(&mut early_now), changed);
        let wait = match next {
            Ok(ttl) => ttl,
            // Not whole: back off (from `min_ttl` again after a change), at most `cap`.
            Err(cap) => {
                if changed {
                    retry.reset();
                }
                let wait = retry.current().min(cap).max(config.min_ttl);
                retry.fail();
                wait
            }
        };
        // Until the TTL runs out, or earlier when a connection failed: not before `min_ttl`,
        // and, while early lookups find nothing new, ever later, up to grpc-go's 30 s.
        let early = async {
            hint.notified().await;
            let gap = early_gap.poked(Instant::now());
            tokio::time::sleep_until(sockrpc_transport::deadline_after(looked, gap)).await;
        };
        tokio::select! {
            () = tokio::time::sleep_until(sockrpc_transport::deadline_after(looked, wait)) => {}
            () = early => early_now = true,
            () = tx.closed() => return,
        }
    }
}
