//! The search list, walked once for both address families.
//!
//! A name that is not fully qualified (`svc`, `svc.ns`) is tried under each search domain of
//! the resolver's configuration (`search` in `/etc/resolv.conf`), before or after the name as
//! it is, as `ndots` orders them. hickory walks that list for each query on its own, so its A
//! and AAAA lookups could stop at different candidates: `svc.a.test`'s IPv4 addresses mixed
//! with `svc.b.test`'s IPv6 ones. Here the candidates are walked once, as Go's resolver walks
//! them: both families of one candidate are asked together, and the first candidate with any
//! address is the answer. A candidate that fails (SERVFAIL, a timeout) does not stop the walk
//! (Go's default; glibc stops at a timeout), but when no later one has an address the failure
//! is the answer, not an absence (the name may well exist there): the discovery keeps what it
//! had.

use super::connected::DnsResolver;
use super::lookup::Addresses;
use hickory_resolver::Name;
use std::future::Future;

/// The fully qualified names to try for `name`, in order: `name` itself when it ends with a
/// dot; else the name as it is first when it has at least `ndots` dots (or is `localhost`),
/// last otherwise, and between, the name under each search domain, or, with no search list,
/// under the configuration's domain (as glibc and Go: one or the other, never both).
pub(super) fn candidates(resolver: &DnsResolver, name: &Name) -> Vec<Name> {
    let config = resolver.config();
    let domains: Vec<&Name> = if config.search().is_empty() {
        config.domain().into_iter().collect()
    } else {
        config.search().iter().collect()
    };
    candidates_with(name, &domains, resolver.options().ndots)
}

fn candidates_with(name: &Name, domains: &[&Name], ndots: usize) -> Vec<Name> {
    let mut fqdn = name.clone();
    fqdn.set_fqdn(true);
    if name.is_fqdn() {
        return vec![fqdn];
    }
    // Labels, not dots: `a.b` has two labels and one dot.
    let as_is_first = name.num_labels() as usize > ndots || name.is_localhost();
    let mut names = Vec::with_capacity(domains.len() + 1);
    if as_is_first {
        names.push(fqdn.clone());
    }
    for domain in domains {
        if let Ok(mut candidate) = name.clone().append_domain(domain) {
            candidate.set_fqdn(true);
            if !names.contains(&candidate) {
                names.push(candidate);
            }
        }
    }
    if !as_is_first && !names.contains(&fqdn) {
        names.push(fqdn);
    }
    names
}

