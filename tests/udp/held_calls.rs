//! A UDP call whose answer went out TRUNCATED is held with its cached answer until its TCP
//! re-issue takes it (`sockrpc_transport::udp::HeldCall`), so that the server's layers record
//! the code the caller got. A held call keeps what its layers keep until it is dropped: a
//! tower `ConcurrencyLimit`'s permit, say. A client that never re-issues must not keep it
//! longer than a short hold: here a `ConcurrencyLimitLayer::new(1)` server whose one permit a
//! truncated call took still answers a TCP call within a few seconds. Before the hold was
//! bounded, the permit stayed until the cache was next used after its entry's ttl (30 s): with
//! no further UDP call, for ever.

use crate::support::{request, Counting, GROW};
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig};
use sockrpc::{Channel, ReadyQueue, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// How long the TCP call may wait for the permit: past the longest hold (5 s), well short of
/// the reply cache's ttl (30 s).
const WAIT: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_call_never_re_issued_lets_its_layers_go_after_a_short_hold() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let tcp = listener.local_addr().expect("addr");
    let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
    let udp = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            // A call that finds the permit taken waits for it up to `WAIT`.
            .ready_queue(ReadyQueue::new(8, WAIT))
            .layer(tower::limit::ConcurrencyLimitLayer::new(1))
            .add_service(EchoServer::new(Counting::default()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );

    // A client that takes the TRUNCATED and never re-issues.
    let udp_client = UdpClient::connect(udp, UdpClientConfig::default())
        .await
        .expect("udp client");
    let grow = request(&GrowRequest { size: 5000 });
    let deadline = Some(tokio::time::Instant::now() + WAIT);
    let hold = match udp_client.call(&GROW, &grow, deadline).await {
        UdpOutcome::Truncated { hold, .. } => hold,
        other => panic!("expected Truncated, got {other:?}"),
    };
    drop(hold);

    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp}"))
        .expect("endpoint")
        .timeout(WAIT + Duration::from_secs(5));
    let channel = Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(channel);
    let started = std::time::Instant::now();
    let echo = Request::new(EchoRequest {
        payload: bytes::Bytes::from_static(b"after"),
        id: 1,
    });
    let answer = tokio::time::timeout(WAIT + Duration::from_secs(10), client.echo(echo))
        .await
        .expect("the call ends");
    match answer {
        Ok(reply) => assert_eq!(&reply.get_ref().payload[..], b"after"),
        Err(status) => panic!(
            "the held call kept the permit ({:?}): {status:?}",
            started.elapsed()
        ),
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
