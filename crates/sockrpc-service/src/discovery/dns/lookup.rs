//! One DNS lookup: what [`DnsDiscovery`](super::DnsDiscovery) asks each time a TTL runs out.
//!
//! A name's addresses come from the hosts file when it lists the name (as glibc's `files`
//! before `dns`), else from its A and AAAA records, asked at once, of the first name of its
//! search list that has any (`search.rs`). A record type the name has
//! none of (NXDOMAIN, or NOERROR with no answer) adds no address, and a name with no address
//! at all is an answer too, an empty one (grpc-go's resolver treats "not found" the same way):
//! a name deleted from DNS takes its endpoints with it. Any other failure (SERVFAIL,
//! REFUSED, a timeout) makes the answer partial ([`Keep`]): the discovery then takes the half
//! that answered and keeps the last answer's addresses of the failed half, so that a name with
//! both A and AAAA records does not drop every IPv4 address because one query timed out, nor
//! freeze its IPv4 addresses while AAAA always fails. hickory's own `Ipv4AndIpv6` strategy takes whichever half came back, and its
//! default, `Ipv4thenIpv6`, never asks AAAA when A has records: hence two queries of ours.
//!
//! SRV: the targets of every priority, each address weighted by the sum of the weights of the
//! records naming it at its best priority; the balanced channel sends calls to the best
//! priority that has a usable server, and to a worse one only while none of the better has
//! (RFC 2782). A target with no addresses is passed over; a target whose lookup fails makes the
//! answer partial, unless its priority is worse than the best that resolved. An SRV name that
//! does not exist, or whose targets are all "." or have no address, is an empty answer.
//!
//! An empty answer says why it is empty ([`Found::none`]); its [`Found::ttl`] is its negative
//! TTL (the SOA's, RFC 2308), or [`ABSENT_TTL`] when the server gave none: the longest the
//! discovery waits before asking again (it backs off up to it, from `min_ttl`).

use super::connected::DnsResolver;
use super::Query;
use hickory_resolver::proto::op::{Query as DnsQuery, ResponseCode};
use hickory_resolver::proto::rr::{Record, RecordType};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{Hosts, Name, ResolveError};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One lookup's answer.
#[derive(Debug)]
pub(super) struct Found {
    /// Each address's place: its weight and priority.
    pub(super) addrs: BTreeMap<SocketAddr, Place>,
    /// The shortest TTL of the records; for an empty answer, how long its absence stands.
    pub(super) ttl: Duration,
    /// What failed, when the answer is partial.
    pub(super) failed: Option<String>,
    /// For a partial answer, which addresses of the last answer stand in for the part that
    /// failed.
    pub(super) keep: Keep,
    /// Why no address came back, when none did and nothing failed: the name does not exist,
    /// has no address records, or its SRV records name no usable target.
    pub(super) none: Option<String>,
}

/// Which addresses of the last answer a partial answer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// All of them: the answer is taken whole or not at all (SRV, whose failed targets'
    /// addresses are not known apart; grpc-go too keeps its last state then).
    All,
    /// Those of the family whose query failed (A: IPv4, AAAA: IPv6); the other family's come
    /// from the answer, so that an AAAA query that always fails does not freeze the IPv4
    /// addresses (Go's resolver, and so grpc-go, takes the A records then).
    Family {
        /// The A query failed.
        v4: bool,
        /// The AAAA query failed.
        v6: bool,
    },
}

impl Keep {
    /// Whether `addr`, of the last answer, stands in for a part that failed.
    pub(super) fn covers(self, addr: &SocketAddr) -> bool {
        match self {
            Keep::All => true,
            Keep::Family { v4, v6 } => {
                if addr.is_ipv4() {
                    v4
                } else {
                    v6
                }
            }
        }
    }
}

