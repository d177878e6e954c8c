//! A channel whose stream side is a Unix socket and whose small calls go over UDP to the same
//! host (`Endpoint::unix(..).udp(..)`) re-issues a TRUNCATED call over that Unix socket, whose
//! peer has no IP address. When answers were bound to the client's address, such a re-issue
//! found nothing: every large answer of a method not marked idempotent came back `ABORTED`
//! ("no cached reply for this UDP re-issue"). A Unix socket's peer is a process on this host, as
//! is the sender of a datagram from a loopback address, so it gets those calls' answers.

use crate::support::{stop_server, Counting, BOUND};
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc::{Channel, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// An answer too large for a datagram: TRUNCATED, then fetched over the Unix socket.
const LARGE: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_channel_gets_its_truncated_answers() {
    let dir = std::env::temp_dir().join(format!("sockrpc-udp-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("s.sock");
    let handlers = Counting::default();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let udp_socket = UdpSocket::bind(any).await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(EchoServer::new(handlers.clone()))
            .serve_unix_with_shutdown(path.clone(), async {
                let _ = stopped.await;
            }),
    );
    // The socket file appears once the server listens.
    let listening = tokio::time::timeout(BOUND, async {
        while !path.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    listening
        .await
        .expect("the server listens on its Unix socket");
    let endpoint = Endpoint::unix(&path).udp_policy(Some(UdpPolicy::new(udp_addr)));
    let channel = tokio::time::timeout(BOUND, Channel::connect(endpoint))
        .await
        .expect("bounded")
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());

    // A small call over UDP first (cookie and watermarks set up).
    let small = EchoRequest {
        id: 1,
        payload: bytes::Bytes::from(vec![7u8; 32]),
    };
    let reply = tokio::time::timeout(BOUND, client.echo(small))
        .await
        .expect("bounded")
        .expect("small call")
        .into_inner();
    assert_eq!(reply.id, 1);

    // Too large for a datagram: TRUNCATED, re-issued over the Unix socket, answered from the
    // cache without a second run.
    for round in 0..3 {
        let reply = tokio::time::timeout(BOUND, client.grow(GrowRequest { size: LARGE }))
            .await
            .expect("bounded")
            .unwrap_or_else(|status| panic!("large answer {round}: {status:?}"))
            .into_inner();
        assert_eq!(reply.payload.len(), LARGE as usize);
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(
        stats.replies >= 1,
        "the small call went over UDP: {stats:?}"
    );
    assert!(
        stats.truncations >= 3,
        "the large ones were TRUNCATED: {stats:?}"
    );
    assert_eq!(handlers.grows.load(Ordering::SeqCst), 3, "each ran once");

    drop((client, channel));
    stop_server(stop, task).await;
    let _ = std::fs::remove_dir_all(&dir);
}
