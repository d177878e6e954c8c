//! One DNS lookup: what [`DnsDiscovery`](super::DnsDiscovery) asks each time a TTL runs out.
//!
//! A name's addresses are its A and its AAAA records, asked at once. Each answer is taken
//! whole or not at all: a record type the name has none of (NXDOMAIN, or NOERROR with no
//! answer) adds no address, but any other failure (SERVFAIL, REFUSED, a timeout) fails the
//! whole lookup, and the discovery keeps its last answer. Half an answer would be worse than
//! an old one: a name with both A and AAAA records would drop every IPv4 address because one
//! query timed out. (hickory's own `Ipv4AndIpv6` strategy takes whichever half came back, and
//! its default, `Ipv4thenIpv6`, never asks AAAA when A has records.)
//!
//! SRV: the targets of the best (lowest) priority that resolve, each address weighted by the
//! sum of the weights of the records naming it. A target with no addresses is passed over
//! (the next priority is used when none of the best has any); a target whose lookup fails
//! fails the whole lookup, as above.

use super::Query;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, Record};
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One lookup's answer: the weight of each address, and the shortest TTL of the records.
pub(super) type Answer = (BTreeMap<SocketAddr, u32>, Duration);

/// `name` as an IP address, when it is one (`127.0.0.1`, `::1`, `[::1]`): used as it is,
/// without a query, as grpc-go's DNS resolver does.
pub(super) fn literal(name: &str) -> Option<IpAddr> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse().ok()
}

/// Looks `query` up, bypassing the resolver's cache (the TTLs are ours to follow).
pub(super) async fn lookup(resolver: &TokioResolver, query: &Query) -> Result<Answer, String> {
    resolver.clear_cache();
    match query {
        Query::Ip { name, port } => {
            let (ips, ttl) = addresses(resolver, name).await?;
            if ips.is_empty() {
                return Err(format!("{name} has no A or AAAA records"));
            }
            let found = ips
                .into_iter()
                .map(|ip| (SocketAddr::new(ip, *port), 1))
                .collect();
            Ok((found, seconds(ttl)))
        }
        Query::Srv { name } => srv(resolver, name).await,
    }
}

fn seconds(ttl: Option<u32>) -> Duration {
    // An IP literal has no TTL: the longest wait (clamped to `max_ttl` by the caller).
    Duration::from_secs(u64::from(ttl.unwrap_or(u32::MAX)))
}

async fn srv(resolver: &TokioResolver, name: &str) -> Result<Answer, String> {
    let found = resolver
        .srv_lookup(name)
        .await
        .map_err(|e| format!("SRV {name}: {}", describe(&e)))?;
    let mut ttl = shortest(found.as_lookup().records());
    let mut by_priority: BTreeMap<u16, BTreeMap<SocketAddr, u32>> = BTreeMap::new();
    for record in found.iter() {
        let target = record.target().to_utf8();
        if target == "." {
            // RFC 2782: "the service is decidedly not available at this domain".
            continue;
        }
        let (ips, target_ttl) = addresses(resolver, &target).await?;
        ttl = sooner(ttl, target_ttl);
        let weight = u32::from(record.weight()).max(1);
        let tier = by_priority.entry(record.priority()).or_default();
        for ip in ips {
            let total = tier.entry(SocketAddr::new(ip, record.port())).or_insert(0);
            *total = total.saturating_add(weight);
        }
    }
    let best = by_priority
        .into_values()
        .find(|tier| !tier.is_empty())
        .unwrap_or_default();
    Ok((best, seconds(ttl)))
}

/// `name`'s A and AAAA addresses, and the shortest TTL of the records that gave them.
async fn addresses(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<IpAddr>, Option<u32>), String> {
    if let Some(ip) = literal(name) {
        return Ok((vec![ip], None));
    }
    let (v4, v6) = tokio::join!(resolver.ipv4_lookup(name), resolver.ipv6_lookup(name));
    let mut ips = Vec::new();
    let mut ttl: Option<u32> = None;
    for (kind, found) in [
        ("A", v4.map(|l| l.as_lookup().clone())),
        ("AAAA", v6.map(|l| l.as_lookup().clone())),
    ] {
        let records = match found {
            Ok(lookup) => lookup,
            Err(error) if absent(&error) => continue,
            Err(error) => return Err(format!("{kind} {name}: {}", describe(&error))),
        };
        let records = records.records();
        ttl = sooner(ttl, shortest(records));
        // The records include the CNAMEs the answer went through: only addresses count.
        ips.extend(records.iter().filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        }));
    }
    Ok((ips, ttl))
}

/// Whether `error` says the name has no records of the type asked (NXDOMAIN, or NOERROR with
/// no answer): an answer. hickory reports SERVFAIL and REFUSED as "no records" too, with their
/// response code: those are failures.
fn absent(error: &ResolveError) -> bool {
    matches!(
        error.proto().map(|p| p.kind()),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NoError | ResponseCode::NXDomain,
            ..
        })
    )
}

/// What went wrong, in words: hickory says "no records found" for SERVFAIL and REFUSED too,
/// where the answer's code is the news.
fn describe(error: &ResolveError) -> String {
    match error.proto().map(|p| p.kind()) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. })
            if !matches!(
                response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) =>
        {
            format!(
                "the DNS server answered {response_code} ({})",
                u16::from(*response_code)
            )
        }
        _ => error.to_string(),
    }
}

/// The shorter of two TTLs, either of which may be unknown.
fn sooner(a: Option<u32>, b: Option<u32>) -> Option<u32> {
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
}
