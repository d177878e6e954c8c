//! Cancellation from either end and what each side may still do afterwards: the client's
//! cancel (before the server answered, from within a message read, after a half-close, after
//! the call ended), a server ending the stream with an error mid-response, a server killed
//! under its streams, and frames the server sends for a call the client already cancelled.

use crate::streams::next_stream_works;
use crate::support::*;
use bytes::{Bytes, BytesMut};
use sockrpc::protocol::frame::{self, PREFACE};
use sockrpc::protocol::{Code, MetadataMap, Status};
use sockrpc::transport::{ClientConnection, ServerConfig};
use sockrpc::Limits;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `clientCancel`: the client's stream ends with the status it cancelled with; the server
/// stops the handler and its request stream reads as cancelled, not as a half-close; a second
/// cancel changes nothing.
#[tokio::test]
async fn client_cancel() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    tx.cancel_with(Status::cancelled("Nevermind"));
    let err = next(&mut rx).await.expect("an end").expect_err("cancelled");
    assert_eq!(err.code(), Code::Cancelled);
    assert_eq!(err.message(), "Nevermind");
    call.handler_gone().await;
    let read = call.next_request().await.expect("the request stream fails");
    assert_eq!(read.expect_err("not a message").code(), Code::Cancelled);
    tx.cancel_with(Status::cancelled("again"));
    assert!(next(&mut rx).await.is_none(), "the stream stays ended");
    bounded("the response producer dropped", async {
        while !responder.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    next_stream_works(&client, &mut server).await;
    server.stop().await;
}

/// `clientCancelFromWithinMessageRead`: a client that cancels on reading the first message is
/// given no later message, even one that had already arrived, only its own status.
#[tokio::test]
async fn client_cancel_from_within_message_read() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"foo"));
    responder.send(Bytes::from_static(b"bar"));
    headers(&mut rx).await.expect("headers");
    // Both messages have arrived before the first is read.
    bounded("both messages queued", async {
        while rx.queued().0 < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(
        next(&mut rx).await.expect("a message").expect("ok"),
        Bytes::from_static(b"foo")
    );
    tx.cancel_with(Status::cancelled("nevermind"));
    let after = next(&mut rx).await.expect("the end");
    let err = after.expect_err("no further message after the cancel");
    assert_eq!(err.code(), Code::Cancelled);
    assert_eq!(err.message(), "nevermind");
    assert!(next(&mut rx).await.is_none());
    call.handler_gone().await;
    responder.end();
    next_stream_works(&client, &mut server).await;
    server.stop().await;
}

/// `serverCancel`, as sockrpc's protocol has it (a server does not reset a stream; it ends it
/// with a status): a stream ended mid-response with `DEADLINE_EXCEEDED` delivers the messages
/// before it, then that status, and the connection goes on.
#[tokio::test]
async fn server_ends_a_stream_with_an_error_mid_response() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (_tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"one"));
    responder.fail(Status::deadline_exceeded("It was bound to happen"));
    let (messages, end) = finish(&mut rx).await;
    assert_eq!(messages, [Bytes::from_static(b"one")]);
    let err = end.expect_err("the server's status");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert_eq!(err.message(), "It was bound to happen");
    call.handler_gone().await;
    next_stream_works(&client, &mut server).await;
    server.stop().await;
}

/// `interactionsAfterServerStreamCloseAreNoops`: once the server ended the call, what its
/// producer still offers goes nowhere, and the client sees the one status.
#[tokio::test]
async fn interactions_after_the_server_closed_are_noops() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (_tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"only"));
    let (messages, end) = {
        let responder = responder;
        responder.fail(Status::internal("closed"));
        finish(&mut rx).await
    };
    assert_eq!(messages, [Bytes::from_static(b"only")]);
    assert_eq!(end.expect_err("closed").code(), Code::Internal);
    call.handler_gone().await;
    assert!(next(&mut rx).await.is_none());
    next_stream_works(&client, &mut server).await;
    assert!(!client.peer_broke_protocol());
    server.stop().await;
}

/// `interactionsAfterClientStreamCancelAreNoops`: after its cancel the client sends nothing
/// more (a message is refused locally, a half-close or second cancel is dropped): the server
/// sees neither a message nor a half-close, and no protocol error.
#[tokio::test]
async fn interactions_after_the_client_cancelled_are_noops() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let conn = server.take_conn().await;
    let (mut tx, _rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let _responder = call.respond(MetadataMap::new(), MetadataMap::new());
    tx.cancel_with(Status::unknown("gone"));
    call.handler_gone().await;
    send(&mut tx, &Bytes::from_static(b"request"))
        .await
        .expect_err("a message after the cancel is refused");
    tx.close();
    tx.cancel();
    let read = call.next_request().await.expect("the request stream ends");
    assert_eq!(read.expect_err("cancelled").code(), Code::Cancelled);
    next_stream_works(&client, &mut server).await;
    assert!(!conn.is_terminated());
    assert!(!client.peer_broke_protocol());
    server.stop().await;
}

