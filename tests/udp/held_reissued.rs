//! A UDP call whose answer went out TRUNCATED, held with that answer for its TCP re-issue
//! (`sockrpc_transport::udp::HeldCall`), is let go as the re-issue arrives, before the re-issue
//! passes the server's layers: one call, counted once by them.
//!
//! The held call keeps what its layers keep (a tower `ConcurrencyLimit`'s permit), and was let
//! go only once the re-issue, past every layer, took the answer from the cache, or after its
//! 5 s hold. So a truncated call counted twice at once against a concurrency limit: under
//! `ConcurrencyLimitLayer::new(1)` the re-issue waited for the permit its own UDP call held,
//! the whole 5 s hold, and a server whose ready queue waits less shed it `RESOURCE_EXHAUSTED`.
//! Here the queue waits 2 s: the re-issue is answered.

use crate::support::Counting;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc::{Channel, ReadyQueue};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// How long a call waits for the one permit before it is shed: short of the hold (5 s).
const WAIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_issue_does_not_wait_for_the_permit_of_its_own_held_call() {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let tcp = listener.local_addr().expect("addr");
    let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
    let udp = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let handlers = Counting::default();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .ready_queue(ReadyQueue::new(8, WAIT))
            .layer(tower::limit::ConcurrencyLimitLayer::new(1))
            .add_service(EchoServer::new(handlers.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp}"))
        .expect("endpoint")
        .udp_policy(Some(UdpPolicy::new(udp)))
        .timeout(Duration::from_secs(20));
    let channel = Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(channel.clone());
    // A first call sets up the cookie, and shows the permit is free.
    let echo = EchoRequest {
        payload: bytes::Bytes::from_static(b"first"),
        id: 1,
    };
    client.echo(echo).await.expect("the first call");
    for round in 0..3 {
        let started = std::time::Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(15),
            client.grow(GrowRequest { size: 5000 }),
        )
        .await
        .expect("the call ends");
        match reply {
            Ok(reply) => assert_eq!(reply.get_ref().payload.len(), 5000),
            Err(status) => panic!(
                "round {round}: the re-issue waited for its own UDP call's permit ({:?}): \
                 {status:?}",
                started.elapsed()
            ),
        }
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.truncations >= 3, "truncated over UDP: {stats:?}");
    assert_eq!(
        handlers.grows.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "each ran once"
    );
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
