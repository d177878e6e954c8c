//! tonic's `serve_with_incoming` and `serve_with_incoming_shutdown`, which most of its tests
//! serve with (`TcpListenerStream::new(listener)`, `TcpIncoming::from(listener)`, a stream of
//! one connection): the server serves each connection the stream yields, an error item is a
//! failed accept it logs and goes past, and the shutdown signal ends it, or the stream's end
//! once the connections it gave have ended. A `TcpStream` or
//! `UnixStream` item is known for what it is, as tonic's `Connected` knows it: calls on a TCP
//! one see both addresses (`remote_addr()`, `local_addr()`, `conn_info()`); any other byte
//! stream (an in-memory duplex) carries none.

use crate::support::bounded;
use futures_util::{stream, StreamExt};
use sockrpc::transport::server::TcpIncoming;
use sockrpc::transport::ClientConnection;
use sockrpc::{Channel, Endpoint, Limits, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::oneshot;

/// Answers with what the call knew of its connection: "<kind> <peer> <local>".
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        let kind = request.conn_info().map(|info| info.transport);
        let message = format!(
            "{kind:?} {:?} {:?}",
            request.remote_addr(),
            request.local_addr()
        );
        Ok(Response::new(Output { message }))
    }
}

/// What `Svc` answers a TCP client at `client` of a server at `server`.
fn tcp_seen(client: SocketAddr, server: SocketAddr) -> String {
    format!("Some(Tcp) Some({client}) Some({server})")
}

/// A client of `addr` over one fresh connection, and that connection's local address.
async fn client_at(addr: SocketAddr) -> (TestClient<Channel>, SocketAddr) {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let local = stream.local_addr().expect("client address");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}")).expect("endpoint");
    (
        TestClient::new(Channel::from_connection(endpoint, conn)),
        local,
    )
}

/// What `Svc` answers `client`.
async fn call(client: &mut TestClient<Channel>) -> String {
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("served");
    answer.into_inner().message
}

/// A call through a fresh channel to `addr`, and the local address that channel's connection
/// had (it has one connection).
async fn call_from(addr: SocketAddr) -> (String, SocketAddr) {
    let (mut client, local) = client_at(addr).await;
    (call(&mut client).await, local)
}

#[tokio::test]
async fn serves_a_stream_of_accepted_connections_until_its_signal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // tonic's `TcpListenerStream::new(listener)`: every connection the listener accepts.
    let incoming = stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    for _ in 0..2 {
        // A connection each time: both come from the stream, both with their addresses.
        let (seen, client) = call_from(addr).await;
        assert_eq!(seen, tcp_seen(client, addr));
    }
    let _ = stop.send(());
    bounded("server stops", server)
        .await
        .expect("server task")
        .expect("served until its signal");
}

/// An error item is a failed accept, logged and gone past. Once the stream ends, the server
/// serves the connection it gave until that ends, and then returns, as tonic's returns when its
/// stream ends (serving once ran on after the stream's end until the future was dropped).
#[tokio::test]
async fn an_error_item_is_a_failed_accept_and_the_end_of_the_stream_ends_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connecting = tokio::spawn(client_at(addr));
    let (accepted, _) = bounded("accept", listener.accept()).await.expect("accept");
    let items: Vec<io::Result<TcpStream>> = vec![Err(io::Error::other("refused")), Ok(accepted)];
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(stream::iter(items)),
    );
    let (mut client, local) = bounded("connect", connecting).await.expect("client task");
    for _ in 0..2 {
        // The stream has ended by the second call: its connection is still served.
        assert_eq!(
            call(&mut client).await,
            tcp_seen(local, addr),
            "served past the error"
        );
    }
    assert!(
        !server.is_finished(),
        "the server stopped before its open connection ended"
    );
    drop(client);
    bounded("the server returns once its connection has ended", server)
        .await
        .expect("server task")
        .expect("served");

    // The same with a shutdown signal that never comes.
    let (accepted, client) = tokio::join!(
        async { listener.accept().await.expect("accept").0 },
        client_at(addr)
    );
    let (mut client, local) = client;
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming_shutdown(
                stream::iter([Ok::<_, io::Error>(accepted)]),
                std::future::pending(),
            ),
    );
    assert_eq!(call(&mut client).await, tcp_seen(local, addr));
    drop(client);
    bounded("the server returns once its connection has ended", server)
        .await
        .expect("server task")
        .expect("served");
}