/// Half-close then cancel: a half-closed stream is still the client's to cancel; the server
/// stops its handler and its response producer.
#[tokio::test]
async fn a_cancel_after_the_half_close_stops_the_server_side() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    send(&mut tx, &Bytes::from_static(b"last"))
        .await
        .expect("send");
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    assert_eq!(
        call.next_request().await.expect("message").expect("ok"),
        Bytes::from_static(b"last")
    );
    assert!(call.next_request().await.is_none(), "half-closed");
    responder.send(Bytes::from_static(b"partial"));
    assert_eq!(
        next(&mut rx).await.expect("message").expect("ok"),
        Bytes::from_static(b"partial")
    );
    drop(rx);
    call.handler_gone().await;
    bounded("the producer dropped", async {
        while !responder.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(client.in_flight(), 0);
    next_stream_works(&client, &mut server).await;
    server.stop().await;
}

/// `shutdownNowKillsServerStream`, as a server whose grace period runs out: the connection is
/// closed under the stream, the client's stream fails (not OK, not hanging), the handler is
/// dropped, and the server's connection ends.
#[tokio::test]
async fn a_server_past_its_grace_period_kills_its_streams() {
    let mut config = ServerConfig::default();
    config.grace_period = Duration::from_millis(100);
    let mut server = Server::start_with(config);
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    let (_tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let _responder = call.respond(MetadataMap::new(), MetadataMap::new());
    headers(&mut rx).await.expect("headers");
    server.begin_shutdown();
    server.stopped().await;
    call.handler_gone().await;
    drop(call);
    let (_, end) = finish(&mut rx).await;
    let err = end.expect_err("the stream cannot end OK");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    conn.terminated().await;
    assert!(client.is_closed());
}

/// Reads one client frame: (kind, flags, call id, body); the preface is skipped.
async fn read_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u8, u8, u32, Vec<u8>) {
    bounded("a client frame", async {
        let mut chunk = [0u8; 4096];
        loop {
            if buf.starts_with(&PREFACE) {
                buf.drain(..PREFACE.len());
            }
            if buf.len() >= 12 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if buf.len() >= 12 + len {
                    let id = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let found = (buf[4], buf[5], id, buf[12..12 + len].to_vec());
                    buf.drain(..12 + len);
                    return found;
                }
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the client closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
}

/// Reads client frames until one of `kind`; returns its call id.
async fn read_until(stream: &mut TcpStream, buf: &mut Vec<u8>, kind: u8) -> u32 {
    for _ in 0..64 {
        let (k, _, id, _) = read_frame(stream, buf).await;
        if k == kind {
            return id;
        }
    }
    panic!("no frame of kind {kind} among 64");
}

const OPEN: u8 = 1;
const CANCEL: u8 = 5;

/// `frameAfterRstStreamShouldNotBreakClientChannel`: a server that answers (HEADERS, MESSAGE,
/// END) a call the client has cancelled does not break the client's connection: the cancelled
/// stream keeps the client's own status, and the next stream on the connection gets its headers.
#[tokio::test]
async fn frames_after_the_clients_cancel_do_not_break_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let fake = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut out = BytesMut::new();
        out.extend_from_slice(&PREFACE);
        socket.write_all(&out).await.expect("preface");
        let mut buf = Vec::new();
        let first = read_until(&mut socket, &mut buf, OPEN).await;
        let cancelled = read_until(&mut socket, &mut buf, CANCEL).await;
        assert_eq!(first, cancelled);
        // Answer the cancelled call as if the CANCEL had not arrived.
        let mut out = BytesMut::new();
        let mut head = MetadataMap::new();
        head.insert_str("x-late", "1").expect("valid");
        frame::encode_headers(&mut out, first, &head);
        frame::encode_message(&mut out, first, false, b"bar");
        frame::encode_end(&mut out, first, Code::Ok, "", &[], &MetadataMap::new());
        socket.write_all(&out).await.expect("late frames");
        let second = read_until(&mut socket, &mut buf, OPEN).await;
        assert!(second > first);
        let mut out = BytesMut::new();
        let mut head = MetadataMap::new();
        head.insert_str("x-second", "1").expect("valid");
        frame::encode_headers(&mut out, second, &head);
        socket.write_all(&out).await.expect("headers");
        // Hold the socket until the client is done.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut sink)).await;
    });
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let client = ClientConnection::spawn_tcp(stream, Limits::default());
    bounded("handshake", client.ready()).await.expect("ready");
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    send(&mut tx, &Bytes::from_static(b"foo"))
        .await
        .expect("send");
    tx.cancel_with(Status::cancelled("cancelled by the test"));
    let err = next(&mut rx)
        .await
        .expect("the end")
        .expect_err("cancelled");
    assert_eq!(err.message(), "cancelled by the test");
    tokio::time::sleep(QUIET).await;

    let (_tx2, mut rx2) = open(&client, &MetadataMap::new());
    let head = headers(&mut rx2)
        .await
        .expect("the second stream's headers");
    assert_eq!(head.get_str("x-second"), Some("1"));
    assert!(!client.is_closed(), "{:?}", client.closed_reason());
    assert!(!client.peer_broke_protocol());
    assert!(
        next(&mut rx).await.is_none(),
        "nothing for the cancelled stream"
    );
    client.close();
    drop((tx, rx, _tx2, rx2));
    bounded("the fake server", fake).await.expect("fake server");
}
