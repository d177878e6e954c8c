//! Metadata against the receiver's limit (16 KiB: the block's bytes and 32 per entry, as HTTP/2
//! counts a header list): the largest block fits each way; one byte more is refused by a sender that
//! knows the limit; and a block past the receiver's limit, from a peer configured larger, fails
//! that call alone with `RESOURCE_EXHAUSTED` (as HTTP/2 makes a header list too large a stream
//! error) without the receiver ever delivering any of it, and the connection goes on. Until
//! session 35 sockrpc closed the connection that sent it, as a protocol error. Since session
//! 36 a server that read its client's limit in SETTINGS answers `INTERNAL` rather than send it.

use crate::support::*;
use bytes::Bytes;
use sockrpc::protocol::{Code, MetadataMap};
use sockrpc::transport::ServerConfig;
use sockrpc::Limits;

/// The default metadata limit.
const LIMIT: usize = 16 * 1024;

/// The value length of the one `big-bin` entry in a block that counts `size`: the key's
/// length and bytes (1 + 7), the value's length (2) and the entry's 32 (the block's count is
/// not counted).
fn value_len(size: usize) -> usize {
    size - 1 - "big-bin".len() - 2 - 32
}

/// One `big-bin` entry whose block counts exactly `size` against the limit.
fn block_of(size: usize) -> MetadataMap {
    let mut map = MetadataMap::new();
    map.insert_bin("big-bin", Bytes::from(vec![7u8; value_len(size)]).into())
        .expect("valid");
    map
}

/// grpc-java's cases accept `UNKNOWN`, `RESOURCE_EXHAUSTED` or `INTERNAL` for metadata refused
/// by its receiver (not `UNAVAILABLE`: that reads as "try again", and the same metadata would be
/// refused again). sockrpc answers `RESOURCE_EXHAUSTED`, the call alone failing.
fn refused_as_grpc_java_allows(code: Code) -> bool {
    code == Code::ResourceExhausted
}

/// Response metadata past the client's limit: refused by the server, which knows that limit
/// from the client's SETTINGS since session 36 (`INTERNAL`, as grpc-go; grpc-java's cases accept
/// it), or by the client when its server did not know it yet (`RESOURCE_EXHAUSTED`).
fn refused_for_the_client(err: &sockrpc::Status) -> bool {
    match err.code() {
        Code::Internal => err.message().contains("the client announced"),
        code => refused_as_grpc_java_allows(code),
    }
}

/// One more call on `client` goes through: the connection lives on after a refusal.
async fn the_connection_goes_on(
    server: &mut Server,
    client: &sockrpc::transport::ClientConnection,
) {
    let (mut tx, mut rx) = open(client, &MetadataMap::new());
    send(&mut tx, &Bytes::from_static(b"after"))
        .await
        .expect("sent");
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"still served"));
    responder.end();
    let (messages, end) = finish(&mut rx).await;
    end.expect("the next call ends OK");
    assert_eq!(messages, [Bytes::from_static(b"still served")]);
}

/// Large metadata: a block of exactly the limit goes both ways (request, headers, trailers).
#[tokio::test]
async fn metadata_at_the_limit_goes_both_ways() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &block_of(LIMIT));
    tx.close();
    let mut call = server.take_call().await;
    assert_eq!(
        call.metadata.get_bin_bytes("big-bin").map(|v| v.len()),
        Some(value_len(LIMIT))
    );
    call.respond(block_of(LIMIT), block_of(LIMIT)).end();
    let head = headers(&mut rx).await.expect("headers");
    assert_eq!(
        head.get_bin_bytes("big-bin").map(|v| v.len()),
        Some(value_len(LIMIT))
    );
    let trailers = finish(&mut rx).await.1.expect("OK");
    assert_eq!(
        trailers.get_bin_bytes("big-bin").map(|v| v.len()),
        Some(value_len(LIMIT))
    );
    server.stop().await;
}

/// One byte past the limit, the client refuses to send it (`RESOURCE_EXHAUSTED`), and nothing
/// reaches the server.
#[tokio::test]
async fn the_client_refuses_to_send_metadata_past_the_limit() {
    let mut server = Server::start();
    let client = client(server.addr).await;
    let err = client
        .open_stream(&METHOD, &block_of(LIMIT + 1), None, None)
        .expect_err("refused");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(server.no_call().await);
    server.stop().await;
}

/// `serverChecksInboundMetadataSize`: a client configured for more sends metadata past the
/// server's limit; the call fails, and no call reaches the handler.
#[tokio::test]
async fn the_server_checks_inbound_metadata_size() {
    let mut server = Server::start();
    let client = client_with(
        server.addr,
        Limits::default().with_max_metadata_size(4 * LIMIT),
    )
    .await;
    let conn = server.take_conn().await;
    let err = match client.open_stream(&METHOD, &block_of(LIMIT + 1), None, None) {
        // The server's SETTINGS came first and announced its limit: refused unsent (session
        // 36), with the same reason.
        Err(err) => err,
        Ok((mut tx, mut rx)) => {
            let _ = send(&mut tx, &Bytes::from_static(b"foo")).await;
            tx.close();
            let (messages, end) = finish(&mut rx).await;
            assert!(messages.is_empty());
            end.expect_err("refused")
        }
    };
    assert!(refused_as_grpc_java_allows(err.code()), "{err:?}");
    assert!(
        err.message()
            .contains("request metadata of 16385 bytes exceeds the limit of 16384"),
        "{err:?}"
    );
    assert!(
        !err.is_not_processed(),
        "a call the server refused for its metadata would be sent again: {err:?}"
    );
    assert!(server.no_call().await, "the handler was reached");
    the_connection_goes_on(&mut server, &client).await;
    assert!(!conn.is_terminated(), "the server closed the connection");
    server.stop().await;
}

