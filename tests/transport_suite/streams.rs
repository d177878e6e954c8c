//! A stream's ordinary lives: the basic exchange with duplicated metadata both ways, a stream
//! with no message at all, servers that close early (with headers, without, failing), the
//! client's count of streams in flight, and many streams in sequence on one connection.

use crate::support::*;
use bytes::Bytes;
use sockrpc::protocol::{Code, MetadataMap, Status};

/// Metadata with repeated keys, text and binary (grpc-java's `ascii-key` / `key-bin` values).
fn duplicated(side: &str) -> MetadataMap {
    let mut map = MetadataMap::new();
    for value in [side, "dupvalue", "dupvalue"] {
        map.append_str("ascii-key", value).expect("valid");
    }
    for value in [format!("äbinary{side}").into_bytes(), b"dup,value".to_vec()] {
        map.append_bin("key-bin", value.into()).expect("valid");
    }
    map
}

fn assert_duplicated(map: &MetadataMap, side: &str) {
    let text: Vec<&[u8]> = map.get_all("ascii-key").collect();
    assert_eq!(text, [side.as_bytes(), b"dupvalue", b"dupvalue"], "{map:?}");
    let binary: Vec<Vec<u8>> = map.get_all("key-bin").map(<[u8]>::to_vec).collect();
    assert_eq!(
        binary,
        [format!("äbinary{side}").into_bytes(), b"dup,value".to_vec()],
        "{map:?}"
    );
}

/// `basicStream`: headers, a message each way, the half-close, trailers; every repeated
/// metadata value arrives, in order.
#[tokio::test]
async fn basic_stream() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &duplicated("client"));
    let mut call = server.take_call().await;
    assert_eq!(call.path.as_str(), "/service/method");
    assert_duplicated(&call.metadata, "client");
    assert_eq!(call.timeout, None);

    let responder = call.respond(duplicated("server"), duplicated("trailers"));
    send(&mut tx, &Bytes::from_static(b"Hello!"))
        .await
        .expect("send");
    assert_eq!(
        call.next_request().await.expect("a message").expect("ok"),
        Bytes::from_static(b"Hello!")
    );
    assert!(!call.request_within_quiet().await, "no further message");
    tx.close();
    assert!(call.next_request().await.is_none(), "half-close");

    assert_duplicated(&headers(&mut rx).await.expect("headers"), "server");
    responder.send(Bytes::from_static(b"Hi. Who are you?"));
    assert_eq!(
        next(&mut rx).await.expect("a message").expect("ok"),
        Bytes::from_static(b"Hi. Who are you?")
    );
    responder.end();
    let (rest, end) = finish(&mut rx).await;
    assert!(rest.is_empty(), "no additional message");
    assert_duplicated(&end.expect("OK"), "trailers");
    call.handler_gone().await;
    server.stop().await;
}

/// `zeroMessageStream`: half-closed at once, answered with headers and OK, no message either way.
#[tokio::test]
async fn zero_message_stream() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(meta(&[("x-h", "1")]), meta(&[("x-t", "2")]));
    assert!(call.next_request().await.is_none(), "only the half-close");
    assert_eq!(
        headers(&mut rx).await.expect("headers").get_str("x-h"),
        Some("1")
    );
    responder.end();
    let (messages, end) = finish(&mut rx).await;
    assert!(messages.is_empty());
    assert_eq!(end.expect("OK").get_str("x-t"), Some("2"));
    server.stop().await;
}

/// `earlyServerClose_withServerHeaders`: the server answers headers and OK without reading
/// the request or waiting for the half-close; what the client sends afterwards is refused
/// locally or dropped by the server, and the connection serves the next stream.
#[tokio::test]
async fn early_server_close_with_headers() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    call.respond(MetadataMap::new(), MetadataMap::new()).end();
    headers(&mut rx).await.expect("headers");
    let (messages, end) = finish(&mut rx).await;
    assert!(messages.is_empty());
    end.expect("OK");
    call.handler_gone().await;
    // The request stream the test still holds shares the connection's writer.
    drop(call);
    // Too late for the server: nothing it would read, nothing that breaks the connection.
    let late = send(&mut tx, &Bytes::from_static(b"late")).await;
    assert_eq!(late.expect_err("refused locally").code(), Code::Cancelled);
    tx.close();
    next_stream_works(&client, &mut server).await;
    assert!(!conn.is_terminated());
    assert!(!client.peer_broke_protocol());
    drop(tx);
    server.stop().await;
    conn.terminated().await;
}

