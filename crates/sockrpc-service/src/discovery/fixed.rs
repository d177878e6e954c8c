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
    let mut changes = changes.into_iter();
    Ok(Discovery::new(poll_fn_stream(move |_cx| {
        match changes.next() {
            Some(change) => Poll::Ready(Some(change)),
            // The set never changes again: the stream stays open (pending) rather than end.
            None => Poll::Pending,
        }
    })))
}

/// Discovery of fixed socket addresses, each keyed `IP:PORT`, each endpoint made by `template`
/// (to set TLS, pool size, timeouts) from the address.
pub fn from_addrs(
    addrs: impl IntoIterator<Item = SocketAddr>,
    template: impl Fn(SocketAddr) -> Endpoint,
) -> Discovery {
    let mut changes: Vec<Change> = addrs
        .into_iter()
        .map(|addr| Change::insert(addr.to_string(), template(addr)))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Discovery::new(poll_fn_stream(move |_cx| match changes.pop() {
        Some(change) => Poll::Ready(Some(change)),
        None => Poll::Pending,
    }))
}
