//! The UDP path through a `Channel` and a `Router`: what fits goes over UDP, the rest over TCP,
//! and the `.proto`'s idempotency levels reach the server.

use crate::support::Counting;
use bytes::Bytes;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::{Request, Response, Router, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, GrowRequest};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// The whole path through a `Channel`: small calls go over UDP, a reply too large for a datagram
/// comes back over TCP from the UDP side's cache (the handler runs once), large requests use TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_uses_udp_when_it_fits_and_tcp_for_the_rest() {
    use sockrpc_tests::echo::echo_client::EchoClient;
    let handlers = Counting::default();
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
            .expect("bind tcp");
    let tcp_addr = listener.local_addr().expect("addr");
    let udp_socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(EchoServer::new(handlers.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = sockrpc::Endpoint::from_uri(&format!("tcp://{tcp_addr}"))
        .expect("endpoint")
        .udp(udp_addr)
        .timeout(Duration::from_secs(5));
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let mut client = EchoClient::new(channel.clone());

    for id in 0..20u64 {
        let reply = client
            .echo(EchoRequest {
                payload: Bytes::from(vec![id as u8; 32]),
                id,
            })
            .await
            .expect("small call")
            .into_inner();
        assert_eq!(reply.id, id);
        assert_eq!(reply.payload.len(), 32);
    }
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.replies >= 20, "small calls went over UDP: {stats:?}");

    // Too large to answer in a datagram: truncated, then fetched over TCP without a rerun.
    let grows_before = handlers.grows.load(Ordering::SeqCst);
    let reply = client
        .grow(GrowRequest { size: 50_000 })
        .await
        .expect("large reply")
        .into_inner();
    assert_eq!(reply.payload.len(), 50_000);
    assert_eq!(
        handlers.grows.load(Ordering::SeqCst),
        grows_before + 1,
        "ran once"
    );
    let stats = channel.udp_stats().expect("udp set up");
    assert!(stats.truncations >= 1, "{stats:?}");

    // Too large to ask in a datagram: TCP from the start.
    let echoes_before = handlers.echoes.load(Ordering::SeqCst);
    let reply = client
        .echo(EchoRequest {
            payload: Bytes::from(vec![1u8; 10_000]),
            id: 99,
        })
        .await
        .expect("large request")
        .into_inner();
    assert_eq!(reply.payload.len(), 10_000);
    assert_eq!(handlers.echoes.load(Ordering::SeqCst), echoes_before + 1);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops")
        .expect("task")
        .expect("serve");
}

/// Methods the `.proto` marks `NO_SIDE_EFFECTS` or `IDEMPOTENT` are known to the server, which
/// lets them skip the UDP reply cache; the others keep at-most-once execution.
#[test]
fn idempotency_levels_from_the_proto_reach_the_router() {
    use sockrpc::NamedService;
    use sockrpc_tests::counter::counter_server::{Counter, CounterServer};
    use sockrpc_tests::counter::{AddRequest, GetRequest, Total};

    struct Noop;
    impl Counter for Noop {
        async fn add(&self, _: Request<AddRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
        async fn get(&self, _: Request<GetRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
        async fn set(&self, _: Request<AddRequest>) -> Result<Response<Total>, Status> {
            Ok(Response::new(Total::default()))
        }
    }

    let mut marked = CounterServer::<Noop>::IDEMPOTENT_METHODS.to_vec();
    marked.sort_unstable();
    assert_eq!(
        marked,
        [
            "/sockrpc.test.counter.Counter/Get",
            "/sockrpc.test.counter.Counter/Set"
        ]
    );
    let router = Router::new().add_service(CounterServer::new(Noop));
    let mut known: Vec<&str> = router.idempotent_methods().collect();
    known.sort_unstable();
    assert_eq!(known, marked);
    assert!(!known.contains(&"/sockrpc.test.counter.Counter/Add"));
}
