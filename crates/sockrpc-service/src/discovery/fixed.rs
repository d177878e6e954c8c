//! Static discovery: a fixed list of endpoints, inserted once.

use super::{futures_util_free::poll_fn_stream, Change, Discovery};
use sockrpc_protocol::Status;
use sockrpc_transport::endpoint::{Endpoint, IntoEndpoint};
use std::net::SocketAddr;
use std::task::Poll;

/// Discovery of a fixed list, each endpoint keyed by [`endpoint_key`](super::endpoint_key).
pub fn fixed<I, E>(endpoints: I) -> Result<Discovery, Status>
where
    I: IntoIterator<Item = E>,
    E: IntoEndpoint,
{
    let mut changes = Vec::new();
    for e in endpoints {
        let endpoint = e.into_endpoint()?;
        changes.push(Change::insert(super::endpoint_key(&endpoint), endpoint));
    }
    Ok(Discovery::new(fixed_stream(changes)))
}

/// Discovery of a fixed list of endpoints already made, each keyed by
/// [`endpoint_key`](super::endpoint_key): no address to parse, so nothing can fail (tonic's
/// `Channel::balance_list`).
pub(crate) fn of_endpoints(endpoints: impl IntoIterator<Item = Endpoint>) -> Discovery {
    let changes = endpoints
        .into_iter()
        .map(|endpoint| Change::insert(super::endpoint_key(&endpoint), endpoint))
        .collect();
    Discovery::new(fixed_stream(changes))
}

/// Discovery of fixed socket addresses, each keyed `IP:PORT`, each endpoint made by `template`
/// (to set TLS, pool size, timeouts) from the address.
pub fn from_addrs(
    addrs: impl IntoIterator<Item = SocketAddr>,
    template: impl Fn(SocketAddr) -> Endpoint,
) -> Discovery {
    let changes = addrs
        .into_iter()
        .map(|addr| Change::insert(addr.to_string(), template(addr)))
        .collect();
    Discovery::new(fixed_stream(changes))
}

/// The inserts of a fixed set, in order. The set never changes again: the stream then stays
/// open (pending) rather than end; an empty set ends at once, so a balanced channel knows no
/// endpoint is coming and fails fail-fast calls instead of waiting for one.
fn fixed_stream(changes: Vec<Change>) -> impl futures_core::Stream<Item = Change> + Send {
    let empty = changes.is_empty();
    let mut changes = changes.into_iter();
    poll_fn_stream(move |_cx| match changes.next() {
        Some(change) => Poll::Ready(Some(change)),
        None if empty => Poll::Ready(None),
        None => Poll::Pending,
    })
}