/// How long an empty answer stands when the server gave no negative TTL (no SOA): the cap of
/// the discovery's backoff while a name stays gone, so that a name that reappears is seen
/// within it without asking every `min_ttl` for a name that is gone for good.
pub(super) const ABSENT_TTL: Duration = Duration::from_secs(30);

/// Where an address stands among the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    /// Its weight (≥ 1): an SRV record's, summed over the records naming it; 1 otherwise.
    pub(super) weight: u32,
    /// Its SRV priority (lower is preferred); 0 for A and AAAA.
    pub(super) priority: u32,
}

/// `name` as an IP address, when it is one (`127.0.0.1`, `::1`, `[::1]`): used as it is,
/// without a query, as grpc-go's DNS resolver does.
pub(super) fn literal(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// Looks `query` up, bypassing the resolver's cache (the TTLs are ours to follow). `Err`:
/// nothing usable came back.
pub(super) async fn lookup(
    resolver: &DnsResolver,
    hosts: &Hosts,
    query: &Query,
) -> Result<Found, String> {
    resolver.clear_cache();
    match query {
        Query::Ip { name, port } => {
            let found = addresses(resolver, hosts, name).await?;
            if found.ips.is_empty() && found.failed.is_none() {
                return Ok(Found::empty(
                    found.negative_ttl,
                    if found.nonexistent {
                        format!("{name} does not exist (NXDOMAIN)")
                    } else {
                        format!("{name} has no A or AAAA records")
                    },
                ));
            }
            let addrs = found
                .ips
                .into_iter()
                .map(|ip| {
                    let place = Place {
                        weight: 1,
                        priority: 0,
                    };
                    (SocketAddr::new(ip, *port), place)
                })
                .collect();
            Ok(Found {
                addrs,
                ttl: seconds(found.ttl),
                failed: found.failed,
                keep: Keep::Family {
                    v4: found.failed_v4,
                    v6: found.failed_v6,
                },
                none: None,
            })
        }
        Query::Srv { name } => srv(resolver, hosts, name).await,
    }
}

impl Found {
    /// An answer with no address: `why`, standing for the negative TTL `ttl` (seconds), or
    /// [`ABSENT_TTL`] without one.
    fn empty(ttl: Option<u32>, why: String) -> Found {
        Found {
            addrs: BTreeMap::new(),
            ttl: ttl.map_or(ABSENT_TTL, |ttl| seconds(Some(ttl))),
            failed: None,
            keep: Keep::All,
            none: Some(why),
        }
    }
}

fn seconds(ttl: Option<u32>) -> Duration {
    // An IP literal or a hosts-file name has no TTL: the longest wait (clamped to `max_ttl`).
    Duration::from_secs(u64::from(ttl.unwrap_or(u32::MAX)))
}

async fn srv(resolver: &DnsResolver, hosts: &Hosts, name: &str) -> Result<Found, String> {
    let found = match resolver.srv_lookup(name).await {
        Ok(found) => found,
        Err(error) => {
            return match absent(&error) {
                Some(absent) => Ok(Found::empty(
                    absent.ttl,
                    if absent.nonexistent {
                        format!("SRV {name} does not exist (NXDOMAIN)")
                    } else {
                        format!("{name} has no SRV records")
                    },
                )),
                None => Err(format!("SRV {name}: {}", describe(&error, name))),
            };
        }
    };
    let mut ttl = shortest(found.as_lookup().records());
    // The records, the best priority first, and the distinct names they give, looked up
    // together (`targets.rs`), at most `MAX_TARGETS` of them.
    let mut records: Vec<_> = found.iter().collect();
    records.sort_by_key(|record| record.priority());
    let mut names: Vec<String> = Vec::new();
    let mut passed_over = 0usize;
    for record in &records {
        let target = record.target().to_utf8();
        if target == "." || names.contains(&target) {
            continue;
        }
        if names.len() < super::targets::MAX_TARGETS {
            names.push(target);
        } else {
            passed_over += 1;
        }
    }
    if passed_over > 0 {
        tracing::warn!(
            %name,
            passed_over,
            "DNS: SRV records past the first {} distinct targets are passed over",
            super::targets::MAX_TARGETS
        );
    }
    let deadline = sockrpc_transport::deadline_after(
        tokio::time::Instant::now(),
        super::targets::budget(resolver),
    );
    let answers = super::targets::resolve(resolver, hosts, names, deadline).await;
    let mut by_priority: BTreeMap<u16, BTreeMap<SocketAddr, u32>> = BTreeMap::new();
    let mut failures: Vec<(u16, String)> = Vec::new();
    // The targets passed over: "." and names without an address.
    let mut unusable: Vec<String> = Vec::new();
    for record in records {
        let target = record.target().to_utf8();
        if target == "." {
            // RFC 2782: "the service is decidedly not available at this domain".
            unusable.push(target);
            continue;
        }
        let priority = record.priority();
        let addresses = match answers.get(&target) {
            // Past `MAX_TARGETS`.
            None => continue,
            Some(Ok(addresses)) => addresses,
            Some(Err(error)) => {
                failures.push((priority, error.clone()));
                continue;
            }
        };
        ttl = sooner(ttl, addresses.ttl);
        match &addresses.failed {
            Some(error) if addresses.ips.is_empty() => failures.push((priority, error.clone())),
            // One family answered: the target resolved (Go's `LookupHost`, which grpc-go asks
            // of each target, takes the A records when AAAA fails), so the SRV answer stays
            // whole and follows its changes.
            Some(error) => {
                tracing::debug!(%target, %error, "DNS: one family of an SRV target failed");
            }
            None if addresses.ips.is_empty() => unusable.push(target.clone()),
            None => {}
        }
        let weight = u32::from(record.weight()).max(1);
        let tier = by_priority.entry(priority).or_default();
        for ip in &addresses.ips {
            let total = tier.entry(SocketAddr::new(*ip, record.port())).or_insert(0);
            *total = total.saturating_add(weight);
        }
    }
    let used = by_priority
        .iter()
        .find(|(_, tier)| !tier.is_empty())
        .map(|(priority, _)| *priority);
    // A failure among targets of a worse priority than the best one that resolved changes
    // nothing (that priority takes calls only while the best cannot).
    let failed = failures
        .into_iter()
        .find(|(priority, _)| used.is_none_or(|used| *priority <= used))
        .map(|(_, error)| error);
    // Every priority's addresses; an address named at several keeps its best.
    let mut addrs = BTreeMap::new();
    for (priority, tier) in by_priority {
        for (addr, weight) in tier {
            addrs.entry(addr).or_insert(Place {
                weight,
                priority: u32::from(priority),
            });
        }
    }
    match (used, failed) {
        (None, Some(error)) => Err(error),
        (None, None) => {
            unusable.sort();
            unusable.dedup();
            let why = if !unusable.is_empty() && unusable.iter().all(|t| t == ".") {
                format!("{name}: the service is not available at this domain (SRV target \".\")")
            } else {
                format!(
                    "none of the SRV targets of {name} has an address ({})",
                    unusable.join(", ")
                )
            };
            Ok(Found::empty(ttl, why))
        }
        (_, failed) => Ok(Found {
            addrs,
            ttl: seconds(ttl),
            failed,
            keep: Keep::All,
            none: None,
        }),
    }
}

/// A name's addresses.
#[derive(Debug)]
pub(super) struct Addresses {
    pub(super) ips: Vec<IpAddr>,
    /// The shortest TTL of the records that gave them (`None`: no record).
    pub(super) ttl: Option<u32>,
    /// The half (A or AAAA) that failed, when one did.
    pub(super) failed: Option<String>,
    /// The server said the name does not exist (NXDOMAIN).
    pub(super) nonexistent: bool,
    /// How long "no such records" stands, from the SOA the answers carried (used only when
    /// there is no address at all: it must not shorten the wait on a name that has some).
    pub(super) negative_ttl: Option<u32>,
    /// The A query failed.
    pub(super) failed_v4: bool,
    /// The AAAA query failed.
    pub(super) failed_v6: bool,
}

/// `name`'s addresses: from the hosts file when it lists the name, else the A and AAAA
/// records of the first of its search list's candidates that has any ([`super::search`]).
pub(super) async fn addresses(
    resolver: &DnsResolver,
    hosts: &Hosts,
    name: &str,
) -> Result<Addresses, String> {
    if let Some(ip) = literal(name) {
        return Ok(Addresses {
            ips: vec![ip],
            ttl: None,
            failed: None,
            nonexistent: false,
            negative_ttl: None,
            failed_v4: false,
            failed_v6: false,
        });
    }
    if let Some(ips) = from_hosts(hosts, name) {
        return Ok(Addresses {
            ips,
            ttl: None,
            failed: None,
            nonexistent: false,
            negative_ttl: None,
            failed_v4: false,
            failed_v6: false,
        });
    }
    let name = Name::from_utf8(name).map_err(|e| format!("{name}: {e}"))?;
    let candidates = super::search::candidates(resolver, &name);
    super::search::walk(candidates, |candidate| async move {
        records(resolver, &candidate).await
    })
    .await
}

/// The A and AAAA records of `name` (fully qualified), asked at once. `Err` when both halves
/// failed; one half failed makes the answer partial (`failed`), unless the other said the name
/// does not exist.
async fn records(resolver: &DnsResolver, name: &Name) -> Result<Addresses, String> {
    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.clone()),
        resolver.ipv6_lookup(name.clone())
    );
    let mut found = Addresses {
        ips: Vec::new(),
        ttl: None,
        failed: None,
        nonexistent: false,
        negative_ttl: None,
        failed_v4: false,
        failed_v6: false,
    };
    for (kind, answer) in [
        ("A", v4.map(|l| l.as_lookup().clone())),
        ("AAAA", v6.map(|l| l.as_lookup().clone())),
    ] {
        let records = match answer {
            Ok(lookup) => lookup,
            Err(error) => {
                if let Some(absent) = absent(&error) {
                    found.negative_ttl = sooner(found.negative_ttl, absent.ttl);
                    found.nonexistent |= absent.nonexistent;
                    continue;
                }
                let error = format!("{kind} {name}: {}", describe(&error, &name.to_string()));
                if kind == "A" {
                    found.failed_v4 = true;
                } else {
                    found.failed_v6 = true;
                }
                found.failed = Some(match found.failed.take() {
                    Some(first) => format!("{first}; {error}"),
                    None => error,
                });
                continue;
            }
        };
        let records = records.records();
        found.ttl = sooner(found.ttl, shortest(records));
        // The records include the CNAMEs the answer went through: only addresses count.
        found
            .ips
            .extend(records.iter().filter_map(|r| r.data().ip_addr()));
    }
    match found.failed.take() {
        // NXDOMAIN for one family: the name does not exist, whatever the other's query met.
        Some(_) if found.nonexistent && found.ips.is_empty() => {
            found.failed_v4 = false;
            found.failed_v6 = false;
            Ok(found)
        }
        // Neither family answered.
        Some(error) if found.failed_v4 && found.failed_v6 => Err(error),
        // One answered (perhaps with no records): a partial answer.
        failed => {
            found.failed = failed;
            Ok(found)
        }
    }
}

