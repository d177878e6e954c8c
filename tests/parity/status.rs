//! tonic's `status.rs`: what a handler's `Status` carries to the client (code, message,
//! details, metadata, ASCII and binary), statuses a server stream yields before and after a
//! message, and the local cause kept on a status the transport made. Also gRPC interop's
//! `status_code_and_message` and `special_status_message`: every code, and a message with
//! whitespace and characters outside ASCII, arrive as sent.

use crate::support::{bounded, channel, serve, Refused};
use futures_util::stream;
use sockrpc::{BoxStream, Channel, Code, MetadataMap, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, InputStream, Output, OutputStream};
use std::error::Error;

/// Fails every call with the status it was built with.
#[derive(Clone)]
struct Failing(Status);

impl Test for Failing {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Err(self.0.clone())
    }
}

async fn status_of(status: Status) -> Status {
    let server = serve(Server::builder().add_service(TestServer::new(Failing(status))));
    let mut client = TestClient::new(channel(server.addr).await);
    let err = bounded("unary", client.unary_call(Input {}))
        .await
        .expect_err("the handler fails");
    server.stop().await;
    err
}

#[tokio::test]
async fn status_with_details() {
    let err = status_of(Status::with_details(
        Code::ResourceExhausted,
        "Too many requests",
        vec![1u8],
    ))
    .await;
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.message(), "Too many requests");
    assert_eq!(err.details(), &[1u8]);
}

#[tokio::test]
async fn status_with_metadata() {
    const MESSAGE: &str = "Internal error, see metadata for details";
    let mut metadata = MetadataMap::new();
    metadata
        .insert_str("x-host-ip", "127.0.0.1")
        .expect("ascii entry");
    metadata
        .insert_bin("x-host-name-bin", b"localhost\0\xff".into())
        .expect("binary entry");
    let err = status_of(Status::with_metadata(Code::Internal, MESSAGE, metadata)).await;
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), MESSAGE);
    assert_eq!(err.metadata().get_str("x-host-ip"), Some("127.0.0.1"));
    assert_eq!(
        err.metadata().get_bin_bytes("x-host-name-bin"),
        Some(&b"localhost\0\xff"[..])
    );
}

#[tokio::test]
async fn every_code_and_a_special_message_arrive_as_sent() {
    // gRPC interop's special_status_message: whitespace, a BMP and a non-BMP character.
    const SPECIAL: &str = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    for number in 1..=16u32 {
        let code = Code::from_u32(number);
        let err = status_of(Status::new(code, SPECIAL)).await;
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(err.message(), SPECIAL, "{code:?}");
    }
}

/// Streams what it was built with: each item a message or a status.
#[derive(Clone)]
struct Scripted(Vec<Result<(), (Code, &'static str)>>);

impl TestStream for Scripted {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        let items = self.0.clone().into_iter().map(|item| match item {
            Ok(()) => Ok(OutputStream {}),
            Err((code, message)) => Err(Status::new(code, message)),
        });
        Ok(Response::new(Box::pin(stream::iter(items))))
    }
}

async fn stream_client(script: Scripted) -> (crate::support::Running, TestStreamClient) {
    let server = serve(Server::builder().add_service(TestStreamServer::new(script)));
    let client = TestStreamClient::new(channel(server.addr).await);
    (server, client)
}

#[tokio::test]
async fn status_from_server_stream() {
    // The first item is an error: the call ends with it, and what follows is never sent.
    let (server, mut client) = stream_client(Scripted(vec![
        Err((Code::Unavailable, "foo")),
        Err((Code::Unavailable, "bar")),
    ]))
    .await;
    let mut stream = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    let err = bounded("first", stream.message())
        .await
        .expect_err("the stream's status");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(err.message(), "foo");
    assert_eq!(
        bounded("after", stream.message()).await.expect("ended"),
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn message_and_then_status_from_server_stream() {
    let (server, mut client) = stream_client(Scripted(vec![
        Ok(()),
        Err((Code::Unavailable, "foo")),
        Ok(()),
    ]))
    .await;
    let mut stream = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        bounded("first", stream.message()).await.expect("a message"),
        Some(OutputStream {})
    );
    let err = bounded("second", stream.message())
        .await
        .expect_err("the stream's status");
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "foo"));
    assert_eq!(
        bounded("after", stream.message()).await.expect("ended"),
        None
    );
    server.stop().await;
}

/// The first `io::Error` down `err`'s chain of sources.
fn io_cause(err: &Status) -> &std::io::Error {
    let mut cause = err.source();
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return io;
        }
        cause = error.source();
    }
    panic!("no io::Error under {err:?}")
}

#[tokio::test]
async fn status_from_a_failed_connect_keeps_its_source() {
    // A lazy channel to a port nothing listens on: the call fails UNAVAILABLE, and the status
    // keeps the local cause (the connect's I/O error) down its `source()` chain.
    let vacant = Refused::loopback();
    let addr = vacant.addr();
    let channel = Channel::lazy(format!("tcp://{addr}")).expect("endpoint");
    let mut client = TestStreamClient::new(channel);
    let err = bounded("call", client.stream_call(InputStream {}))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(io_cause(&err).kind(), std::io::ErrorKind::ConnectionRefused);
    // So does a channel that connects up front.
    let err = bounded("connect", Channel::connect(format!("tcp://{addr}")))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(io_cause(&err).kind(), std::io::ErrorKind::ConnectionRefused);
}
