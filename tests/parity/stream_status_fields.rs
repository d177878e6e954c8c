//! tonic's `status.rs` checks a status's details and metadata on a unary call only
//! (`status_with_details`, `status_with_metadata`); a tonic user reads them off a streaming
//! call's status as well, where tonic takes them from the trailers. Here every other place a
//! handler's status can end a call keeps its code, message, details and metadata (ASCII and
//! binary): a server stream's status after a message, a stream handler that refuses before
//! its stream starts, a client-streaming handler that refuses without reading its input, and a
//! bidi stream's status after an echo.

use crate::support::{bounded, channel, serve};
use futures_util::{stream, StreamExt};
use sockrpc::{BoxStream, Code, MetadataMap, Request, Response, Server, Status, Streaming};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::{Test1, Test1Server};
use sockrpc_tests::parity::{Input1, Output1};

const MESSAGE: &str = "see details and metadata";
const DETAILS: &[u8] = b"\x08\x01detail\xff";

/// A status with every field set, as each handler below ends its call.
fn full_status() -> Status {
    let mut metadata = MetadataMap::new();
    metadata
        .insert_str("x-host-ip", "127.0.0.1")
        .expect("ascii entry");
    metadata
        .insert_bin("x-host-name-bin", b"localhost\0\xff".into())
        .expect("binary entry");
    Status::with_details_and_metadata(
        Code::FailedPrecondition,
        MESSAGE,
        DETAILS.to_vec(),
        metadata,
    )
}

#[track_caller]
fn assert_full(err: &Status, what: &str) {
    assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
    assert_eq!(err.message(), MESSAGE, "{what}");
    assert_eq!(err.details(), DETAILS, "{what}: details");
    assert_eq!(
        err.metadata().get_str("x-host-ip"),
        Some("127.0.0.1"),
        "{what}: ascii metadata in {:?}",
        err.metadata()
    );
    assert_eq!(
        err.metadata().get_bin_bytes("x-host-name-bin"),
        Some(&b"localhost\0\xff"[..]),
        "{what}: binary metadata"
    );
}

/// `refuse`: the stream and bidi handlers fail before answering; otherwise after one message.
#[derive(Clone, Copy)]
struct Ending {
    refuse: bool,
}

impl Test1 for Ending {
    async fn unary_call(&self, _: Request<Input1>) -> Result<Response<Output1>, Status> {
        Err(full_status())
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        _: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        if self.refuse {
            return Err(full_status());
        }
        let items = vec![Ok(Output1::default()), Err(full_status())];
        Ok(Response::new(Box::pin(stream::iter(items))))
    }

    async fn collect(&self, _: Request<Streaming<Input1>>) -> Result<Response<Output1>, Status> {
        // Refuses without reading what the client sends.
        Err(full_status())
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        if self.refuse {
            return Err(full_status());
        }
        let mut inputs = request.into_inner();
        let first = inputs.message().await?.unwrap_or_default();
        let items = vec![Ok(Output1 { buf: first.buf }), Err(full_status())];
        Ok(Response::new(Box::pin(stream::iter(items))))
    }
}

#[tokio::test]
async fn a_server_streams_status_after_a_message_keeps_details_and_metadata() {
    let server = serve(Server::builder().add_service(Test1Server::new(Ending { refuse: false })));
    let mut client = Test1Client::new(channel(server.addr).await);
    let mut answers = bounded("open", client.stream_call(Input1::default()))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        bounded("first", answers.message())
            .await
            .expect("a message"),
        Some(Output1::default())
    );
    let err = bounded("second", answers.message())
        .await
        .expect_err("the stream's status");
    assert_full(&err, "server stream");
    assert_eq!(
        bounded("after", answers.message()).await.expect("ended"),
        None
    );

    let mut echoes = bounded(
        "chat",
        client.chat(stream::iter(vec![Input1::default(); 3])),
    )
    .await
    .expect("opens")
    .into_inner();
    assert_eq!(
        bounded("echo", echoes.message()).await.expect("an echo"),
        Some(Output1::default())
    );
    let err = bounded("chat status", echoes.message())
        .await
        .expect_err("the stream's status");
    assert_full(&err, "bidi stream");
    server.stop().await;
}

#[tokio::test]
async fn a_handler_refusing_before_its_stream_keeps_details_and_metadata() {
    let server = serve(Server::builder().add_service(Test1Server::new(Ending { refuse: true })));
    let mut client = Test1Client::new(channel(server.addr).await);
    let err = match bounded("stream", client.stream_call(Input1::default())).await {
        Ok(response) => bounded("first", response.into_inner().message())
            .await
            .expect_err("refused"),
        Err(err) => err,
    };
    assert_full(&err, "server stream refused");

    let err = bounded(
        "collect",
        client.collect(stream::iter(vec![Input1::default(); 3])),
    )
    .await
    .expect_err("refused");
    assert_full(&err, "client stream refused");

    let err = match bounded(
        "chat",
        client.chat(stream::iter(vec![Input1::default(); 3])),
    )
    .await
    {
        Ok(response) => bounded("first", response.into_inner().message())
            .await
            .expect_err("refused"),
        Err(err) => err,
    };
    assert_full(&err, "bidi refused");

    // The same while the client's stream never ends: the refusal ends the call all the same
    // (tonic answers as soon as the server's status arrives, whatever is left to send).
    let endless = || stream::iter(vec![Input1::default(); 3]).chain(stream::pending());
    let err = bounded("collect, endless", client.collect(endless()))
        .await
        .expect_err("refused");
    assert_full(&err, "client stream refused, endless input");
    let err = match bounded("chat, endless", client.chat(endless())).await {
        Ok(response) => bounded("first", response.into_inner().message())
            .await
            .expect_err("refused"),
        Err(err) => err,
    };
    assert_full(&err, "bidi refused, endless input");

    let err = bounded("unary", client.unary_call(Input1::default()))
        .await
        .expect_err("refused");
    assert_full(&err, "unary");
    server.stop().await;
}
