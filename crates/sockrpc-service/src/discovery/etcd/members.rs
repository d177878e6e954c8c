//! The endpoint set an etcd prefix describes, kept per etcd key.
//!
//! Why per key: several keys can name one address (two registrations of a server, or a
//! value rewritten from one address to another), and a watch reports keys, not addresses. The
//! set of addresses is what the balanced channel sees; it changes only when the first key
//! naming an address appears or the last one goes. So a key whose value changes moves its
//! address (no phantom left behind), and deleting one of two keys naming an address keeps it.
//!
//! A value is `IP:PORT`, or the JSON etcd's own naming package writes (`go.etcd.io/etcd/
//! client/v3/naming/endpoints`, which grpc-go's etcd resolver reads): `{"Op":0,"Addr":
//! "IP:PORT","Metadata":null}`. Anything else is logged once per key and value, and the key
//! counts as absent.
//!
//! Why a cap: every endpoint of a balanced channel is a pool that connects, so 3,000 keys
//! under a prefix opened 3,000 connections on every client (a probe: 3,000 descriptors, and
//! under `ulimit -n 1024` a process that could no longer open a file). As DNS discovery does
//! (`dns/subset.rs`), at most [`DEFAULT_MAX_ENDPOINTS`] addresses are used: those with the
//! lowest hash under a seed of this client's own, so the subset stays put while the keys do
//! and clients together cover every address.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::net::SocketAddr;

/// The most addresses one discovery gives its channel ([`super::discover_at_most`]).
pub const DEFAULT_MAX_ENDPOINTS: usize = 100;

/// What the channel must be told after a batch of puts and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Diff {
    /// The first key naming this address appeared.
    Add(SocketAddr),
    /// The last key naming this address went.
    Remove(SocketAddr),
}

/// The keys under a prefix and the addresses they name.
#[derive(Debug)]
pub(super) struct Members {
    by_key: BTreeMap<Vec<u8>, SocketAddr>,
    /// Keys whose value could not be read, with that value (so each is logged once).
    bad: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The addresses the channel has been told about.
    told: BTreeSet<SocketAddr>,
    /// At most this many addresses go to the channel.
    max: usize,
    seed: foldhash::fast::RandomState,
    /// How many addresses the cap left out last time, so a change is logged once.
    left_out: usize,
}

impl Default for Members {
    fn default() -> Members {
        Members::at_most(DEFAULT_MAX_ENDPOINTS)
    }
}

impl Members {
    /// A set that gives its channel at most `max` addresses (at least 1).
    pub(super) fn at_most(max: usize) -> Members {
        Members {
            by_key: BTreeMap::new(),
            bad: BTreeMap::new(),
            told: BTreeSet::new(),
            max: max.max(1),
            seed: foldhash::fast::RandomState::default(),
            left_out: 0,
        }
    }

    /// A key was written.
    pub(super) fn put(&mut self, key: &[u8], value: &[u8]) {
        match parse(value) {
            Ok(addr) => {
                self.bad.remove(key);
                self.by_key.insert(key.to_vec(), addr);
            }
            Err(why) => {
                self.by_key.remove(key);
                if self.bad.get(key).map(Vec::as_slice) != Some(value) {
                    tracing::warn!(
                        key = %String::from_utf8_lossy(key),
                        value = %String::from_utf8_lossy(&value[..value.len().min(200)]),
                        "etcd discovery ignores this key: {why}"
                    );
                    self.bad.insert(key.to_vec(), value.to_vec());
                }
            }
        }
    }

    /// A key was deleted.
    pub(super) fn delete(&mut self, key: &[u8]) {
        self.by_key.remove(key);
        self.bad.remove(key);
    }

    /// A fresh read of the whole prefix replaces what was known.
    pub(super) fn reset<'a>(&mut self, kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
        let logged = std::mem::take(&mut self.bad);
        self.by_key.clear();
        for (key, value) in kvs {
            // Values already logged stay known, so a re-read does not log them again.
            if let Some(old) = logged.get(key) {
                self.bad.insert(key.to_vec(), old.clone());
            }
            self.put(key, value);
        }
    }

    /// The changes since the last call: addresses now named by some key that the channel has
    /// not been told about, then told addresses no key names any more (adds first, so that a
    /// moved server never leaves the channel an empty set between the two).
    pub(super) fn diff(&mut self) -> Vec<Diff> {
        let now = self.capped(self.by_key.values().copied().collect());
        let mut diffs: Vec<Diff> = now.difference(&self.told).map(|a| Diff::Add(*a)).collect();
        diffs.extend(self.told.difference(&now).map(|a| Diff::Remove(*a)));
        self.told = now;
        diffs
    }
}

