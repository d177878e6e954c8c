//! A UDP call in flight at a graceful close whose answer comes back truncated: the client
//! fetches it over TCP (a re-issue), and that fetch is part of a call already started, so the
//! close must not refuse it.

use super::*;
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::transport::endpoint::UdpPolicy;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};

/// Grows an answer too large for a datagram once released.
#[derive(Clone, Default)]
struct Grower {
    entered: Arc<AtomicUsize>,
    release: Arc<watch::Sender<bool>>,
}

impl Echo for Grower {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let _ = self.release.subscribe().wait_for(|r| *r).await;
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: vec![1u8; size].into(),
            id: 0,
        }))
    }
}

/// A server with `grower` over TCP and UDP: its endpoint (UDP on), and what keeps it up.
async fn serve(grower: &Grower) -> (Endpoint, oneshot::Sender<()>) {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
    let tcp_addr = listener.local_addr().expect("addr");
    let udp_socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
    let udp_addr = udp_socket.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .udp(udp_socket, UdpServerConfig::default())
            .add_service(EchoServer::new(grower.clone()))
            .serve_with_listener_and_shutdown(listener, async {
                let _ = stopped.await;
            }),
    );
    let endpoint = Endpoint::new("127.0.0.1", tcp_addr.port())
        .udp_policy(Some(UdpPolicy::new(udp_addr)))
        .timeout(STEP);
    (endpoint, stop)
}

#[tokio::test]
async fn a_truncated_udp_answer_is_fetched_over_tcp_after_close() {
    let grower = Grower::default();
    let (endpoint, _stop) = serve(&grower).await;
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    let call = tokio::spawn(async move { client.grow(GrowRequest { size: 50_000 }).await });
    eventually("the call runs", || {
        grower.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        channel.udp_stats().expect("udp").truncations,
        0,
        "not answered yet"
    );

    channel.close();
    grower.release.send_replace(true);
    let reply = bounded("the call in flight", call)
        .await
        .expect("task")
        .expect("the truncated answer is fetched after close()")
        .into_inner();
    assert_eq!(reply.payload.len(), 50_000);
    // Ran once: the answer came from the server's reply cache, not from a second run.
    assert_eq!(grower.entered.load(Ordering::SeqCst), 1, "ran once");
    bounded("closed()", channel.closed()).await;
}

#[tokio::test]
async fn closed_waits_for_the_fetch_of_a_truncated_answer() {
    let grower = Grower::default();
    let (endpoint, _stop) = serve(&grower).await;
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    let answered = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&answered);
    let call = tokio::spawn(async move {
        let reply = client.grow(GrowRequest { size: 50_000 }).await;
        seen.fetch_add(1, Ordering::SeqCst);
        reply
    });
    eventually("the call runs", || {
        grower.entered.load(Ordering::SeqCst) == 1
    })
    .await;

    // Closed with the UDP call in its handler: its answer comes back truncated, and the fetch
    // over TCP starts only after `closed()` has looked at the channel's connections.
    channel.close();
    let waiter = channel.clone();
    let seen = Arc::clone(&answered);
    let closed = tokio::spawn(async move {
        waiter.closed().await;
        seen.load(Ordering::SeqCst)
    });
    // Time for `closed()` to see the pool's own connection end (it carries no call).
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while !closed.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    grower.release.send_replace(true);
    let reply = bounded("the call in flight", call)
        .await
        .expect("task")
        .expect("the truncated answer is fetched after close()")
        .into_inner();
    // Too large for a datagram: fetched over TCP.
    assert_eq!(reply.payload.len(), 50_000);
    let answered_first = bounded("closed()", closed).await.expect("task");
    assert_eq!(
        answered_first, 1,
        "closed() resolved before the call's fetch ended"
    );
}