/// The name's addresses in the hosts file (`/etc/hosts`), if it lists any.
fn from_hosts(hosts: &Hosts, name: &str) -> Option<Vec<IpAddr>> {
    let name = Name::from_utf8(name).ok()?;
    let ips: Vec<IpAddr> = [RecordType::A, RecordType::AAAA]
        .into_iter()
        .filter_map(|kind| hosts.lookup_static_host(&DnsQuery::query(name.clone(), kind)))
        .flat_map(|lookup| {
            lookup
                .iter()
                .filter_map(|r| r.ip_addr())
                .collect::<Vec<_>>()
        })
        .collect();
    (!ips.is_empty()).then_some(ips)
}

/// An answer saying there is nothing of the type asked.
struct Absent {
    /// NXDOMAIN: the name does not exist (else it exists, with no records of that type).
    nonexistent: bool,
    /// How long that stands, from the SOA the answer carried (RFC 2308).
    ttl: Option<u32>,
}

/// Whether `error` says the name has no records of the type asked (NXDOMAIN, or NOERROR with
/// no answer): an answer. hickory reports SERVFAIL and REFUSED as "no records" too, with their
/// response code: those are failures.
fn absent(error: &ResolveError) -> Option<Absent> {
    match error.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: code @ (ResponseCode::NoError | ResponseCode::NXDomain),
            negative_ttl,
            ..
        }) => Some(Absent {
            nonexistent: *code == ResponseCode::NXDomain,
            ttl: *negative_ttl,
        }),
        _ => None,
    }
}

