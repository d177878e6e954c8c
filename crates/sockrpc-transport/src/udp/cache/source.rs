//! Where a call came from. The client instance is plain text in every datagram and proves
//! nothing, so the cache ties each entry, and the watermark each instance, to the IP address
//! that made it (see `mod.rs` and `watermark.rs`).

use super::super::watermark::canonical;
use std::net::IpAddr;

/// Where a datagram came from: its IP address, in one form per address (IPv4-mapped IPv6 as
/// IPv4), and whether it proved the address (a valid cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    pub(super) ip: IpAddr,
    pub(super) verified: bool,
}

impl Source {
    /// A datagram from `ip`, verified or not.
    pub(crate) fn new(ip: IpAddr, verified: bool) -> Source {
        Source {
            ip: canonical(ip),
            verified,
        }
    }
}

impl From<IpAddr> for Source {
    /// A verified source.
    fn from(ip: IpAddr) -> Source {
        Source::new(ip, true)
    }
}

/// Whether a re-issue from `peer` (`None`: over a Unix socket) may have the answer of a call
/// that `src` started (both canonical): the same address; or, over a Unix socket, a call made from a
/// loopback address. Both are processes on this host: the kernel drops a datagram from outside
/// that claims a loopback source (a martian), and the socket's peer could send from loopback
/// itself. So a channel whose stream side is a Unix socket (`Endpoint::unix(..).udp(..)`, a
/// server on the same host) gets its TRUNCATED answers; without this, every one was `ABORTED`.
pub(crate) fn may_fetch(src: IpAddr, peer: Option<IpAddr>) -> bool {
    match peer {
        Some(peer) => peer == src,
        None => src.is_loopback(),
    }
}
