//! What the accept loop takes from a listener: a connection, split for its task
//! ([`Accepted`]) or whole for TLS to wrap ([`AcceptedIo`]), with what is known of it — both
//! addresses for TCP, the peer's credentials for a Unix socket — which becomes the
//! [`ConnInfo`](sockrpc_protocol::ConnInfo) every call on it carries.

use crate::client::BoxReader;
use crate::dispatch::TransportKind;
use crate::outbox::BoxWriter;
use crate::tls::TlsPeer;
use crate::UnixIo;
use sockrpc_protocol::UCred;
use std::{io, net::SocketAddr, sync::Arc};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Any byte stream a server can take whole: what TLS runs over.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// A boxed byte stream, not yet split.
pub type BoxIo = Box<dyn Io>;

/// One accepted connection, split for its task.
pub struct Accepted {
    /// The read half.
    pub reader: BoxReader,
    /// The write half.
    pub writer: BoxWriter,
    /// The peer's address (`None` for a Unix socket).
    pub peer: Option<SocketAddr>,
    /// Our address on this connection (`None` for a Unix socket).
    pub local: Option<SocketAddr>,
    /// Which kind of socket it is.
    pub transport: TransportKind,
    /// The TLS peer, when the connection runs TLS (shared by every call on it).
    pub tls: Option<Arc<TlsPeer>>,
    /// A Unix socket's peer credentials (`None` on other transports).
    pub peer_cred: Option<UCred>,
}

impl Accepted {
    /// A connected TCP stream, split, with both its addresses: what a TCP listener's accept
    /// gives, and what a stream of connections served as a listener gives for a `TcpStream`.
    pub fn tcp(stream: TcpStream) -> Accepted {
        let peer = stream.peer_addr().ok();
        Accepted::tcp_from(stream, peer)
    }

    /// [`tcp`](Accepted::tcp) with the peer's address as the accept gave it.
    pub(super) fn tcp_from(stream: TcpStream, peer: Option<SocketAddr>) -> Accepted {
        let local = stream.local_addr().ok();
        let (reader, writer) = TcpStream::into_split(stream);
        Accepted {
            reader: Box::pin(reader),
            writer: Box::pin(writer),
            peer,
            local,
            transport: TransportKind::Tcp,
            tls: None,
            peer_cred: None,
        }
    }

    /// A connected Unix stream, split, with its peer's credentials (no addresses: a client's
    /// Unix socket is unnamed).
    /// Registered for reads only: the peer's reads then wake nobody (`unix_io.rs`).
    pub fn unix(stream: UnixStream) -> io::Result<Accepted> {
        let peer_cred = stream.peer_cred().ok();
        let (reader, writer) = UnixIo::from_tokio(stream)?.into_split();
        Ok(Accepted {
            reader: Box::pin(reader),
            writer: Box::pin(writer),
            peer: None,
            local: None,
            transport: TransportKind::Unix,
            tls: None,
            peer_cred,
        })
    }
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("transport", &self.transport)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// One accepted connection, whole: TLS wraps it before it is split.
pub struct AcceptedIo {
    /// The stream.
    pub io: BoxIo,
    /// The peer's address (`None` for a Unix socket).
    pub peer: Option<SocketAddr>,
    /// Our address on this connection (`None` for a Unix socket).
    pub local: Option<SocketAddr>,
    /// Which kind of socket it is.
    pub transport: TransportKind,
    /// A Unix socket's peer credentials (`None` on other transports).
    pub peer_cred: Option<UCred>,
}

impl std::fmt::Debug for AcceptedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptedIo")
            .field("peer", &self.peer)
            .field("transport", &self.transport)
            .finish()
    }
}
