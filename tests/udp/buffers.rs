//! UDP sockets ask for a receive buffer large enough for a burst of datagrams (4 MiB, capped by
//! the kernel's `net.core.rmem_max`): at Linux's default of 208 KiB, the answers to a few
//! hundred calls made together overflow the client's socket even on loopback, and each datagram
//! dropped costs a retransmission timeout. A buffer already larger is left alone, and so is
//! every buffer when the configuration says `None`.

use socket2::SockRef;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpServer, UdpServerConfig};
use sockrpc::transport::UDP_RECV_BUFFER;
use sockrpc::Router;
use std::net::UdpSocket as StdUdpSocket;
use tokio::net::UdpSocket;

/// What Linux reports after `SO_RCVBUF` is asked for `size`: double (room for its own
/// bookkeeping), capped at double `net.core.rmem_max`.
fn applied(size: usize) -> usize {
    let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .expect("net.core.rmem_max")
        .trim()
        .parse()
        .expect("a number");
    2 * size.min(rmem_max)
}

/// A socket bound on loopback with a small receive buffer, and a second descriptor of it to
/// read its options once the first has been handed over.
fn small_socket() -> (UdpSocket, StdUdpSocket) {
    let socket = StdUdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    SockRef::from(&socket)
        .set_recv_buffer_size(16 * 1024)
        .expect("shrink");
    let watch = socket.try_clone().expect("second descriptor");
    (UdpSocket::from_std(socket).expect("tokio socket"), watch)
}

fn recv_buffer(socket: &StdUdpSocket) -> usize {
    SockRef::from(socket).recv_buffer_size().expect("SO_RCVBUF")
}

#[tokio::test]
async fn server_and_client_sockets_get_a_large_receive_buffer() {
    let (socket, server_watch) = small_socket();
    let server_addr = socket.local_addr().expect("addr");
    let dispatcher = sockrpc::server::Dispatcher::new(Router::new());
    let cache = std::sync::Arc::default();
    let server =
        UdpServer::new(socket, dispatcher, UdpServerConfig::default(), cache).expect("server");
    assert_eq!(recv_buffer(&server_watch), applied(UDP_RECV_BUFFER));

    let (socket, client_watch) = small_socket();
    socket.connect(server_addr).await.expect("connect");
    let _client = UdpClient::from_socket(socket, UdpClientConfig::default()).expect("client");
    assert_eq!(recv_buffer(&client_watch), applied(UDP_RECV_BUFFER));
    drop(server);
}

#[tokio::test]
async fn a_larger_buffer_is_kept_and_none_leaves_the_socket_alone() {
    let (socket, watch) = small_socket();
    let mut config = UdpServerConfig::default();
    config.recv_buffer_size = None;
    let dispatcher = sockrpc::server::Dispatcher::new(Router::new());
    let _server =
        UdpServer::new(socket, dispatcher, config, std::sync::Arc::default()).expect("server");
    assert_eq!(recv_buffer(&watch), applied(16 * 1024), "left as it was");

    let (socket, watch) = small_socket();
    SockRef::from(&watch)
        .set_recv_buffer_size(UDP_RECV_BUFFER * 2)
        .expect("grow");
    let before = recv_buffer(&watch);
    let got = sockrpc::transport::raise_recv_buffer(&socket, UDP_RECV_BUFFER / 2).expect("raise");
    assert_eq!(got, before, "never lowered");
    assert_eq!(recv_buffer(&watch), before);
}
