//! Socket creation and options, through socket2, shared by client and server.
//!
//! Options are set on the raw socket *before* `listen` or `connect`, where some of them must be
//! (buffer sizes affect the TCP window negotiated in the handshake, `SO_REUSEADDR` matters at
//! bind). [`SocketOptions::read`] reads back what the kernel actually applied: Linux doubles
//! buffer sizes and clamps them, so the value asked for is not the value in force.

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};
use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};
use tokio::net::{TcpListener, TcpStream};

/// The longest TCP keepalive idle time set on a socket: Linux's `MAX_TCP_KEEPIDLE` (about
/// 9 hours), past which `setsockopt` fails `EINVAL` and the connect with it. A longer one (a
/// tonic user's `Duration::MAX`) is taken as this.
const MAX_KEEPALIVE_IDLE: Duration = Duration::from_secs(32_767);

/// Options for every socket sockrpc creates; one value serves client and server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketConfig {
    /// Disable Nagle's algorithm, so a small frame leaves at once. Default on: an RPC waits for
    /// its answer, and Nagle plus delayed ACKs add up to 40 ms to such exchanges.
    pub nodelay: bool,
    /// `SO_REUSEADDR` on listeners, so a restarted server can bind a port in `TIME_WAIT`.
    /// Default on.
    pub reuse_address: bool,
    /// TCP keepalive idle time; `None` leaves it off. Default 60 s. (sockrpc's own PINGs detect
    /// dead peers faster; this is the kernel's backstop.)
    pub keepalive: Option<Duration>,
    /// `SO_SNDBUF` to ask for; `None` keeps the kernel's default.
    pub send_buffer_size: Option<usize>,
    /// `SO_RCVBUF` to ask for; `None` keeps the kernel's default.
    pub recv_buffer_size: Option<usize>,
    /// Listen backlog. Default 1024.
    pub backlog: u32,
    /// `SO_LINGER`; `None` keeps the default (close returns at once, data is still sent).
    pub linger: Option<Duration>,
    /// On an IPv6 wildcard listener, accept IPv4 too (dual-stack). Default on.
    pub dual_stack: bool,
    /// Client connections only: the local IP address a connection's socket is bound to before
    /// it connects (`None`, the default: the system picks). Not used for a server of the other
    /// family (as hyper's connector, which tonic's `local_address` sets).
    pub local_address: Option<IpAddr>,
}

impl Default for SocketConfig {
    fn default() -> SocketConfig {
        SocketConfig {
            nodelay: true,
            reuse_address: true,
            keepalive: Some(Duration::from_secs(60)),
            send_buffer_size: None,
            recv_buffer_size: None,
            backlog: 1024,
            linger: None,
            dual_stack: true,
            local_address: None,
        }
    }
}

impl SocketConfig {
    /// Sets `TCP_NODELAY`.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Sets the keepalive idle time (`None`: off).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// Sets `SO_SNDBUF`.
    pub fn send_buffer_size(mut self, size: Option<usize>) -> Self {
        self.send_buffer_size = size;
        self
    }

    /// Sets `SO_RCVBUF`.
    pub fn recv_buffer_size(mut self, size: Option<usize>) -> Self {
        self.recv_buffer_size = size;
        self
    }

    /// Sets the listen backlog.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// Sets `SO_LINGER`.
    pub fn linger(mut self, linger: Option<Duration>) -> Self {
        self.linger = linger;
        self
    }

    /// Sets `SO_REUSEADDR` for listeners.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// Sets dual-stack on IPv6 wildcard listeners.
    pub fn dual_stack(mut self, on: bool) -> Self {
        self.dual_stack = on;
        self
    }

    /// Sets the local IP address client connections are bound to
    /// ([`local_address`](SocketConfig::local_address)).
    pub fn local_address(mut self, addr: Option<IpAddr>) -> Self {
        self.local_address = addr;
        self
    }

    /// Applies the options every connected TCP socket gets.
    fn apply_stream(&self, socket: &SockRef<'_>) -> io::Result<()> {
        socket.set_tcp_nodelay(self.nodelay)?;
        if let Some(idle) = self.keepalive {
            socket
                .set_tcp_keepalive(&TcpKeepalive::new().with_time(idle.min(MAX_KEEPALIVE_IDLE)))?;
        }
        if let Some(size) = self.send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = self.recv_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        if self.linger.is_some() {
            socket.set_linger(self.linger)?;
        }
        Ok(())
    }

    /// Applies the options to an accepted stream (the listener's buffer sizes are inherited by
    /// Linux, the rest are per socket).
    pub fn apply_accepted(&self, stream: &TcpStream) -> io::Result<()> {
        self.apply_stream(&SockRef::from(stream))
    }
}

