//! `ConnInfo`: which connection a call arrived on — the socket kind, both addresses, and on a
//! Unix socket the peer's credentials.
//!
//! The server's transport fills it in for every call it hands up, in a field of the request of
//! its own rather than in the [`Extensions`](crate::Extensions) map: it is a few plain values,
//! so storing it costs no allocation, and every call has one (the allocation budget per round
//! trip is counted). Handlers and interceptors read it with
//! [`Request::conn_info`](crate::Request::conn_info).

use crate::TlsPeer;
use std::{net::SocketAddr, sync::Arc};
pub use tokio::net::unix::UCred;

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
/// `Clone` but not `Copy`: it holds the TLS peer, shared, so a clone stays free of allocation.
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
    /// On a TLS connection: the client as the handshake established it — its verified
    /// certificate chain (leaf first; empty when it presented none) and the SNI name. One
    /// `Arc` per connection, shared by every call on it.
    pub tls: Option<Arc<TlsPeer>>,
    /// On a Unix socket: the connecting process's credentials (user, group and process id)
    /// as the kernel gave them when the server accepted it, tonic's `UdsConnectInfo::peer_cred`
    /// (`None` on other transports, or if the kernel would not tell). A server can trust
    /// them to tell local users apart, as it cannot trust anything the client sends.
    pub peer_cred: Option<UCred>,
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
            tls: None,
            peer_cred: None,
        }
    }

    /// Sets the Unix peer's credentials.
    pub fn with_peer_cred(mut self, peer_cred: Option<UCred>) -> ConnInfo {
        self.peer_cred = peer_cred;
        self
    }

    /// Sets the TLS peer.
    pub fn with_tls(mut self, tls: Option<Arc<TlsPeer>>) -> ConnInfo {
        self.tls = tls;
        self
    }
}
