//! gRPC's cardinality rules (`statuscodes.md`, the "cardinality violation" rows, which
//! grpc-go's end2end tests and connect's conformance suite check for unary and server-stream
//! methods): a method that takes one request refuses a call that sent none or two with
//! `UNIMPLEMENTED` before its handler runs, and a client that expects one answer refuses a
//! stream of none or two with `UNIMPLEMENTED` too. grpc-go's client reports the latter as
//! `UNKNOWN`/`INTERNAL` depending on the version; sockrpc follows the status-code table.
//! Either way, only that call fails: the connection goes on.

use crate::support::{bounded, channel, serve, with_meta, Peer};
use futures_util::stream;
use sockrpc::{Client, Code, ProstCodec, Request, Server, Status};
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::{Input1, Output1};

const UNARY: &str = "/test.Test1/UnaryCall";
const SERVER_STREAM: &str = "/test.Test1/StreamCall";
const CLIENT_STREAM: &str = "/test.Test1/Collect";
const BIDI: &str = "/test.Test1/Chat";

fn input(n: u8) -> Input1 {
    Input1 {
        buf: vec![n; 3].into(),
    }
}

/// Sends `requests` as a stream to `path` and reads the first answer, or the status.
async fn stream_to(
    client: &mut Client<sockrpc::Channel>,
    path: &'static str,
    requests: Vec<Input1>,
) -> Result<Option<Output1>, Status> {
    let mut answers = client
        .streaming::<_, Input1, Output1, _>(Request::new(stream::iter(requests)), path, ProstCodec)
        .await?
        .into_inner();
    answers.message().await
}

#[tokio::test]
async fn a_method_of_one_request_refuses_none_and_two_unimplemented() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Client::new(channel(server.addr).await);
    for path in [UNARY, SERVER_STREAM] {
        for requests in [vec![], vec![input(1), input(2)]] {
            let sent = requests.len();
            let result = bounded("a streamed call", stream_to(&mut client, path, requests)).await;
            let err = result.expect_err("cardinality violation");
            assert_eq!(
                err.code(),
                Code::Unimplemented,
                "{path}, {sent} sent: {err:?}"
            );
        }
        // The same call through the client-streaming shape (one answer expected).
        let requests = stream::iter(vec![input(1), input(2)]);
        let err = bounded(
            "a client-streamed call",
            client.client_streaming::<_, Input1, Output1, _>(
                Request::new(requests),
                path,
                ProstCodec,
            ),
        )
        .await
        .expect_err("cardinality violation");
        assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
    }
    assert_eq!(
        peer.counts.started(),
        0,
        "no handler ran for a refused call"
    );

    // One request through the streaming shape is a valid call of either method.
    let answer = bounded("one request", stream_to(&mut client, UNARY, vec![input(7)]))
        .await
        .expect("served")
        .expect("one answer");
    assert_eq!(answer.buf.as_ref(), &[7, 7, 7]);
    let answer = bounded(
        "one request",
        stream_to(&mut client, SERVER_STREAM, vec![input(8)]),
    )
    .await
    .expect("served")
    .expect("one answer");
    assert_eq!(answer.buf.as_ref(), &[8, 8, 8]);
    server.stop().await;
}

#[tokio::test]
async fn a_caller_of_one_answer_refuses_none_and_two_unimplemented() {
    let peer = Peer::default();
    let server = serve(Server::builder().add_service(Test1Server::new(peer.clone())));
    let mut client = Client::new(channel(server.addr).await);
    for count in ["0", "2"] {
        let request = with_meta(input(1), &[("x-count", count)]);
        let err = bounded(
            "a server stream read as unary",
            client.unary::<Input1, Output1, _>(request, SERVER_STREAM, ProstCodec),
        )
        .await
        .expect_err("cardinality violation");
        assert_eq!(err.code(), Code::Unimplemented, "{count} answers: {err:?}");
    }
    // A bidi stream that answers each of two requests, read as a client stream.
    let err = bounded(
        "a bidi stream read as a client stream",
        client.client_streaming::<_, Input1, Output1, _>(
            Request::new(stream::iter(vec![input(1), input(2)])),
            BIDI,
            ProstCodec,
        ),
    )
    .await
    .expect_err("cardinality violation");
    assert_eq!(err.code(), Code::Unimplemented, "two answers: {err:?}");
    // A status and no answer is that status, not a cardinality violation.
    let request = with_meta(input(1), &[("x-fail", "5")]);
    let err = bounded(
        "a failed server stream read as unary",
        client.unary::<Input1, Output1, _>(request, SERVER_STREAM, ProstCodec),
    )
    .await
    .expect_err("the handler's status");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // One answer from a stream is a valid answer.
    let answer = bounded(
        "one answer",
        client.client_streaming::<_, Input1, Output1, _>(
            Request::new(stream::iter(vec![input(4)])),
            CLIENT_STREAM,
            ProstCodec,
        ),
    )
    .await
    .expect("served");
    assert_eq!(answer.into_inner().buf.as_ref(), &[4, 4, 4]);
    server.stop().await;
}