/// Binds a TCP listener on `addr` (port 0 picks a free port) with `config`.
///
/// `0.0.0.0` binds every IPv4 address; `[::]` binds every IPv6 address and, with
/// [`SocketConfig::dual_stack`], IPv4 too where the OS allows it.
pub fn bind_tcp(addr: SocketAddr, config: &SocketConfig) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Ask for dual-stack explicitly: the OS default (net.ipv6.bindv6only) varies.
        socket.set_only_v6(!config.dual_stack)?;
    }
    socket.set_reuse_address(config.reuse_address)?;
    if let Some(size) = config.send_buffer_size {
        socket.set_send_buffer_size(size)?;
    }
    if let Some(size) = config.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(config.backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// Connects to `addr` with `config`, failing with `TimedOut` after `timeout`.
pub async fn connect_tcp(
    addr: SocketAddr,
    config: &SocketConfig,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    config.apply_stream(&SockRef::from(&socket))?;
    if let Some(local) = config.local_address {
        if local.is_ipv4() == addr.is_ipv4() {
            socket.bind(&SocketAddr::new(local, 0).into())?;
        }
    }
    socket.set_nonblocking(true)?;
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connect to {addr} timed out after {timeout:?}"),
        )),
    }
}

/// The receive buffer sockrpc asks for on its UDP sockets, server and client (4 MiB): see
/// [`raise_recv_buffer`].
pub const UDP_RECV_BUFFER: usize = 4 << 20;

/// Raises `SO_RCVBUF` on `socket` to `size` if it is smaller, never lowering it; returns the
/// size then in force (as the kernel reports it: doubled on Linux).
///
/// A datagram that arrives while its socket's buffer is full is dropped by the kernel. Linux
/// gives a socket 208 KiB by default (`net.core.rmem_default`) and counts each small datagram
/// at about 2 KiB of it, so a burst of a few hundred (the answers to calls made together, or a
/// round of requests from many clients) overflows it even on loopback, and each drop costs a
/// retransmission timeout. The kernel caps the request at `net.core.rmem_max` without error.
pub fn raise_recv_buffer<S: std::os::fd::AsFd>(socket: &S, size: usize) -> io::Result<usize> {
    let sock = SockRef::from(socket);
    let current = sock.recv_buffer_size()?;
    if current >= size {
        return Ok(current);
    }
    sock.set_recv_buffer_size(size)?;
    sock.recv_buffer_size()
}

/// The options in force on a live socket, read back with getsockopt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketOptions {
    /// `TCP_NODELAY`.
    pub nodelay: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `TCP_KEEPIDLE`, where the OS reports it.
    pub keepalive_idle: Option<Duration>,
    /// `SO_SNDBUF` as the kernel applied it.
    pub send_buffer_size: usize,
    /// `SO_RCVBUF` as the kernel applied it.
    pub recv_buffer_size: usize,
    /// `SO_LINGER`.
    pub linger: Option<Duration>,
}

impl SocketOptions {
    /// Reads the options off any socket (a tokio `TcpStream`, a std one, a listener).
    pub fn read<S: std::os::fd::AsFd>(socket: &S) -> io::Result<SocketOptions> {
        let sock = SockRef::from(socket);
        let keepalive = sock.keepalive()?;
        Ok(SocketOptions {
            nodelay: sock.tcp_nodelay()?,
            keepalive,
            keepalive_idle: if keepalive {
                sock.tcp_keepalive_time().ok()
            } else {
                None
            },
            send_buffer_size: sock.send_buffer_size()?,
            recv_buffer_size: sock.recv_buffer_size()?,
            linger: sock.linger()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn options_are_read_back_from_live_sockets() {
        let config = SocketConfig::default()
            .keepalive(Some(Duration::from_secs(30)))
            .send_buffer_size(Some(64 * 1024))
            .recv_buffer_size(Some(64 * 1024))
            .linger(Some(Duration::from_secs(1)));
        let listener = bind_tcp("127.0.0.1:0".parse().expect("addr"), &config).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = connect_tcp(addr, &config, Duration::from_secs(5))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        config.apply_accepted(&server).expect("apply");
        for stream in [&client, &server] {
            let opts = SocketOptions::read(stream).expect("read");
            assert!(opts.nodelay);
            assert!(opts.keepalive);
            assert_eq!(opts.keepalive_idle, Some(Duration::from_secs(30)));
            // Linux doubles the value asked for to leave room for its bookkeeping.
            assert!(opts.send_buffer_size >= 64 * 1024, "{opts:?}");
            assert!(opts.recv_buffer_size >= 64 * 1024, "{opts:?}");
            assert_eq!(opts.linger, Some(Duration::from_secs(1)));
        }
        let off = SocketConfig::default().nodelay(false).keepalive(None);
        let plain = connect_tcp(addr, &off, Duration::from_secs(5))
            .await
            .expect("connect");
        let opts = SocketOptions::read(&plain).expect("read");
        assert!(!opts.nodelay);
        assert!(!opts.keepalive);
    }

    #[tokio::test]
    async fn dual_stack_wildcard_accepts_ipv4() {
        let config = SocketConfig::default();
        let listener = match bind_tcp("[::]:0".parse().expect("addr"), &config) {
            Ok(listener) => listener,
            // No IPv6 on this host: nothing to test.
            Err(err) if err.kind() == io::ErrorKind::AddrNotAvailable => return,
            Err(err) => panic!("bind [::]: {err}"),
        };
        let port = listener.local_addr().expect("addr").port();
        let v4: SocketAddr = ([127, 0, 0, 1], port).into();
        let client = connect_tcp(v4, &config, Duration::from_secs(5))
            .await
            .expect("v4 connect");
        let (_server, peer) = listener.accept().await.expect("accept");
        assert_eq!(client.local_addr().expect("local").port(), peer.port());
    }
}
