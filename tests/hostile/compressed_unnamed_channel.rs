//! The same protocol error as `compressed_unnamed.rs` — an answer's message flagged compressed
//! while the server's HEADERS named no encoding, `INTERNAL` — read through a [`Channel`] used
//! directly, as the CLI's dynamic calls and any codec-agnostic caller read it (a `Call` of
//! encoded bytes, the answer's [`Body`] read as it is). Only the generated client's path
//! (`Client`) said `INTERNAL`: the channel's own body said `UNIMPLEMENTED` ("accepts no
//! compression"), for a unary answer and a streamed one, as if an encoding had been named.
//! An encoding named stays `UNIMPLEMENTED` here: a bare channel decodes nothing. Below the
//! channel, the transport's own reader of a streamed answer says the same.

use crate::compressed_unnamed::answering_compressed;
use crate::support::bounded;
use bytes::Bytes;
use sockrpc::transport::ClientConnection;
use sockrpc::{
    Body, Call, Channel, Code, Endpoint, Limits, MetadataMap, MethodPath, Request, Status,
};
use std::future::poll_fn;
use tower::ServiceExt;

/// How an answer's first message is read.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// Decoded, as the CLI reads it ([`Body::poll_message`]).
    Decoded,
    /// As it arrived, flag and all, as a layer that wraps or forwards the body reads it
    /// ([`Body::poll_message_flagged`]).
    Flagged,
}

/// What a bare channel reads first of the answer of a fake server whose one message is flagged
/// compressed, its HEADERS naming gzip (`named`) or no encoding, to a unary call or (when
/// `streamed`) a server-streaming one: the code of the failure, `Ok` when a message came
/// through (flagged or not).
async fn first_read(named: bool, streamed: bool, read: Read) -> Code {
    let addr = answering_compressed(named).await;
    let channel = bounded(
        "connect",
        Channel::connect(Endpoint::new("127.0.0.1", addr.port())),
    )
    .await
    .expect("connect to the fake server");
    let path = if streamed {
        "/sockrpc.test.stream.Streamer/Produce"
    } else {
        "/sockrpc.test.Echo/Echo"
    };
    let request = Request::new(Body::once(Bytes::from_static(b"")));
    let mut call = Call::new(MethodPath::from_static(path), request);
    if streamed {
        call = call.with_streaming_response();
    }
    let answer = bounded("the call", channel.oneshot(call)).await;
    let mut body = answer
        .expect("the fake server answered with HEADERS")
        .into_inner();
    let first: Option<Result<(), Status>> = match read {
        Read::Decoded => bounded("the first message", poll_fn(|cx| body.poll_message(cx)))
            .await
            .map(|message| message.map(drop)),
        Read::Flagged => bounded(
            "the first message",
            poll_fn(|cx| body.poll_message_flagged(cx)),
        )
        .await
        .map(|message| message.map(drop)),
    };
    match first {
        Some(Ok(())) => Code::Ok,
        Some(Err(status)) => {
            if status.code() == Code::Internal {
                assert!(status.message().contains("named no encoding"), "{status:?}");
            }
            status.code()
        }
        None => panic!("the answer ended with no message"),
    }
}

#[tokio::test]
async fn a_bare_channel_refuses_an_unnamed_compressed_unary_answer_internal() {
    assert_eq!(
        first_read(false, false, Read::Decoded).await,
        Code::Internal,
        "unary, no encoding named, read decoded"
    );
    assert_eq!(
        first_read(false, false, Read::Flagged).await,
        Code::Internal,
        "unary, no encoding named, read as it arrived"
    );
    assert_eq!(
        first_read(true, false, Read::Decoded).await,
        Code::Unimplemented,
        "unary, gzip named, which a bare channel does not decode"
    );
}

#[tokio::test]
async fn a_bare_channel_refuses_an_unnamed_compressed_streamed_answer_internal() {
    assert_eq!(
        first_read(false, true, Read::Decoded).await,
        Code::Internal,
        "server-streaming, no encoding named, read decoded"
    );
    assert_eq!(
        first_read(false, true, Read::Flagged).await,
        Code::Internal,
        "server-streaming, no encoding named, read as it arrived"
    );
    assert_eq!(
        first_read(true, true, Read::Decoded).await,
        Code::Unimplemented,
        "server-streaming, gzip named, which a bare channel does not decode"
    );
}

/// The transport's reader of a streamed answer, under every layer above
/// (`StreamReceiver::poll_message`, which decodes nothing): `INTERNAL` when no encoding was
/// named, `UNIMPLEMENTED` ("no compression negotiated") when one was.
#[tokio::test]
async fn the_transports_stream_reader_refuses_an_unnamed_compressed_answer_internal() {
    for (named, expected) in [(false, Code::Internal), (true, Code::Unimplemented)] {
        let addr = answering_compressed(named).await;
        let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let conn = ClientConnection::spawn_tcp(socket, Limits::default());
        bounded("handshake", conn.ready()).await.expect("handshake");
        let path = MethodPath::from_static("/sockrpc.test.stream.Streamer/Produce");
        let (_sender, mut receiver) = conn
            .open_stream(&path, &MetadataMap::new(), None, Some(Bytes::new()))
            .expect("open the stream");
        bounded("the HEADERS", poll_fn(|cx| receiver.poll_headers(cx)))
            .await
            .expect("the fake server answered with HEADERS");
        let first = bounded("the first message", poll_fn(|cx| receiver.poll_message(cx))).await;
        match first {
            Some(Err(status)) => assert_eq!(status.code(), expected, "named {named}: {status:?}"),
            other => panic!("named {named}: {other:?}"),
        }
    }
}
