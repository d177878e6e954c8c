//! Addresses where nothing listens, for tests whose connects must be refused: the one copy the
//! test binaries share.
//!
//! Binding a listener on port 0, reading its port and dropping the listener does not give such
//! an address for long: the port is free again at once, and the kernel may hand it to another
//! test's server (tests run in parallel, in this process and in others) or to a server this
//! very test starts next on port 0. A connect meant to be refused then reaches a live server.
//! A [`Refused`] keeps its port instead: its socket is bound but never listens, so a connect to
//! it is refused at once (Linux answers the SYN with a RST: `ECONNREFUSED`), and, as it does
//! not set `SO_REUSEADDR`, no other socket can bind that port while it lives. Keep it alive for
//! as long as the address must stay refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpListener, TcpSocket};

/// A TCP address that refuses connections for as long as this lives: a socket bound to it that
/// never listens. Making one needs no runtime; [`listen`](Self::listen) does.
#[derive(Debug)]
pub struct Refused {
    socket: TcpSocket,
    addr: SocketAddr,
}

impl Refused {
    /// A refused address on `127.0.0.1`, on a port the kernel picks.
    pub fn loopback() -> Refused {
        Refused::on(Ipv4Addr::LOCALHOST.into())
    }

    /// A refused address on `ip` (a local address), on a port the kernel picks.
    pub fn on(ip: IpAddr) -> Refused {
        let socket = match ip {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .expect("socket");
        socket
            .bind(SocketAddr::new(ip, 0))
            .unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let addr = socket.local_addr().expect("local address");
        Refused { socket, addr }
    }

    /// The address, refused while `self` lives.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening on the address (in a runtime): a server the test brings up "where
    /// nothing listened" gets the very port its clients were refused on, with no moment in
    /// which another socket could take it.
    pub fn listen(self) -> TcpListener {
        let addr = self.addr;
        self.socket
            .listen(1024)
            .unwrap_or_else(|e| panic!("listen on {addr}: {e}"))
    }

    /// Gives the port up and returns its address, for a server that must bind it itself (with
    /// its own socket options): call it right before that bind, which is then the only moment
    /// another socket could take the port.
    pub fn release(self) -> SocketAddr {
        self.addr
    }
}
