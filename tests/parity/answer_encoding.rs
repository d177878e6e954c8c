//! tonic's `tests/compression`, `compressing_response.rs::server_replying_with_unsupported_encoding`:
//! an answer compressed with an encoding the client did not ask for fails the call
//! `UNIMPLEMENTED`, naming the encoding, rather than being read as if it were plain. tonic's
//! server layer rewrites the `grpc-encoding` header; here a server layer replaces the answer
//! with one compressed with zstd, flagged and named so on the wire, whatever the client accepts.
//! A client that accepts zstd reads it (the layer's answer is good), one that accepts only gzip
//! fails `UNIMPLEMENTED`, and one that sent no encoding fields is sent neither the fields nor
//! the message (`INTERNAL`). The same for a server stream whose messages a layer forwards as
//! they came, compressed (as a proxy would forward an upstream's answer).
//!
//! Making such an answer found that a server sent none: a body holding a message already
//! compressed (`Body::once_wire(.., true)`, or forwarded messages flagged compressed) was read
//! by the server as if it were receiving it, and refused, `UNIMPLEMENTED` "accepts no
//! compression", before any of it went out.

use crate::support::{bounded, channel, serve_layered};
use bytes::Bytes;
use futures_util::stream;
use prost::Message as _;
use sockrpc::compression::{compress, EncodingFields, EncodingSet};
use sockrpc::service::Incoming;
use sockrpc::{
    Body, BoxStream, Code, CompressionEncoding, MetadataMap, Request, Response, Server, Status,
};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, InputStream, Output, OutputStream};
use std::collections::VecDeque;
use std::task::{Context, Poll};

const TEXT: &str = "compressed whatever the client said";

struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

impl TestStream for Svc {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        Ok(Response::new(Box::pin(stream::empty())))
    }
}

/// Messages as they came off the wire, compressed, and a clean end.
struct Forwarded {
    wire: VecDeque<Bytes>,
    trailers: MetadataMap,
}

impl Incoming for Forwarded {
    fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        Poll::Ready(
            self.wire
                .pop_front()
                .map(|_| Err(Status::internal("read as plain"))),
        )
    }

    fn poll_message_flagged(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        Poll::Ready(self.wire.pop_front().map(|wire| Ok((wire, true))))
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.wire.is_empty().then_some(&self.trailers)
    }
}

fn zstd_fields() -> Option<EncodingFields> {
    Some(EncodingFields::new(
        EncodingSet::EMPTY,
        Some(CompressionEncoding::Zstd),
    ))
}

/// The answer, replaced with `Output { message: TEXT }` compressed with zstd.
fn zstd_answer(response: Response<Body>) -> Response<Body> {
    let plain: Bytes = Output {
        message: TEXT.into(),
    }
    .encode_to_vec()
    .into();
    let packed = compress(CompressionEncoding::Zstd, &plain).expect("zstd");
    let (metadata, body, trailers) = response.into_parts();
    let body = if body.is_once() {
        Body::once_wire(packed, true)
    } else {
        // A server stream: two messages, forwarded as they came.
        let empty = compress(CompressionEncoding::Zstd, &Bytes::new()).expect("zstd");
        Body::incoming(Forwarded {
            wire: VecDeque::from([empty.clone(), empty]),
            trailers: MetadataMap::new(),
        })
    };
    let mut answer = Response::from_parts(metadata, body, trailers);
    answer.set_encoding(zstd_fields());
    answer.set_message_compressed(true);
    answer
}