/// tonic's `TcpIncoming`, as its newer tests serve with it: `TcpIncoming::from(listener)` with
/// its socket options, or `bind(addr)`; its connections keep their addresses, and the options
/// are set on each (`TCP_NODELAY` read back from the server's side of the connection).
#[tokio::test]
async fn tcp_incoming_serves_with_its_options_and_the_addresses() {
    for nodelay in [true, false] {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(nodelay))
            .with_keepalive(Some(Duration::from_secs(30)));
        assert_eq!(incoming.local_addr().expect("bound"), addr);
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        // The connections as the server gets them, their `TCP_NODELAY` noted on the way.
        let watched = incoming.map(move |item| {
            if let Ok(stream) = &item {
                let _ = seen_tx.send(stream.nodelay().expect("nodelay"));
            }
            item
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::builder()
                .add_service(TestServer::new(Svc))
                .serve_with_incoming_shutdown(watched, async {
                    let _ = stopped.await;
                }),
        );
        let (seen, client) = call_from(addr).await;
        assert_eq!(seen, tcp_seen(client, addr));
        assert_eq!(seen_rx.recv().await, Some(nodelay), "TCP_NODELAY as set");
        let _ = stop.send(());
        bounded("server stops", server)
            .await
            .expect("server task")
            .expect("served until its signal");
    }
    // `bind`, tonic 0.13's constructor, and tonic 0.12's `from_listener(listener, nodelay,
    // keepalive)`.
    let bound = TcpIncoming::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = bound.local_addr().expect("bound");
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(bound),
    );
    let (seen, client) = call_from(addr).await;
    assert_eq!(seen, tcp_seen(client, addr));
    server.abort();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let incoming = TcpIncoming::from_listener(listener, true, None).expect("incoming");
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(incoming),
    );
    let (seen, client) = call_from(addr).await;
    assert_eq!(seen, tcp_seen(client, addr));
    server.abort();
}

/// A Unix socket's connections, served as a stream of `UnixStream`s, are known as Unix ones
/// (client-side Unix sockets are unnamed: no addresses).
#[tokio::test]
async fn unix_streams_served_as_a_stream_are_unix_connections() {
    let dir = std::env::temp_dir().join(format!("sockrpc-incoming-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("incoming.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind");
    let incoming = stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(incoming),
    );
    let mut client = bounded(
        "connect",
        TestClient::connect(format!("unix://{}", path.display())),
    )
    .await
    .expect("connect");
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("served");
    assert_eq!(answer.into_inner().message, "Some(Unix) None None");
    server.abort();
    let _ = std::fs::remove_file(&path);
}

/// Any other byte stream is served too, knowing nothing of its connection.
#[tokio::test]
async fn a_duplex_served_as_a_stream_carries_no_addresses() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(stream::iter(vec![Ok::<_, io::Error>(server_io)])),
    );
    let conn = ClientConnection::spawn_io(client_io, Limits::default(), None);
    let endpoint = Endpoint::from_uri("tcp://127.0.0.1:1").expect("endpoint");
    let mut client = TestClient::new(Channel::from_connection(endpoint, conn));
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("served");
    assert_eq!(answer.into_inner().message, "Some(Other) None None");
    server.abort();
}

/// An accept that fails for want of descriptors (EMFILE, as `TcpIncoming` or
/// `TcpListenerStream` yield it) pauses the loop, as the server's own listener does, rather
/// than spin on the same error until descriptors free up: the item's `io::Error` keeps its OS
/// code through the stream. Here every item fails so, 1,000 at most; over 1 s of the paused
/// clock, a loop that pauses 50 ms after each takes about 20 (1,000 before).
#[tokio::test(start_paused = true)]
async fn out_of_descriptors_the_loop_pauses_rather_than_spins() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    const EMFILE: i32 = 24;
    let polled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polled);
    let failing = stream::iter(0..1000).map(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err::<TcpStream, _>(io::Error::from_raw_os_error(EMFILE))
    });
    // Then nothing more: the stream waits (a spinning loop has taken all 1,000 by then).
    let incoming = failing.chain(stream::pending());
    Server::builder()
        .add_service(TestServer::new(Svc))
        .serve_with_incoming_shutdown(incoming, tokio::time::sleep(Duration::from_secs(1)))
        .await
        .expect("served until its signal");
    let polled = polled.load(Ordering::SeqCst);
    assert!(
        polled <= 30,
        "{polled} failed accepts in 1 s: the loop spun"
    );
}

/// A stream whose items fail for ever, with any error, does not spin the accept loop: as
/// grpc-go's `Serve` after a failed accept, the server waits before it reads the next item,
/// 5 ms after the first failure and twice as long after each next one, at most 1 s (a
/// connection starts over). Here every item fails, 1,000 at most; over 1 s of the paused clock
/// a loop that waits so takes about 8 (all 1,000 before).
#[tokio::test(start_paused = true)]
async fn a_stream_of_failures_is_read_with_waits_between_them() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let polled = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&polled);
    let failing = stream::iter(0..1000).map(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err::<TcpStream, _>(io::Error::other("not today"))
    });
    let incoming = failing.chain(stream::pending());
    Server::builder()
        .add_service(TestServer::new(Svc))
        .serve_with_incoming_shutdown(incoming, tokio::time::sleep(Duration::from_secs(1)))
        .await
        .expect("served until its signal");
    let polled = polled.load(Ordering::SeqCst);
    assert!(
        polled <= 12,
        "{polled} failed accepts in 1 s: the loop spun"
    );
}
