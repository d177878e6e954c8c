//! An answer made the channel's endpoint set: the inserts and removals that turn what the
//! channel was told into the answer, sent on the discovery's stream. Apart from the follow loop
//! (`mod.rs`) because it is the one place that decides what the channel hears.

use super::lookup::Place;
use super::{DnsDiscovery, Known};
use crate::discovery::{endpoint_key, Change, Problem};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// Makes the endpoint set `found`: sends the changes from `known`, and records them there.
/// Inserts go before removals, so that an address changing never shows the channel an empty
/// set (a removal of a key inserted again in the same change is dropped: an endpoint function
/// may map two addresses to one key). Whether anything changed; `None` when nobody listens any
/// more.
pub(super) fn apply(
    config: &DnsDiscovery,
    known: &mut Known,
    found: BTreeMap<SocketAddr, Place>,
    tx: &mpsc::UnboundedSender<Change>,
    clears: Option<&Problem>,
) -> Option<bool> {
    let mut changes = Vec::new();
    let mut removals = Vec::new();
    known.retain(|addr, (_, key)| {
        let keep = found.contains_key(addr);
        if !keep {
            removals.push(Change::Remove(key.clone()));
        }
        keep
    });
    for (addr, place) in found {
        if known.get(&addr).is_some_and(|(old, _)| *old == place) {
            continue;
        }
        // New, or its weight or priority changed: an insert of the same endpoint updates those
        // in place.
        let endpoint = (config.endpoint)(addr);
        let key = endpoint_key(&endpoint);
        changes.push(Change::Insert {
            key: key.clone(),
            endpoint: Box::new(endpoint),
            weight: place.weight,
            priority: place.priority,
        });
        known.insert(addr, (place, key));
    }
    removals.retain(|removal| {
        !changes
            .iter()
            .any(|insert| matches!((removal, insert), (Change::Remove(gone), Change::Insert { key, .. }) if gone == key))
    });
    let changed = !changes.is_empty() || !removals.is_empty();
    if let Some(problem) = clears {
        problem.clear_after(changes.len() + removals.len());
    }
    changes
        .into_iter()
        .chain(removals)
        .all(|change| tx.send(change).is_ok())
        .then_some(changed)
}
