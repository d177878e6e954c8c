//! A client's cached answers and its watermark are bound to its IP address. The instance travels
//! in plain text in every datagram, so a host that learns it (here a second client on 127.0.0.2,
//! which knows the first one's instance) must not be able to fetch the first client's answers
//! over TCP, nor move its watermark and so make the server forget an answer the client still
//! needs. Before, the cache looked calls up by `(instance, call id)` alone: both worked.

use crate::in_flight_share::cookie_for;
use crate::paths::call;
use crate::support::{request, Counting, BOUND, ECHO, GROW};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig};
use sockrpc::transport::ClientConnection;
use sockrpc::{Code, Limits, MetadataMap, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest, GrowRequest};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The second client's address: Linux routes all of 127/8 to loopback.
const OTHER: &str = "127.0.0.2";

/// An answer too large for a datagram: it comes back TRUNCATED and is fetched over TCP.
const LARGE: u64 = 5_000;

/// A `Server` on TCP and UDP (both on 127.0.0.1) with the counting echo service.
struct Served {
    tcp: SocketAddr,
    udp: SocketAddr,
    handlers: Counting,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Served {
    async fn start() -> Served {
        let handlers = Counting::default();
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
        let tcp = listener.local_addr().expect("addr");
        let socket = UdpSocket::bind(any).await.expect("bind udp");
        let udp = socket.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .udp(socket, UdpServerConfig::default())
                .add_service(EchoServer::new(handlers.clone()))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        Served {
            tcp,
            udp,
            handlers,
            stop,
            task,
        }
    }

    /// A TCP connection to the server from `from` (any port).
    async fn connect_from(&self, from: &str) -> ClientConnection {
        let socket = TcpSocket::new_v4().expect("socket");
        let local: SocketAddr = format!("{from}:0").parse().expect("addr");
        socket.bind(local).expect("bind the connection's source");
        let stream = bounded(socket.connect(self.tcp)).await.expect("connect");
        let conn = ClientConnection::spawn_tcp(stream, Limits::default());
        bounded(conn.ready()).await.expect("ready");
        conn
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        bounded(self.task).await.expect("task").expect("serve");
    }
}

async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(BOUND, future).await.expect("bounded")
}

fn grow() -> Request<Bytes> {
    request(&GrowRequest { size: LARGE })
}

/// The victim's first calls: a small one (it learns its cookie and that the server reads
/// watermarks), then a large one, TRUNCATED. Returns `(instance, call id)` of the large one,
/// and the hold that keeps it outstanding (so the client's own mark stays below it).
async fn truncated_call(client: &UdpClient) -> ((u64, u32), impl Sized) {
    let deadline = Some(Instant::now() + BOUND);
    let small = request(&EchoRequest::default());
    match client.call(&ECHO, &small, deadline).await {
        UdpOutcome::Reply(Ok(_)) => {}
        other => panic!("expected a reply, got {other:?}"),
    }
    match client.call(&GROW, &grow(), deadline).await {
        UdpOutcome::Truncated {
            instance,
            call_id,
            hold,
        } => ((instance, call_id), hold),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

/// The re-issue's answer must be the large one, whole.
fn assert_large(what: &str, answer: Result<Response<Bytes>, Status>) {
    let response = answer.unwrap_or_else(|status| panic!("{what}: {status:?}"));
    let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
    assert_eq!(reply.payload.len(), LARGE as usize, "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_cannot_fetch_a_cached_answer_over_tcp() {
    let server = Served::start().await;
    let victim = UdpClient::connect(server.udp, UdpClientConfig::default())
        .await
        .expect("udp client");
    let (udp_call, _hold) = truncated_call(&victim).await;

    // Another host that knows the instance (it is in every datagram) re-issues the call.
    let other = server.connect_from(OTHER).await;
    let stolen = bounded(other.reissue(GROW.clone(), grow(), udp_call)).await;
    match stolen {
        Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        Ok(response) => panic!(
            "{OTHER} fetched 127.0.0.1's cached answer: {} bytes",
            response.get_ref().len()
        ),
    }

    // The client itself, from its own address (another port), still gets it.
    let own = server.connect_from("127.0.0.1").await;
    let answer = bounded(own.reissue(GROW.clone(), grow(), udp_call)).await;
    assert_large("the client's own re-issue", answer);
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "the call ran once, and no re-issue ran it again"
    );
    server.stop().await;
}

/// An `Echo` REQUEST of client `instance` with watermark `done_below`.
pub(crate) fn echo_with_mark(
    instance: u64,
    call_id: u32,
    done_below: u32,
    cookie: [u8; COOKIE_LEN],
) -> BytesMut {
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: instance,
        call_id,
        cookie,
    };
    let message = EchoRequest::default().encode_to_vec();
    let mut out = BytesMut::new();
    let metadata = MetadataMap::new();
    datagram::encode_request(
        &mut out,
        &header,
        None,
        Some(done_below),
        &ECHO,
        &metadata,
        &message,
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_address_cannot_move_a_clients_watermark() {
    let server = Served::start().await;
    let victim = UdpClient::connect(server.udp, UdpClientConfig::default())
        .await
        .expect("udp client");
    let ((instance, call_id), _hold) = truncated_call(&victim).await;
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 1);

    // Another host, verified for its own address, sends a REQUEST under the victim's instance
    // saying the client is done with every call up to far past the truncated one.
    let socket = UdpSocket::bind(format!("{OTHER}:0"))
        .await
        .expect("bind 127.0.0.2");
    socket.connect(server.udp).await.expect("connect");
    let cookie = cookie_for(&socket).await;
    let ahead = call_id.wrapping_add(100);
    bounded(call(
        &socket,
        &echo_with_mark(instance, ahead, ahead, cookie),
    ))
    .await;

    // The victim's answer is still there for its re-issue...
    let own = server.connect_from("127.0.0.1").await;
    let answer = bounded(own.reissue(GROW.clone(), grow(), (instance, call_id))).await;
    assert_large("the client's re-issue after the other host's mark", answer);
    // ...and its next calls are not below a mark someone else set.
    let deadline = Some(Instant::now() + BOUND);
    let small = request(&EchoRequest::default());
    match victim.call(&ECHO, &small, deadline).await {
        UdpOutcome::Reply(Ok(_)) => {}
        other => panic!("the client's next call: {other:?}"),
    }
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.handlers.echoes.load(Ordering::SeqCst),
        2,
        "the client's two echo calls ran; the call under its instance from {OTHER} did not"
    );
    server.stop().await;
}
