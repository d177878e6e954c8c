//! `ConnInfo`: which connection a call arrived on — the socket kind and both addresses.
//!
//! The server's transport fills it in for every call it hands up, in a field of the request of
//! its own rather than in the [`Extensions`](crate::Extensions) map: it is a few plain values,
//! so storing it costs no allocation, and every call has one (the allocation budget per round
//! trip is counted). Handlers and interceptors read it with
//! [`Request::conn_info`](crate::Request::conn_info).

use std::net::SocketAddr;

/// Which kind of socket a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// A TCP connection.
    Tcp,
    /// A Unix domain socket connection.
    Unix,
    /// A UDP datagram.
    Udp,
    /// Any other byte stream (an in-memory duplex in a test, a stream the caller connected).
    Other,
}

/// The connection a call arrived on, as the server's transport saw it.
///
/// `Clone` but deliberately not `Copy`: a TLS peer certificate will join it (shared, so a clone
/// stays free of allocation), and dropping `Copy` then would break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// The socket kind.
    pub transport: TransportKind,
    /// The peer's address (`None` for a Unix socket or a stream the caller connected).
    pub peer: Option<SocketAddr>,
    /// Our own address on that connection (the address the peer reached; for a listener bound
    /// to `0.0.0.0` this is the concrete interface address).
    pub local: Option<SocketAddr>,
}

impl ConnInfo {
    /// Connection info for a call over `transport` from `peer` to `local`.
    pub fn new(
        transport: TransportKind,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> ConnInfo {
        ConnInfo {
            transport,
            peer,
            local,
        }
    }
}