/// The same through a channel: the refused unary call fails with the server's reason and is
/// not sent again, on this connection or a new one (it was received and refused, not left
/// unprocessed).
#[tokio::test]
async fn a_channel_does_not_resend_a_call_refused_for_its_metadata() {
    let mut server = Server::start();
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", server.addr.port())
        .pool_size(1)
        .limits(Limits::default().with_max_metadata_size(4 * LIMIT));
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    let first = server.take_conn().await;
    let mut client = sockrpc_interop::pb::test_service_client::TestServiceClient::new(channel);
    let mut request = sockrpc::Request::new(sockrpc_interop::pb::SimpleRequest::default());
    *request.metadata_mut() = block_of(LIMIT + 1);
    let err = bounded("the refused call", client.unary_call(request))
        .await
        .expect_err("refused");
    assert!(refused_as_grpc_java_allows(err.code()), "{err:?}");
    assert!(server.no_call().await, "the handler was reached");
    // The connection lives on; were the call sent again on a new one, it would fail there too.
    let second = tokio::time::timeout(std::time::Duration::from_secs(2), server.take_conn()).await;
    if let Ok(second) = second {
        tokio::time::sleep(QUIET).await;
        assert!(
            !second.is_terminated(),
            "the call was sent again and closed a second connection"
        );
    }
    assert!(!first.is_terminated(), "the server closed the connection");
    server.stop().await;
}

/// `clientChecksInboundMetadataSize_header`: a server configured for more sends headers past
/// the client's limit; the call fails and the headers are never delivered.
#[tokio::test]
async fn the_client_checks_inbound_header_size() {
    let mut config = ServerConfig::default();
    config.limits = Limits::default().with_max_metadata_size(4 * LIMIT);
    let mut server = Server::start_with(config);
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    let responder = call.respond(block_of(LIMIT + 1), MetadataMap::new());
    responder.send(Bytes::from_static(b"response"));
    responder.end();
    let err = headers(&mut rx).await.expect_err("the headers are refused");
    assert!(refused_for_the_client(&err), "{err:?}");
    assert!(err.message().contains("response headers"), "{err:?}");
    assert!(err.metadata().get_bin_bytes("big-bin").is_none());
    the_connection_goes_on(&mut server, &client).await;
    server.stop().await;
}

/// `clientChecksInboundMetadataSize_trailer`: trailers past the client's limit fail the call,
/// and none of them (not the small tell-tale entry either) is delivered.
#[tokio::test]
async fn the_client_checks_inbound_trailer_size() {
    let mut config = ServerConfig::default();
    config.limits = Limits::default().with_max_metadata_size(4 * LIMIT);
    let mut server = Server::start_with(config);
    let client = client(server.addr).await;
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    tx.close();
    let mut call = server.take_call().await;
    let mut trailers = block_of(LIMIT + 1);
    trailers.insert_str("tell-tale", "true").expect("valid");
    let responder = call.respond(MetadataMap::new(), trailers);
    responder.send(Bytes::from_static(b"response"));
    responder.end();
    let (_, end) = finish(&mut rx).await;
    let err = end.expect_err("the trailers are refused");
    assert!(refused_for_the_client(&err), "{err:?}");
    assert!(err.message().contains("response trailers"), "{err:?}");
    assert!(err.metadata().get_str("tell-tale").is_none());
    assert!(rx.trailers().is_none());
    the_connection_goes_on(&mut server, &client).await;
    server.stop().await;
}

/// Calls sent before the server's SETTINGS arrived: the client does not know the server's
/// limit yet and assumes none, as grpc-go does until SETTINGS; the server, the receiver, refuses
/// the one past its limit as any other, `RESOURCE_EXHAUSTED` for that call alone, and the
/// stream opened beside it in the same write is served. On this current-thread runtime the
/// client's driver has not run when both are opened, so its SETTINGS cannot have been read.
#[tokio::test]
async fn a_call_sent_before_the_servers_settings_is_refused_by_the_server_alone() {
    let mut server = Server::start();
    let stream = bounded("connect", tokio::net::TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let client = sockrpc::transport::ClientConnection::spawn_tcp(
        stream,
        Limits::default().with_max_metadata_size(4 * LIMIT),
    );
    let (mut big_tx, mut big_rx) = client
        .open_stream(&METHOD, &block_of(LIMIT + 1), None, None)
        .expect("not refused by the client: it does not know the server's limit yet");
    let (mut tx, mut rx) = open(&client, &MetadataMap::new());
    let _ = send(&mut big_tx, &Bytes::from_static(b"big")).await;
    big_tx.close();
    send(&mut tx, &Bytes::from_static(b"small"))
        .await
        .expect("sent");
    tx.close();
    let (messages, end) = finish(&mut big_rx).await;
    assert!(messages.is_empty());
    let err = end.expect_err("refused by the server");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message()
            .contains("request metadata of 16385 bytes exceeds the limit of 16384"),
        "{err:?}"
    );
    assert!(!err.message().contains("announced"), "{err:?}");
    let mut call = server.take_call().await;
    let responder = call.respond(MetadataMap::new(), MetadataMap::new());
    responder.send(Bytes::from_static(b"served"));
    responder.end();
    let (messages, end) = finish(&mut rx).await;
    end.expect("the stream beside it ends OK");
    assert_eq!(messages, [Bytes::from_static(b"served")]);
    assert!(
        server.no_call().await,
        "the refused call reached the handler"
    );
    the_connection_goes_on(&mut server, &client).await;
    server.stop().await;
}
