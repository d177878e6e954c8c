//! A `Server` that also serves UDP, whose serving future is dropped (its task aborted, or lost
//! in a `select!`) rather than shut down: the UDP side stops with it and lets its socket go, as
//! the TCP side does. A UDP task left running would answer calls for ever from a server its
//! owner believes gone, and hold the port.

use crate::support::{deadline, reply_of, request, Counting, BOUND, ECHO};
use bytes::Bytes;
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpServerConfig};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_server_stops_serving_udp_and_frees_its_port() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let task = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(EchoServer::new(Counting::default()))
            .serve_with_listener_and_shutdown(listener, std::future::pending()),
    );
    // Serving: a UDP call is answered.
    let client = UdpClient::connect(udp_addr, UdpClientConfig::default())
        .await
        .expect("client");
    let echo = request(&EchoRequest {
        payload: Bytes::from_static(b"hi"),
        id: 1,
    });
    reply_of(client.call(&ECHO, &echo, deadline()).await).expect("answered over UDP");

    task.abort();
    let aborted = tokio::time::timeout(BOUND, task).await.expect("task ends");
    assert!(aborted.is_err_and(|e| e.is_cancelled()));
    // The UDP side lets its socket go (within the grace period it gives running calls: none).
    let start = Instant::now();
    loop {
        match UdpSocket::bind(udp_addr).await {
            Ok(_) => break,
            Err(err) => assert!(
                start.elapsed() < BOUND,
                "the UDP port is still held after the server was dropped: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
