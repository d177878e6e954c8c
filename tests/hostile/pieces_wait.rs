//! A unary call whose request waits behind other calls' split messages is not taken for an
//! OPEN whose MESSAGE never comes.
//!
//! A client cuts one split message at a time, and a unary call's OPEN goes out at once: with
//! several large requests on one slow connection, the last OPEN arrives long before its
//! MESSAGE, which waits behind the others' pieces. The server's wait for a request message
//! (`frame_timeout`, `open.rs`) must count from when the connection stopped bringing pieces,
//! not from the OPEN, or it cancels calls that are arriving as fast as the link allows (before
//! pieces each OPEN came right before its message).

use crate::support::{bounded, EchoImpl};
use sockrpc::{Channel, Endpoint, Server};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server's frame timeout: each request alone arrives well within it.
const FRAME: Duration = Duration::from_secs(1);
/// Bytes the proxy forwards toward the server per [`TICK`]: about 1 MiB/s.
const PER_TICK: usize = 16 * 1024;
const TICK: Duration = Duration::from_millis(16);
/// Requests sent at once, each taking about 0.55 s through the proxy: all of them, 2.2 s.
const CALLS: u64 = 4;
const SIZE: usize = 560 * 1024;

/// Forwards one connection to `server`: toward it at about 1 MiB/s, back at full speed.
async fn slow_proxy(server: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(server).await else {
            return;
        };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        let mut buf = vec![0u8; PER_TICK];
        loop {
            match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
            tokio::time::sleep(TICK).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_requests_queued_behind_each_other_on_a_slow_link_all_arrive() {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let server_addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(
        Server::builder()
            .frame_timeout(FRAME)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let proxy = slow_proxy(server_addr).await;
    let endpoint = Endpoint::new("127.0.0.1", proxy.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    // A first call, so that the server's SETTINGS (CAP_PIECES) has arrived.
    bounded("warm-up", client.echo(EchoRequest::default()))
        .await
        .expect("warm-up call");
    let mut calls = Vec::new();
    for id in 0..CALLS {
        let mut client = EchoClient::new(channel.clone());
        calls.push(tokio::spawn(async move {
            let request = EchoRequest {
                payload: vec![id as u8; SIZE].into(),
                id,
            };
            client.echo(request).await
        }));
    }
    for call in calls {
        let reply = bounded("call", call)
            .await
            .expect("no panic")
            .unwrap_or_else(|status| panic!("a queued request failed: {status:?}"))
            .into_inner();
        assert_eq!(reply.payload.len(), SIZE);
    }
    server.abort();
}
