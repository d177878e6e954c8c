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
    let (tcp_addr, udp_addr, stop) = serve_at(grower).await;
    (endpoint(tcp_addr.port(), udp_addr), stop)
}

/// An endpoint for TCP port `tcp_port` on 127.0.0.1 with UDP on at `udp_addr`.
fn endpoint(tcp_port: u16, udp_addr: SocketAddr) -> Endpoint {
    Endpoint::new("127.0.0.1", tcp_port)
        .udp_policy(Some(UdpPolicy::new(udp_addr)))
        .timeout(STEP)
}

/// A server with `grower` over TCP and UDP: its two addresses, and what keeps it up.
async fn serve_at(grower: &Grower) -> (SocketAddr, SocketAddr, oneshot::Sender<()>) {
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
    (tcp_addr, udp_addr, stop)
}

/// A Grow call of 50,000 bytes on `channel`, spawned, once its handler runs on `grower`.
async fn grow_running(
    channel: &Channel,
    grower: &Grower,
) -> JoinHandle<Result<Response<EchoReply>, Status>> {
    let mut client = EchoClient::new(channel.clone());
    let call = tokio::spawn(async move { client.grow(GrowRequest { size: 50_000 }).await });
    eventually("the call runs", || {
        grower.entered.load(Ordering::SeqCst) == 1
    })
    .await;
    call
}

/// The call's whole answer, fetched over TCP after the close: from the server's reply cache,
/// the handler having run once.
async fn fetched_once(
    call: JoinHandle<Result<Response<EchoReply>, Status>>,
    grower: &Grower,
    what: &str,
) {
    let reply = bounded("the call in flight", call)
        .await
        .expect("task")
        .unwrap_or_else(|status| panic!("{what}: {status:?}"))
        .into_inner();
    assert_eq!(reply.payload.len(), 50_000);
    assert_eq!(grower.entered.load(Ordering::SeqCst), 1, "ran once");
}

#[tokio::test]
async fn a_truncated_udp_answer_is_fetched_over_tcp_after_close() {
    let grower = Grower::default();
    let (endpoint, _stop) = serve(&grower).await;
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let call = grow_running(&channel, &grower).await;
    assert_eq!(
        channel.udp_stats().expect("udp").truncations,
        0,
        "not answered yet"
    );

    channel.close();
    grower.release.send_replace(true);
    fetched_once(
        call,
        &grower,
        "the truncated answer is fetched after close()",
    )
    .await;
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
    fetched_once(
        call,
        &grower,
        "the truncated answer is fetched after close()",
    )
    .await;
    let answered_first = bounded("closed()", closed).await.expect("task");
    assert_eq!(
        answered_first, 1,
        "closed() resolved before the call's fetch ended"
    );
}

/// A TCP listener in front of `backend` whose accept queue is full: a connect to it waits (its
/// SYN dropped, retransmitted after about a second) until [`open`](Self::open) accepts the
/// connection filling the queue and starts forwarding.
struct Stalled {
    addr: SocketAddr,
    listener: TcpListener,
    filler: tokio::net::TcpStream,
}

impl Stalled {
    async fn start() -> Stalled {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        socket.bind(&any.into()).expect("bind");
        // A backlog of 0 queues one connection; the next SYN is dropped.
        socket.listen(0).expect("listen");
        socket.set_nonblocking(true).expect("nonblocking");
        let listener = TcpListener::from_std(socket.into()).expect("listener");
        let addr = listener.local_addr().expect("addr");
        let filler = tokio::net::TcpStream::connect(addr).await.expect("filler");
        Stalled {
            addr,
            listener,
            filler,
        }
    }

    /// Accepts (and drops) the filler, then forwards every connection to `backend`.
    fn open(self, backend: SocketAddr) -> JoinHandle<()> {
        drop(self.filler);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = self.listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        })
    }
}

#[tokio::test]
async fn a_fetch_waiting_for_its_connection_at_close_still_gets_the_answer() {
    let grower = Grower::default();
    let (tcp_addr, udp_addr, _stop) = serve_at(&grower).await;
    let stalled = Stalled::start().await;
    let channel = Channel::lazy(endpoint(stalled.addr.port(), udp_addr)).expect("channel");
    let call = grow_running(&channel, &grower).await;

    // The answer comes back truncated; its fetch waits for the pool's first connection, whose
    // connect is stalled, when the channel closes.
    grower.release.send_replace(true);
    eventually("the answer comes back truncated", || {
        channel.udp_stats().expect("udp").truncations == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!call.is_finished(), "the fetch waits for its connection");
    channel.close();
    let forwarding = stalled.open(tcp_addr);
    let what = "the fetch that waited for a connection at close() gets its answer";
    fetched_once(call, &grower, what).await;
    bounded("closed()", channel.closed()).await;
    forwarding.abort();
}
