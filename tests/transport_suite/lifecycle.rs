//! A connection's life as grpc-java's transport contract has it: started and stopped before and
//! after its handshake, new streams refused once it is shutting down or gone, an open stream
//! holding a shut-down client and server alive until it ends, addresses both ends report, and a
//! server that closes during the handshake.

use crate::support::*;
use bytes::Bytes;
use sockrpc::protocol::{Code, MetadataMap};
use sockrpc::transport::{ClientConnection, ServerConfig, SocketConfig};
use sockrpc::Limits;
use std::time::Duration;

/// `clientStartAndStopOnceConnected`: a client closed after its handshake closes its socket,
/// and the server's connection task ends.
#[tokio::test]
async fn client_start_and_stop_once_connected() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    assert!(!conn.is_terminated());
    client.close();
    assert!(client.is_closed());
    conn.terminated().await;
    let reason = client.closed_reason().expect("a reason");
    assert_eq!(reason.code(), Code::Unavailable, "{reason:?}");
    server.stop().await;
}

/// `clientStartStop`: a client closed before the server's preface arrived ends as well, and so
/// does the server's side.
#[tokio::test]
async fn client_start_stop_before_the_handshake() {
    let mut server = Server::start();
    let stream = bounded("connect", tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let client = ClientConnection::spawn_tcp(stream, Limits::default());
    client.close();
    let mut conn = server.take_conn().await;
    conn.terminated().await;
    assert!(client.is_closed());
    server.stop().await;
}

/// `newStream_duringShutdown`: once the client shuts down, a new stream fails `UNAVAILABLE` (not
/// processed: nothing was sent) while the stream already open runs to its end.
#[tokio::test]
async fn new_stream_during_shutdown_fails_and_the_open_one_completes() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    client.close();
    let refused = client
        .open_stream(&METHOD, &MetadataMap::new(), None, None)
        .expect_err("a stream after close is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.is_not_processed(), "{refused:?}");
    assert!(
        server.no_call().await,
        "the refused stream reached the server"
    );
    assert!(
        !conn.is_terminated(),
        "the open stream holds the connection"
    );

    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    tx.close();
    assert!(
        call.next_request().await.is_none(),
        "half-close reaches the server"
    );
    responder.end();
    let (messages, end) = finish(&mut rx).await;
    assert!(messages.is_empty());
    end.expect("the first stream ends OK");
    conn.terminated().await;
    server.stop().await;
}

/// The same with a unary call in flight when the client shuts down: its answer arrives, and
/// then the connection closes.
#[tokio::test]
async fn a_unary_call_in_flight_at_shutdown_completes_and_the_connection_closes() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    let call = tokio::spawn(client.unary(METHOD, sockrpc::Request::new(Bytes::from_static(b"q"))));
    let mut served = server.take_call().await;
    client.close();
    assert_eq!(
        served
            .next_request()
            .await
            .expect("the request")
            .expect("ok"),
        Bytes::from_static(b"q")
    );
    let responder = served.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"a"));
    responder.end();
    let answer = bounded("the unary answer", call)
        .await
        .expect("call task")
        .expect("the call succeeds");
    assert_eq!(answer.into_inner(), Bytes::from_static(b"a"));
    conn.terminated().await;
    server.stop().await;
}

/// `newStream_afterTermination`: on a connection that has closed, a new stream or unary call
/// fails `UNAVAILABLE` with the reason it closed.
#[tokio::test]
async fn new_stream_after_termination_fails_with_the_shutdown_reason() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    client.close();
    conn.terminated().await;
    let refused = client
        .open_stream(&METHOD, &MetadataMap::new(), None, None)
        .expect_err("refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("closed by the client"),
        "{refused:?}"
    );
    let unary = bounded(
        "a unary call on a closed connection",
        client.unary(METHOD, sockrpc::Request::new(Bytes::from_static(b"x"))),
    )
    .await
    .expect_err("refused");
    assert_eq!(unary.code(), Code::Unavailable, "{unary:?}");
    assert!(server.no_call().await);
    server.stop().await;
}