/// What went wrong with the lookup of `asked`, in words: hickory says "no records found" for
/// SERVFAIL and REFUSED too, where the answer's code is the news. A code met further along a
/// CNAME chain (an authoritative server answers a CNAME to a name outside its zones, and
/// REFUSED when asked for that name) names the name it was for.
fn describe(error: &ResolveError, asked: &str) -> String {
    match error.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound {
            response_code,
            query,
            ..
        }) if !matches!(
            response_code,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) =>
        {
            let code = u16::from(*response_code);
            let answered = query.name().to_string();
            if answered
                .trim_end_matches('.')
                .eq_ignore_ascii_case(asked.trim_end_matches('.'))
            {
                format!("the DNS server answered {response_code} ({code})")
            } else {
                format!(
                    "the DNS server answered {response_code} ({code}) for {answered}, where a \
                     CNAME led"
                )
            }
        }
        // hickory drops an answer it cannot use (garbage, another query's id or question, a
        // compression loop) and waits on: what runs out is the wait, which it calls a timeout.
        Some(ProtoErrorKind::Timeout) => {
            "no usable answer in time (the DNS server sent none, or only answers that did not \
             parse or did not match the query)"
                .to_owned()
        }
        // ICMP "port unreachable", as a connected UDP socket reports it (`connected.rs`).
        Some(ProtoErrorKind::Io(io)) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "the DNS server refused the connection (nothing listens on its port)".to_owned()
        }
        _ => error.to_string(),
    }
}

