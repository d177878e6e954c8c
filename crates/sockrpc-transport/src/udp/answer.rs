//! A UDP server's answer on its way out: the one message a datagram carries, the buffer it is
//! encoded into (kept per thread between answers, so answering allocates nothing), and where it
//! goes (`ReplyTo`: the source, the address to answer from, the size the source may receive).

use super::datagram::{Cookie, Header, Kind};
use crate::dispatch::OutboundBody;
use bytes::{Bytes, BytesMut};
use sockrpc_protocol::{Response, Status};
use std::net::{IpAddr, SocketAddr};

/// A call's answer as the cache and the datagram hold it: one message.
pub(super) type Answer = Result<Response<Bytes>, Status>;

thread_local! {
    /// The buffer answers are encoded into, kept between them: an answer is sent (copied into
    /// the kernel) before the next is encoded, so one per thread serves every answer.
    static SCRATCH: std::cell::Cell<BytesMut> = std::cell::Cell::new(BytesMut::new());
}

/// Largest buffer kept for the next answer.
const SCRATCH_KEPT: usize = 64 * 1024;

/// This thread's answer buffer, emptied, with room for `len` bytes. Taken out of the thread's
/// slot (a send may wait, and the task resume on another thread); [`give_back`] returns it.
pub(super) fn scratch(len: usize) -> BytesMut {
    let mut out = SCRATCH.take();
    out.clear();
    out.reserve(len);
    out
}

/// Keeps `out` for the next answer on this thread (a large one is dropped instead).
pub(super) fn give_back(out: BytesMut) {
    if out.capacity() <= SCRATCH_KEPT {
        SCRATCH.set(out);
    }
}

/// A handler's answer as a datagram carries it: one message (a streamed answer cannot go over
/// UDP).
pub(super) fn one_message<B: OutboundBody>(routed: Result<Response<B>, Status>) -> Answer {
    let (metadata, body, trailers) = routed?.into_parts();
    match body.into_once() {
        Ok(message) => Ok(Response::from_parts(metadata, message, trailers)),
        Err(_) => Err(Status::unimplemented(
            "streaming responses are not served over UDP",
        )),
    }
}

/// Where and how an answer may go back.
#[derive(Clone, Copy)]
pub(super) struct ReplyTo {
    pub(super) addr: SocketAddr,
    /// The address to answer from: where the request was sent, when the socket is bound to a
    /// wildcard address (else the kernel's choice is that address anyway).
    pub(super) src_ip: Option<IpAddr>,
    /// `Some(n)`: the source has no valid cookie; nothing larger than `n` bytes may go to it.
    pub(super) size_limit: Option<usize>,
    pub(super) flags: u8,
    pub(super) cookie: Cookie,
    pub(super) instance: u64,
    pub(super) call_id: u32,
}

/// The header of a server datagram of `kind` going back to `to`.
pub(super) fn reply_header(kind: Kind, to: &ReplyTo) -> Header {
    Header {
        kind,
        flags: to.flags,
        client_instance: to.instance,
        call_id: to.call_id,
        cookie: to.cookie,
    }
}

/// Whether `ip` names one host (not a broadcast, multicast or unspecified address).
pub(super) fn is_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified()),
        IpAddr::V6(v6) => !(v6.is_multicast() || v6.is_unspecified()),
    }
}
