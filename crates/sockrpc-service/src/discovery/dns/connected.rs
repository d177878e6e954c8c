//! The resolver's UDP sockets, connected to the DNS server they ask.
//!
//! Why: hickory sends each UDP query from an unconnected socket, and Linux reports an ICMP
//! "port unreachable" only on a connected one. So a DNS server that is not running (nothing on
//! its port, the commonest failure of a local daemon: restarted, crashed, not yet up) looked
//! like a silent one: every lookup waited out `timeout` × `attempts` (4 s with
//! [`server`](super::DnsDiscovery::server), 10 s with `/etc/resolv.conf`'s defaults), and a
//! fail-fast call waited that long, or failed `DEADLINE_EXCEEDED`, where grpc-go (whose Go
//! resolver connects its UDP sockets) fails it at once, `UNAVAILABLE`, "connection refused".
//! Connected, the socket's receive fails at once with `ECONNREFUSED`, and the lookup with it.
//!
//! Sending goes through `send` (not `send_to` with the address), which BSDs refuse on a
//! connected socket (`EISCONN`); the address a datagram came from is the server's, the only one
//! a connected socket receives from. TCP is hickory's own.

use hickory_resolver::name_server::GenericConnector;
use hickory_resolver::proto::runtime::iocompat::AsyncIoTokioAsStd;
use hickory_resolver::proto::runtime::{
    RuntimeProvider, TokioHandle, TokioRuntimeProvider, TokioTime,
};
use hickory_resolver::proto::udp::DnsUdpSocket;
use hickory_resolver::Resolver;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::Interest;

/// The resolver the discovery uses: hickory's, over [`Connected`] UDP sockets.
pub(super) type DnsResolver = Resolver<GenericConnector<Connected>>;

/// The connection provider of a [`DnsResolver`].
pub(super) fn provider() -> GenericConnector<Connected> {
    GenericConnector::new(Connected::default())
}

/// Tokio's runtime provider, but for UDP sockets connected to their server.
#[derive(Clone, Default)]
pub(super) struct Connected(TokioRuntimeProvider);

impl RuntimeProvider for Connected {
    type Handle = TokioHandle;
    type Timer = TokioTime;
    type Udp = ConnectedUdp;
    type Tcp = AsyncIoTokioAsStd<tokio::net::TcpStream>;

    fn create_handle(&self) -> Self::Handle {
        self.0.create_handle()
    }

    fn connect_tcp(
        &self,
        server_addr: SocketAddr,
        bind_addr: Option<SocketAddr>,
        timeout: Option<Duration>,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Tcp>>>> {
        self.0.connect_tcp(server_addr, bind_addr, timeout)
    }

    fn bind_udp(
        &self,
        local_addr: SocketAddr,
        server_addr: SocketAddr,
    ) -> Pin<Box<dyn Send + Future<Output = io::Result<Self::Udp>>>> {
        Box::pin(async move {
            let socket = tokio::net::UdpSocket::bind(local_addr).await?;
            // An IP address: no lookup, done at once.
            socket.connect(server_addr).await?;
            Ok(ConnectedUdp {
                socket,
                server: server_addr,
            })
        })
    }
}

/// A UDP socket connected to `server`.
pub(super) struct ConnectedUdp {
    socket: tokio::net::UdpSocket,
    server: SocketAddr,
}

impl DnsUdpSocket for ConnectedUdp {
    type Time = TokioTime;

    // What hickory's UDP client awaits (an `async_trait` method, written out as that macro
    // would). Waits for an error as well as for a datagram: an ICMP error sets only EPOLLERR,
    // which does not wake a task waiting to read (`poll_recv_from`), so that a refused query
    // would still wait out its timeout.
    fn recv_from<'life0, 'life1, 'async_trait>(
        &'life0 self,
        buf: &'life1 mut [u8],
    ) -> Pin<Box<dyn Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            // Each turn returns, or waits again: `try_recv` clears the readiness it found
            // wanting (tokio checks it before reading, so it never sees the error itself).
            loop {
                let ready = self
                    .socket
                    .ready(Interest::READABLE | Interest::ERROR)
                    .await?;
                if ready.is_error() {
                    return Err(self.socket.take_error()?.unwrap_or_else(|| {
                        io::Error::other(format!("UDP socket to {} failed", self.server))
                    }));
                }
                match self.socket.try_recv(buf) {
                    Ok(len) => return Ok((len, self.server)),
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(error) => return Err(error),
                }
            }
        })
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        match self.socket.poll_recv(cx, &mut buf) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok((buf.filled().len(), self.server))),
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        // IP and port, as hickory compares them (not an IPv6 address's flow info).
        if target.ip() != self.server.ip() || target.port() != self.server.port() {
            return Poll::Ready(Err(io::Error::other(format!(
                "this UDP socket is connected to {}, not {target}",
                self.server
            ))));
        }
        self.socket.poll_send(cx, buf)
    }
}