impl Members {
    /// `all`, or the `max` of them with the lowest hash under this set's seed.
    fn capped(&mut self, all: BTreeSet<SocketAddr>) -> BTreeSet<SocketAddr> {
        let left_out = all.len().saturating_sub(self.max);
        if left_out != self.left_out {
            self.left_out = left_out;
            if left_out > 0 {
                tracing::warn!(
                    total = all.len(),
                    kept = self.max,
                    "etcd discovery found more addresses than its cap: a subset is used"
                );
            }
        }
        if left_out == 0 {
            return all;
        }
        let mut ranked: Vec<(u64, SocketAddr)> = all
            .into_iter()
            .map(|addr| (self.seed.hash_one(addr), addr))
            .collect();
        ranked.sort_unstable();
        ranked
            .into_iter()
            .take(self.max)
            .map(|(_, addr)| addr)
            .collect()
    }
}

/// A prefix as keys are made under it: with a trailing `/`, so that `/svc/greet` and
/// `/svc/greeter` do not share keys (grpc-go's etcd resolver watches `target + "/"` too).
pub(super) fn key_prefix(prefix: &str) -> String {
    if prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    }
}

/// Whether `key`, read under `prefix` (the prefix as given: etcd matches bytes), is one of
/// its servers: `PREFIX/…`, or `PREFIX` followed by an address, the key earlier registrations
/// wrote for a prefix without a `/` (so clients and servers can be upgraded in any order). Not
/// a key of a longer name: `/svc/greeter/…` is not under `/svc/greet`.
pub(super) fn under(prefix: &str, key: &[u8]) -> bool {
    if prefix.ends_with('/') {
        return true;
    }
    let Some(rest) = key.strip_prefix(prefix.as_bytes()) else {
        return false;
    };
    rest.first() == Some(&b'/')
        || std::str::from_utf8(rest).is_ok_and(|rest| rest.parse::<SocketAddr>().is_ok())
}

/// Reads a value: `IP:PORT` or etcd naming's JSON.
pub(super) fn parse(value: &[u8]) -> Result<SocketAddr, String> {
    let text = std::str::from_utf8(value)
        .map_err(|_| "the value is not UTF-8".to_owned())?
        .trim();
    let addr = if text.starts_with('{') {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("the value is not valid JSON: {e}"))?;
        match json.get("Addr").or_else(|| json.get("addr")) {
            Some(serde_json::Value::String(addr)) => addr.trim().to_owned(),
            _ => return Err("the JSON value has no string \"Addr\"".to_owned()),
        }
    } else {
        text.to_owned()
    };
    addr.parse().map_err(|_| {
        format!("{addr:?} is not IP:PORT (a host name must be resolved before registering)")
    })
}