/// `openStreamPreventsTermination`: client and server both shut down while a stream is open;
/// the listener's port is free at once for a new server, the stream still works both ways, and
/// only its end lets the connection (and the server) finish.
#[tokio::test]
async fn an_open_stream_prevents_termination() {
    let mut config = ServerConfig::default();
    config.grace_period = Duration::from_secs(60);
    let mut server = Server::start_with(config);
    let addr = server.addr;
    let client = client(addr).await;
    let mut conn = server.take_conn().await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;

    client.close();
    server.begin_shutdown();
    // The listener is gone: another server can take the port while the stream lives on.
    let rebound = bounded("rebinding the port", async {
        loop {
            match sockrpc::transport::bind_tcp(addr, &SocketConfig::default()) {
                Ok(listener) => return listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let second = Server::start_on(rebound, ServerConfig::default());

    let responder = call.respond(meta(&[("x-head", "1")]), MetadataMap::new());
    responder.send(Bytes::from_static(b"still here"));
    assert_eq!(
        headers(&mut rx).await.expect("headers").get_str("x-head"),
        Some("1")
    );
    assert_eq!(
        next(&mut rx).await.expect("a message").expect("ok"),
        Bytes::from_static(b"still here")
    );
    tx.close();
    assert!(call.next_request().await.is_none(), "half-close arrives");
    tokio::time::sleep(QUIET).await;
    assert!(
        !conn.is_terminated(),
        "the open stream keeps the connection"
    );
    assert_eq!(client.in_flight(), 1);

    // The client cancels: the stream ends, and with it the connection and the server.
    drop(rx);
    drop(tx);
    call.handler_gone().await;
    conn.terminated().await;
    server.stopped().await;
    second.stop().await;
}

/// `checkClientAttributes` / `socketStats` / the addresses `basicStream` checks: each end knows
/// both addresses, and they agree.
#[tokio::test]
async fn both_ends_report_matching_addresses() {
    let mut server = Server::start();
    let stream = bounded("connect", tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let client_local = stream.local_addr().expect("local address");
    let client = ClientConnection::spawn_tcp(stream, Limits::default());
    bounded("handshake", client.ready()).await.expect("ready");
    assert_eq!(client.peer_addr(), Some(server.addr));
    let conn = server.take_conn().await;
    assert_eq!(conn.peer, Some(client_local));
    assert_eq!(conn.local, Some(server.addr));
    let (_tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    assert_eq!(call.path.as_str(), "/service/method");
    assert_eq!(call.peer, Some(client_local));
    assert_eq!(call.local, Some(server.addr));
    call.respond(MetadataMap::new(), MetadataMap::new()).end();
    finish(&mut rx).await.1.expect("ok");
    server.stop().await;
}

/// `transportTracer_streamStarted`: the client counts the streams it started, one per stream.
#[tokio::test]
async fn the_client_counts_streams_started() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    assert_eq!(client.calls_started(), 0);
    for started in 1..=2 {
        let (_tx, mut rx) = open(&client, &MetadataMap::new());
        let mut call = server.take_call().await;
        assert_eq!(client.calls_started(), started);
        call.respond(MetadataMap::new(), MetadataMap::new()).end();
        finish(&mut rx).await.1.expect("ok");
    }
    server.stop().await;
}

/// `serverAlreadyListening`: a second listener on a port in use fails to bind (`SO_REUSEADDR`
/// does not let two servers share a live port).
#[tokio::test]
async fn a_second_server_on_a_port_in_use_fails_to_bind() {
    let server = Server::start();
    let err = sockrpc::transport::bind_tcp(server.addr, &SocketConfig::default())
        .expect_err("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    server.stop().await;
}

/// The server closes during the handshake (before or in the middle of its preface): the
/// client's handshake and its streams fail `UNAVAILABLE`, never hang.
#[tokio::test]
async fn a_server_that_closes_during_the_handshake_fails_the_connection() {
    for sent in [&b""[..], &b"SOCK"[..]] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut socket, _) = listener.accept().await.expect("accept");
            socket.write_all(sent).await.expect("write");
            drop(socket);
        });
        let stream = bounded("connect", tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect");
        let client = ClientConnection::spawn_tcp(stream, Limits::default());
        let (_tx, mut rx) = open(&client, &MetadataMap::new());
        let err = bounded("handshake", client.ready())
            .await
            .expect_err("no handshake");
        assert_eq!(err.code(), Code::Unavailable, "{sent:?}: {err:?}");
        let err = headers(&mut rx).await.expect_err("the stream fails");
        assert_eq!(err.code(), Code::Unavailable, "{sent:?}: {err:?}");
        server.await.expect("server task");
    }
}

/// A request stream held past its connection's end (a handler that moved it into a task of its
/// own and stopped reading it) does not hold the connection's socket: once the client is gone
/// and the server's connection task has ended, the socket is released.
#[tokio::test]
async fn a_request_stream_held_past_its_connection_does_not_hold_the_socket() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    let (tx, rx) = open(&client, &MetadataMap::new());
    // The test keeps the call, and with it the request stream, unread, to the end.
    let call = server.take_call().await;
    drop((tx, rx, client));
    conn.terminated().await;
    drop(call);
    server.stop().await;
}

/// The client's side of the same: a stream whose halves the caller still holds does not hold
/// the client's socket once the server has closed the connection under it.
#[tokio::test]
async fn stream_halves_held_past_their_connection_do_not_hold_the_clients_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.expect("accept");
        socket
            .write_all(&sockrpc::protocol::frame::PREFACE)
            .await
            .expect("preface");
        // The client's preface and OPEN, then the server goes away.
        let mut buf = [0u8; 64];
        let _ = socket.read(&mut buf).await;
        drop(socket);
    });
    let stream = bounded("connect", tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect");
    let (client, mut released) = tracked_client(stream);
    let (tx, mut rx) = open(&client, &MetadataMap::new());
    let err = headers(&mut rx).await.expect_err("the server went away");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    bounded("the server task", server).await.expect("server");
    // The caller still holds the connection and both halves of the stream.
    bounded(
        "the client's socket released",
        released.wait_for(|gone| *gone),
    )
    .await
    .expect("the watch lives as long as the writer");
    assert!(client.is_closed());
    drop((tx, rx, client));
}