/// `earlyServerClose_noServerHeaders`: a status before any headers reaches the client whole:
/// code, message and repeated trailers.
#[tokio::test]
async fn early_server_close_without_headers() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (_tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    let mut status = Status::new(Code::FailedPrecondition, "Hellogoodbye");
    *status.metadata_mut() = duplicated("trailers");
    call.close(status);
    let err = headers(&mut rx).await.expect_err("the status, no headers");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "Hellogoodbye");
    assert_duplicated(err.metadata(), "trailers");
    server.stop().await;
}

/// `earlyServerClose_serverFailure` and `…_withClientCancelOnListenerClosed`: the failure
/// reaches the client exactly; a cancel the client sends after it is harmless.
#[tokio::test]
async fn early_server_failure_then_a_client_cancel() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let conn = server.take_conn().await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let mut call = server.take_call().await;
    call.close(Status::internal("I'm not listening"));
    let (messages, end) = finish(&mut rx).await;
    assert!(messages.is_empty());
    let err = end.expect_err("the failure");
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "I'm not listening");
    tx.cancel();
    tx.cancel();
    next_stream_works(&client, &mut server).await;
    assert!(!conn.is_terminated());
    assert_eq!(client.in_flight(), 0);
    server.stop().await;
}

/// `transportInUse_normalClose` / `transportInUse_clientCancel`: the client counts a stream in
/// flight from its start to its end, whichever side ends it.
#[tokio::test]
async fn streams_in_flight_are_counted_until_they_end() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    assert_eq!(client.in_flight(), 0);
    let (mut tx1, mut rx1) = open(&client, &MetadataMap::new());
    let (mut tx2, mut rx2) = open(&client, &MetadataMap::new());
    assert_eq!(client.in_flight(), 2);
    let mut call1 = server.take_call().await;
    let mut call2 = server.take_call().await;
    tx1.close();
    call1.respond(MetadataMap::new(), MetadataMap::new()).end();
    finish(&mut rx1).await.1.expect("OK");
    assert_eq!(client.in_flight(), 1, "stream 2 is still open");
    tx2.close();
    call2.respond(MetadataMap::new(), MetadataMap::new()).end();
    finish(&mut rx2).await.1.expect("OK");
    assert_eq!(client.in_flight(), 0);

    // Cancelled by the client, one then the other.
    let (mut tx3, _rx3) = open(&client, &MetadataMap::new());
    let (mut tx4, _rx4) = open(&client, &MetadataMap::new());
    let mut call3 = server.take_call().await;
    let mut call4 = server.take_call().await;
    assert_eq!(client.in_flight(), 2);
    tx3.cancel();
    assert_eq!(client.in_flight(), 1);
    tx4.cancel();
    assert_eq!(client.in_flight(), 0);
    call3.handler_gone().await;
    call4.handler_gone().await;
    server.stop().await;
}

/// Many streams one after another on one connection (the Java suite's TODO "multiple streams
/// on same transport"): each carries its own message both ways, and nothing accumulates.
#[tokio::test]
async fn many_sequential_streams_on_one_connection() {
    const STREAMS: usize = 300;
    let mut server = Server::start();
    let client = client(server.addr).await;
    let mut conn = server.take_conn().await;
    for i in 0..STREAMS {
        let body = Bytes::from(format!("request {i}"));
        let (mut tx, mut rx) = open(&client, &MetadataMap::new());
        send(&mut tx, &body).await.expect("send");
        tx.close();
        let mut call = server.take_call().await;
        let responder = call.respond(MetadataMap::new(), MetadataMap::new());
        let got = call.next_request().await.expect("a message").expect("ok");
        assert_eq!(got, body, "stream {i}");
        assert!(call.next_request().await.is_none());
        responder.send(Bytes::from(format!("answer {i}")));
        responder.end();
        let (messages, end) = finish(&mut rx).await;
        assert_eq!(messages, [Bytes::from(format!("answer {i}"))], "stream {i}");
        end.expect("OK");
        assert_eq!(client.in_flight(), 0, "stream {i}");
    }
    assert_eq!(client.calls_started(), STREAMS as u64);
    assert!(!conn.is_terminated(), "one connection carried them all");
    server.stop().await;
    conn.terminated().await;
}

/// A stream opened, answered OK at once, and read to its end: the connection is fine.
pub(crate) async fn next_stream_works(
    client: &sockrpc::transport::ClientConnection,
    server: &mut Server,
) {
    let (mut tx, mut rx) = open(client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    call.respond(MetadataMap::new(), MetadataMap::new()).end();
    let (_, end) = finish(&mut rx).await;
    end.expect("the next stream succeeds");
}