#[tokio::test]
async fn an_answer_in_an_encoding_the_client_does_not_accept_is_unimplemented() {
    let server = serve_layered(
        Server::builder()
            .layer(tower::util::MapResponseLayer::new(zstd_answer))
            .add_service(TestServer::new(Svc))
            .add_service(TestStreamServer::new(Svc)),
    );
    let channel = channel(server.addr).await;

    let mut accepting =
        TestClient::new(channel.clone()).accept_compressed(CompressionEncoding::Zstd);
    let answer = bounded("accepts zstd", accepting.unary_call(Input {}))
        .await
        .expect("zstd is accepted");
    assert_eq!(answer.into_inner().message, TEXT);

    let mut gzip_only =
        TestClient::new(channel.clone()).accept_compressed(CompressionEncoding::Gzip);
    let err = bounded("accepts gzip", gzip_only.unary_call(Input {}))
        .await
        .expect_err("zstd is not accepted");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    // tonic's words for it, and what this side accepts in `grpc-accept-encoding`.
    assert!(
        err.message()
            .contains("Content is compressed with `zstd` which isn't supported"),
        "{err:?}"
    );
    assert_eq!(
        err.metadata().get_str("grpc-accept-encoding"),
        Some("gzip,identity"),
        "{err:?}"
    );

    // A client configured for no compression sends no encoding fields: the server's transport
    // sends it neither fields nor a compressed message (a client of an earlier version would
    // read the bytes as plain), and ends the call `INTERNAL` instead
    // (`tests/hostile/encoding_unasked.rs`). Until then the layer's fields went to it, and it
    // refused the encoding `UNIMPLEMENTED`, as tonic's client does the `grpc-encoding` header.
    let mut plain = TestClient::new(channel.clone());
    let err = bounded("accepts nothing", plain.unary_call(Input {}))
        .await
        .expect_err("nothing compressed is accepted");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(no_encoding_named(&err), "{err:?}");

    // A server stream forwarded as it came: read by a client that accepts zstd, refused by one
    // that does not.
    let mut accepting =
        TestStreamClient::new(channel.clone()).accept_compressed(CompressionEncoding::Zstd);
    let mut answers = bounded("open", accepting.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    for n in 0..2 {
        assert_eq!(
            bounded("message", answers.message())
                .await
                .expect("decoded"),
            Some(OutputStream {}),
            "message {n}"
        );
    }
    assert_eq!(
        bounded("end", answers.message()).await.expect("ended"),
        None
    );
    let mut gzip_only = TestStreamClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
    let err = match bounded("open", gzip_only.stream_call(InputStream {})).await {
        Ok(response) => bounded("message", response.into_inner().message())
            .await
            .expect_err("zstd is not accepted"),
        Err(err) => err,
    };
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("zstd"), "{err:?}");
    server.stop().await;
}

/// The answer compressed, as `zstd_answer` makes it, but with no encoding named in its HEADERS
/// (a layer that forwards an upstream's messages and forgets its encoding fields).
fn unnamed_answer(response: Response<Body>) -> Response<Body> {
    let mut answer = zstd_answer(response);
    answer.set_encoding(None);
    answer
}

/// A compressed message under no named encoding is refused `INTERNAL`: by the server's transport
/// before it is sent, when the client's OPEN carried encoding fields (425c0f2), otherwise by the
/// client, saying the sender named none (not read as plain, not a hang), whether or not it
/// accepts the encoding used: a protocol error, as tonic's client answers ("received message
/// with compressed-flag but no grpc-encoding was specified") and grpc-go's. Before the body
/// passed such messages on (fdd8e4b), the server refused its own answer ("this side accepts no
/// compression").
/// Whether `err` says a compressed message named no encoding: the client's words, or the
/// server transport's when it refused to send it.
fn no_encoding_named(err: &Status) -> bool {
    err.message().contains("named no encoding") || err.message().contains("names no encoding")
}

#[tokio::test]
async fn a_compressed_answer_naming_no_encoding_is_refused_by_the_client() {
    let server = serve_layered(
        Server::builder()
            .layer(tower::util::MapResponseLayer::new(unnamed_answer))
            .add_service(TestServer::new(Svc))
            .add_service(TestStreamServer::new(Svc)),
    );
    let channel = channel(server.addr).await;
    // A client that accepts no compression says the same: the fault is the sender's.
    let err = bounded(
        "unary",
        TestClient::new(channel.clone()).unary_call(Input {}),
    )
    .await
    .expect_err("no encoding named");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(no_encoding_named(&err), "{err:?}");
    let mut accepting =
        TestClient::new(channel.clone()).accept_compressed(CompressionEncoding::Zstd);
    let err = bounded("unary", accepting.unary_call(Input {}))
        .await
        .expect_err("no encoding named");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(no_encoding_named(&err), "{err:?}");

    let mut accepting = TestStreamClient::new(channel).accept_compressed(CompressionEncoding::Zstd);
    let err = match bounded("open", accepting.stream_call(InputStream {})).await {
        Ok(response) => bounded("message", response.into_inner().message())
            .await
            .expect_err("no encoding named"),
        Err(err) => err,
    };
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(no_encoding_named(&err), "{err:?}");
    server.stop().await;
}
