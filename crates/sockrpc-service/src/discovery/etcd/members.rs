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

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// What the channel must be told after a batch of puts and deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Diff {
    /// The first key naming this address appeared.
    Add(SocketAddr),
    /// The last key naming this address went.
    Remove(SocketAddr),
}

/// The keys under a prefix and the addresses they name.
#[derive(Debug, Default)]
pub(super) struct Members {
    by_key: BTreeMap<Vec<u8>, SocketAddr>,
    /// Keys whose value could not be read, with that value (so each is logged once).
    bad: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The addresses the channel has been told about.
    told: BTreeSet<SocketAddr>,
}

impl Members {
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
        let now: BTreeSet<SocketAddr> = self.by_key.values().copied().collect();
        let mut diffs: Vec<Diff> = now.difference(&self.told).map(|a| Diff::Add(*a)).collect();
        diffs.extend(self.told.difference(&now).map(|a| Diff::Remove(*a)));
        self.told = now;
        diffs
    }
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