/// The value [`register`](super::register) writes: etcd naming's JSON, so grpc-go's etcd
/// resolver finds sockrpc servers too.
pub(super) fn encode(addr: SocketAddr) -> String {
    format!("{{\"Op\":0,\"Addr\":\"{addr}\",\"Metadata\":null}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn values_plain_and_json() {
        assert_eq!(parse(b" 127.0.0.1:5 \n"), Ok(a("127.0.0.1:5")));
        assert_eq!(parse(b"[::1]:5"), Ok(a("[::1]:5")));
        assert_eq!(
            parse(br#"{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"w":1}}"#),
            Ok(a("10.0.0.1:80"))
        );
        assert_eq!(parse(encode(a("[::1]:9")).as_bytes()), Ok(a("[::1]:9")));
        assert!(parse(b"localhost:80")
            .expect_err("refused")
            .contains("not IP:PORT"));
        assert!(parse(b"{\"Addr\":5}")
            .expect_err("refused")
            .contains("\"Addr\""));
        assert!(parse(b"{nope").expect_err("refused").contains("JSON"));
        assert!(parse(&[0xff, 0xfe]).expect_err("refused").contains("UTF-8"));
    }

    #[test]
    fn at_most_the_cap_of_addresses_go_to_the_channel_and_they_stay_put() {
        let mut m = Members::at_most(40);
        for port in 1..=300u16 {
            m.put(
                format!("k{port}").as_bytes(),
                format!("127.0.0.1:{port}").as_bytes(),
            );
        }
        let first = m.diff();
        assert_eq!(first.len(), 40);
        assert!(first.iter().all(|d| matches!(d, Diff::Add(_))));
        // Another key for a new address changes nothing unless it ranks in; the set is stable.
        m.put(b"k301", b"127.0.0.1:301");
        assert!(m.diff().len() <= 2);
        assert_eq!(m.told.len(), 40);
        // A kept address that goes is replaced by the next in rank.
        let Some(Diff::Add(gone)) = first.first().copied() else {
            panic!("an add")
        };
        let key = format!("k{}", gone.port());
        m.delete(key.as_bytes());
        let replaced = m.diff();
        assert_eq!(replaced.len(), 2, "{replaced:?}");
        assert!(replaced.contains(&Diff::Remove(gone)));
        // Another client keeps another subset (its own seed), so together they cover more.
        let mut other = Members::at_most(40);
        for port in 1..=300u16 {
            other.put(
                format!("k{port}").as_bytes(),
                format!("127.0.0.1:{port}").as_bytes(),
            );
        }
        other.diff();
        assert_ne!(other.told, m.told);
        assert_eq!(Members::default().max, DEFAULT_MAX_ENDPOINTS);
    }

    #[test]
    fn prefixes_end_with_a_slash_and_a_longer_name_is_not_under_them() {
        assert_eq!(key_prefix("/svc/greet"), "/svc/greet/");
        assert_eq!(key_prefix("/svc/greet/"), "/svc/greet/");
        assert!(under("/svc/greet", b"/svc/greet/10.0.0.1:80"));
        // Written by an earlier registration: the address right after the prefix.
        assert!(under("/svc/greet", b"/svc/greet10.0.0.1:80"));
        assert!(under("/svc/greet", b"/svc/greet[::1]:80"));
        assert!(!under("/svc/greet", b"/svc/greeter/10.0.0.1:80"));
        assert!(!under("/svc/greet", b"/svc/greeter10.0.0.1:80"));
        assert!(under("/svc/greet/", b"/svc/greet/anything"));
    }

    #[test]
    fn a_changed_value_moves_its_address() {
        let mut m = Members::default();
        m.put(b"k", b"127.0.0.1:1");
        assert_eq!(m.diff(), [Diff::Add(a("127.0.0.1:1"))]);
        m.put(b"k", b"127.0.0.1:2");
        assert_eq!(
            m.diff(),
            [Diff::Add(a("127.0.0.1:2")), Diff::Remove(a("127.0.0.1:1"))]
        );
        m.put(b"k", b"127.0.0.1:2");
        assert_eq!(m.diff(), []);
    }

    #[test]
    fn an_address_stays_while_any_key_names_it() {
        let mut m = Members::default();
        m.put(b"k1", b"127.0.0.1:1");
        m.put(b"k2", b"127.0.0.1:1");
        assert_eq!(m.diff(), [Diff::Add(a("127.0.0.1:1"))]);
        m.delete(b"k1");
        assert_eq!(m.diff(), []);
        m.delete(b"k2");
        assert_eq!(m.diff(), [Diff::Remove(a("127.0.0.1:1"))]);
    }

    #[test]
    fn a_malformed_value_makes_its_key_absent() {
        let mut m = Members::default();
        m.put(b"k", b"127.0.0.1:1");
        m.put(b"j", b"127.0.0.1:3");
        assert_eq!(m.diff().len(), 2);
        m.put(b"k", b"garbage");
        assert_eq!(m.diff(), [Diff::Remove(a("127.0.0.1:1"))]);
        assert!(m.bad.contains_key(b"k".as_slice()));
        // A re-read without `k` forgets it; `j` is unchanged.
        m.reset([(b"j".as_slice(), b"127.0.0.1:3".as_slice())]);
        assert_eq!(m.diff(), []);
        assert!(m.bad.is_empty());
    }

    #[test]
    fn a_reread_removes_what_went_and_adds_what_came() {
        let mut m = Members::default();
        m.put(b"k1", b"127.0.0.1:1");
        m.put(b"k2", b"127.0.0.1:2");
        m.diff();
        m.reset([
            (b"k2".as_slice(), b"127.0.0.1:2".as_slice()),
            (b"k3".as_slice(), b"127.0.0.1:3".as_slice()),
        ]);
        assert_eq!(
            m.diff(),
            [Diff::Add(a("127.0.0.1:3")), Diff::Remove(a("127.0.0.1:1"))]
        );
    }
}