/// The shorter of two TTLs, either of which may be unknown.
pub(super) fn sooner(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn shortest(records: &[Record]) -> Option<u32> {
    records.iter().map(Record::ttl).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_are_taken_as_they_are() {
        assert_eq!(literal("127.0.0.2"), Some(IpAddr::from([127, 0, 0, 2])));
        assert_eq!(literal("[::1]"), "::1".parse().ok());
        assert_eq!(literal("::1"), "::1".parse().ok());
        assert_eq!(literal("svc.test"), None);
        assert_eq!(literal("[svc.test]"), None);
    }

    #[test]
    fn the_hosts_file_answers_first() {
        let mut hosts = Hosts::default();
        hosts
            .read_hosts_conf("10.0.0.5 db db.corp.example\n::1 six\n".as_bytes())
            .expect("hosts");
        assert_eq!(
            from_hosts(&hosts, "db"),
            Some(vec![IpAddr::from([10, 0, 0, 5])])
        );
        assert_eq!(
            from_hosts(&hosts, "db.corp.example."),
            Some(vec![IpAddr::from([10, 0, 0, 5])])
        );
        assert_eq!(
            from_hosts(&hosts, "six"),
            Some(vec!["::1".parse().expect("v6")])
        );
        assert_eq!(from_hosts(&hosts, "elsewhere"), None);
    }
}