/// Asks `query` for each candidate in turn: the first answer with an address; else, the first
/// failure; else, an absence (nonexistent only when every candidate was, with the shortest
/// negative TTL).
pub(super) async fn walk<F, Fut>(candidates: Vec<Name>, mut query: F) -> Result<Addresses, String>
where
    F: FnMut(Name) -> Fut,
    Fut: Future<Output = Result<Addresses, String>>,
{
    let mut failure: Option<Result<Addresses, String>> = None;
    let mut absent: Option<Addresses> = None;
    for candidate in candidates {
        match query(candidate).await {
            Ok(found) if !found.ips.is_empty() => return Ok(found),
            Ok(found) if found.failed.is_none() => {
                absent = Some(match absent {
                    None => found,
                    Some(mut so_far) => {
                        so_far.nonexistent &= found.nonexistent;
                        so_far.negative_ttl =
                            super::lookup::sooner(so_far.negative_ttl, found.negative_ttl);
                        so_far
                    }
                });
            }
            failed => {
                failure.get_or_insert(failed);
            }
        }
    }
    match (failure, absent) {
        (Some(failure), _) => failure,
        (None, Some(absent)) => Ok(absent),
        (None, None) => Err("no name to look up".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::IpAddr;
    use std::str::FromStr;

    fn name(text: &str) -> Name {
        Name::from_str(text).expect("a name")
    }

    fn texts(names: &[Name]) -> Vec<String> {
        names.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn candidates_follow_ndots_and_the_search_list() {
        let (a, b) = (name("a.test."), name("b.test."));
        let domains = [&a, &b];
        assert_eq!(
            texts(&candidates_with(&name("svc"), &domains, 1)),
            ["svc.a.test.", "svc.b.test.", "svc."]
        );
        assert_eq!(
            texts(&candidates_with(&name("svc.ns"), &domains, 1)),
            ["svc.ns.", "svc.ns.a.test.", "svc.ns.b.test."]
        );
        assert_eq!(
            texts(&candidates_with(&name("svc.ns"), &domains, 5)),
            ["svc.ns.a.test.", "svc.ns.b.test.", "svc.ns."]
        );
        assert_eq!(
            texts(&candidates_with(&name("svc.ns."), &domains, 5)),
            ["svc.ns."]
        );
        assert_eq!(texts(&candidates_with(&name("svc"), &[], 1)), ["svc."]);
    }

    #[test]
    fn candidates_come_from_the_resolvers_configuration() {
        use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
        let config = ResolverConfig::from_parts(
            Some(name("home.test.")),
            vec![name("a.test."), name("b.test.")],
            NameServerConfigGroup::new(),
        );
        let mut builder =
            DnsResolver::builder_with_config(config, crate::discovery::dns::connected::provider());
        builder.options_mut().ndots = 2;
        let resolver = builder.build();
        assert_eq!(
            texts(&candidates(&resolver, &name("svc.ns"))),
            ["svc.ns.a.test.", "svc.ns.b.test.", "svc.ns."]
        );
        assert_eq!(
            texts(&candidates(&resolver, &name("svc.ns.x"))),
            ["svc.ns.x.", "svc.ns.x.a.test.", "svc.ns.x.b.test."]
        );
        // With no search list, the domain stands in for it.
        let config = ResolverConfig::from_parts(
            Some(name("home.test.")),
            vec![],
            NameServerConfigGroup::new(),
        );
        let resolver =
            DnsResolver::builder_with_config(config, crate::discovery::dns::connected::provider())
                .build();
        assert_eq!(
            texts(&candidates(&resolver, &name("svc"))),
            ["svc.home.test.", "svc."]
        );
    }

    fn answer(ips: &[&str], failed: Option<&str>, nonexistent: bool) -> Addresses {
        Addresses {
            ips: ips
                .iter()
                .map(|ip| IpAddr::from_str(ip).expect("ip"))
                .collect(),
            ttl: None,
            failed: failed.map(str::to_owned),
            nonexistent,
            negative_ttl: Some(if nonexistent { 60 } else { 30 }),
            failed_v4: failed.is_some(),
            failed_v6: false,
        }
    }

    /// Walks `svc.a.`, `svc.b.`, `svc.` with the given answers; what came back and which
    /// candidates were asked.
    fn run(
        answers: Vec<(&str, Result<Addresses, String>)>,
    ) -> (Result<Addresses, String>, Vec<String>) {
        let mut answers: HashMap<String, Result<Addresses, String>> = answers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let mut asked = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let result = runtime.block_on(walk(
            vec![name("svc.a."), name("svc.b."), name("svc.")],
            |candidate| {
                let key = candidate.to_string();
                asked.push(key.clone());
                let answer = answers
                    .remove(&key)
                    .unwrap_or_else(|| Ok(answer(&[], None, true)));
                async move { answer }
            },
        ));
        (result, asked)
    }

    #[test]
    fn the_first_candidate_with_an_address_answers_both_families() {
        // `svc.a.` has only an AAAA record; `svc.b.` has an A record: `svc.a.` answers, alone.
        let (found, asked) = run(vec![
            ("svc.a.", Ok(answer(&["::1"], None, false))),
            ("svc.b.", Ok(answer(&["127.0.0.1"], None, false))),
        ]);
        let found = found.expect("an answer");
        assert_eq!(found.ips, [IpAddr::from_str("::1").expect("ip")]);
        assert_eq!(asked, ["svc.a."]);
        // Absent under the first domain: the second answers.
        let (found, asked) = run(vec![("svc.b.", Ok(answer(&["127.0.0.2"], None, false)))]);
        assert_eq!(found.expect("an answer").ips.len(), 1);
        assert_eq!(asked, ["svc.a.", "svc.b."]);
    }

    #[test]
    fn a_failure_with_no_later_address_is_the_answer() {
        let (found, asked) = run(vec![("svc.a.", Err("A svc.a.: timed out".to_owned()))]);
        assert_eq!(found.err().as_deref(), Some("A svc.a.: timed out"));
        assert_eq!(asked, ["svc.a.", "svc.b.", "svc."]);
        // A partial failure with no address counts as a failure too.
        let (found, _) = run(vec![(
            "svc.b.",
            Ok(answer(&[], Some("AAAA: SERVFAIL"), false)),
        )]);
        assert_eq!(
            found.expect("partial").failed.as_deref(),
            Some("AAAA: SERVFAIL")
        );
        // A later candidate with an address wins over an earlier failure.
        let (found, _) = run(vec![
            ("svc.a.", Err("timed out".to_owned())),
            ("svc.", Ok(answer(&["127.0.0.3"], None, false))),
        ]);
        assert_eq!(found.expect("an answer").ips.len(), 1);
    }

    #[test]
    fn an_absence_everywhere_is_nonexistent_only_if_every_candidate_was() {
        let (found, _) = run(vec![]);
        let found = found.expect("an absence");
        assert!(found.ips.is_empty() && found.nonexistent);
        assert_eq!(found.negative_ttl, Some(60));
        // `svc.b.` exists with no address (NODATA): the name is not said not to exist.
        let (found, _) = run(vec![("svc.b.", Ok(answer(&[], None, false)))]);
        let found = found.expect("an absence");
        assert!(found.ips.is_empty() && !found.nonexistent);
        assert_eq!(found.negative_ttl, Some(30));
    }
}
