//! A message flagged compressed whose sender named no encoding (in its OPEN, or a server's
//! HEADERS) is a protocol error, answered `INTERNAL` whether or not the receiver accepts
//! compression: gRPC's compression spec says so of a message with its Compressed-Flag set and no
//! `grpc-encoding`, and tonic's `client_mark_compressed_without_header_server_enforces` and
//! grpc-go answer so. A default side answered `UNIMPLEMENTED` ("accepts no compression"), which
//! reads as a method the server lacks: first for unary calls, then (until the stream body was
//! told whether an encoding was named) for streamed messages, both ways. An encoding named but
//! not accepted stays `UNIMPLEMENTED`, as tonic answers it. The hostile peers here write their
//! frames by hand: a client toward a real server, a server toward a real generated client.

use crate::compressed_running::ends;
use crate::raw::{block, frame, open_body, MESSAGE, OPEN, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, HEADERS};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message;
use sockrpc::Streaming;
use sockrpc::{Channel, Code, CompressionEncoding, Endpoint, Request, Response, Router, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// OPEN's and HEADERS' flag: encoding fields follow the metadata (`docs/COMPRESSION.md`).
const FLAG_ENCODING: u8 = 0x08;
/// MESSAGE's flag: the body is compressed.
const FLAG_COMPRESSED: u8 = 0x08;
/// MESSAGE's END_STREAM flag.
const LAST: u8 = 1;
/// OPEN's flag: the client streams its request.
const STREAM: u8 = 0x02;
/// Encoding fields: length 3, accept gzip, send gzip.
const GZIP_FIELDS: [u8; 4] = [3, 0, 1, 1];
pub(crate) const INTERNAL: u32 = 13;
pub(crate) const UNIMPLEMENTED: u32 = 12;
pub(crate) const COLLECT_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Collect";
const PING_PONG_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/PingPong";

/// A gzip-compressed encoding of `message`.
fn gzip(message: &[u8]) -> Vec<u8> {
    sockrpc::compression::compress(CompressionEncoding::Gzip, message)
        .expect("gzip compresses")
        .to_vec()
}

/// An OPEN body for `path` and its flags: naming gzip as what it sends (`named`) or carrying
/// no encoding fields at all.
fn open_naming(path: &[u8], named: bool) -> (Vec<u8>, u8) {
    let mut open = open_body(path, &[]);
    if named {
        open.extend_from_slice(&GZIP_FIELDS);
        (open, FLAG_ENCODING)
    } else {
        (open, 0)
    }
}

/// A unary echo call whose MESSAGE is a gzip request flagged compressed, under an OPEN that
/// names gzip as what it sends (`named`) or carries no encoding fields at all.
fn gzip_call(call_id: u32, named: bool) -> Vec<u8> {
    let (open, flags) = open_naming(b"/sockrpc.test.Echo/Echo", named);
    let request = EchoRequest {
        payload: vec![7u8; 100].into(),
        id: u64::from(call_id),
    }
    .encode_to_vec();
    [
        frame(OPEN, flags, call_id, &open),
        frame(MESSAGE, FLAG_COMPRESSED | LAST, call_id, &gzip(&request)),
    ]
    .concat()
}

/// A gzip-compressed `Chunk`.
fn gzip_chunk(seq: u64) -> Vec<u8> {
    gzip(
        &Chunk {
            seq,
            payload: vec![7u8; 100].into(),
        }
        .encode_to_vec(),
    )
}

/// A streamed request to `path`: a plain message, then one flagged compressed (gzip) that
/// ends it, under an OPEN that names gzip (`named`) or no encoding.
pub(crate) fn gzip_stream(call_id: u32, path: &[u8], named: bool) -> Vec<u8> {
    let (open, flags) = open_naming(path, named);
    let plain = Chunk {
        seq: 1,
        payload: vec![1u8; 8].into(),
    }
    .encode_to_vec();
    [
        frame(OPEN, flags | STREAM, call_id, &open),
        frame(MESSAGE, 0, call_id, &plain),
        frame(MESSAGE, FLAG_COMPRESSED | LAST, call_id, &gzip_chunk(2)),
    ]
    .concat()
}

/// `Collect` reads with `?`, so a refused message ends its call with the refusal; the rest
/// (`PingPong` echoes, and answers a refusal with it) is `Mirror`'s.
struct Collecting;

impl Streamer for Collecting {
    sockrpc_tests::mirror_methods!(unary, produce, ping_pong, gather);

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let mut chunks = request.into_inner();
        let mut summary = Summary::default();
        while let Some(chunk) = chunks.message().await? {
            summary.count += 1;
            summary.seq_sum += chunk.seq;
        }
        Ok(Response::new(summary))
    }
}

/// Sends `calls` (after the preface) to a server of `router`; the codes the ENDs of `count`
/// calls carried, by call id.
async fn codes_from(router: Router, calls: &[u8], count: usize) -> Vec<(u32, u32)> {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .router(router)
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let bytes = [PREFACE.as_slice(), calls].concat();
    stream.write_all(&bytes).await.expect("write the calls");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    bounded("every call answered", async {
        while ends(&got).len() < count {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection: {:?}", ends(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    drop(stream);
    server.stop().await;
    let mut codes = ends(&got);
    codes.sort_unstable();
    codes
}

/// Call 1 (no encoding named) and call 3 (gzip named), unary.
fn unary_calls() -> Vec<u8> {
    [gzip_call(1, false), gzip_call(3, true)].concat()
}

/// Streamed requests: `Collect` as call 1 (no encoding named) and 3 (gzip named), `PingPong`
/// as call 5 (none named) and 7 (gzip named).
fn streamed_calls() -> Vec<u8> {
    [
        gzip_stream(1, COLLECT_PATH, false),
        gzip_stream(3, COLLECT_PATH, true),
        gzip_stream(5, PING_PONG_PATH, false),
        gzip_stream(7, PING_PONG_PATH, true),
    ]
    .concat()
}

#[tokio::test]
async fn a_server_that_accepts_no_compression_refuses_an_unnamed_one_internal() {
    let router = Router::new().add_service(EchoServer::new(EchoImpl::default()));
    assert_eq!(
        codes_from(router, &unary_calls(), 2).await,
        [(1, INTERNAL), (3, UNIMPLEMENTED)],
        "no encoding named: INTERNAL; gzip named but not accepted: UNIMPLEMENTED"
    );
}

#[tokio::test]
async fn a_server_that_accepts_gzip_refuses_an_unnamed_one_internal_and_reads_a_named_one() {
    let router = Router::new().add_service(
        EchoServer::new(EchoImpl::default()).accept_compressed(CompressionEncoding::Gzip),
    );
    assert_eq!(
        codes_from(router, &unary_calls(), 2).await,
        [(1, INTERNAL), (3, 0)],
        "no encoding named: INTERNAL; gzip named and accepted: answered OK"
    );
}

/// The stream body once could not tell that no encoding was named: a default server
/// answered a streamed request's unnamed compressed message `UNIMPLEMENTED`.
#[tokio::test]
async fn a_server_that_accepts_no_compression_refuses_an_unnamed_streamed_one_internal() {
    let router = Router::new().add_service(StreamerServer::new(Collecting));
    assert_eq!(
        codes_from(router, &streamed_calls(), 4).await,
        [
            (1, INTERNAL),
            (3, UNIMPLEMENTED),
            (5, INTERNAL),
            (7, UNIMPLEMENTED)
        ],
        "client-streaming and bidi: no encoding named, INTERNAL; gzip named but not accepted, \
         UNIMPLEMENTED"
    );
}

#[tokio::test]
async fn a_server_that_accepts_gzip_refuses_an_unnamed_streamed_one_internal() {
    let router = Router::new()
        .add_service(StreamerServer::new(Collecting).accept_compressed(CompressionEncoding::Gzip));
    assert_eq!(
        codes_from(router, &streamed_calls(), 4).await,
        [(1, INTERNAL), (3, 0), (5, INTERNAL), (7, 0)],
        "client-streaming and bidi: no encoding named, INTERNAL; gzip named and accepted, OK"
    );
}

/// A fake server that answers the first stream a client opens with HEADERS naming gzip as what
/// it sends (`named`) or no encoding, one gzip `Chunk` flagged compressed, and an OK END.
pub(crate) async fn answering_compressed(named: bool) -> std::net::SocketAddr {
    let fake = fake_server(move |mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let id = loop {
            match next_frame(&mut stream, &mut buf).await {
                Some((OPEN, _, id, _)) => break id,
                Some(_) => {}
                None => return,
            }
        };
        let mut head = block(&[]);
        let flags = if named {
            head.extend_from_slice(&GZIP_FIELDS);
            FLAG_ENCODING
        } else {
            0
        };
        let answer = [
            frame(HEADERS, flags, id, &head),
            frame(MESSAGE, FLAG_COMPRESSED, id, &gzip_chunk(9)),
            end(id, 0, b"", b"", &block(&[])),
        ]
        .concat();
        if stream.write_all(&answer).await.is_err() {
            return;
        }
        // Read (and drop) what the client sends until it closes.
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await;
    fake.addr
}

/// What a client (`accepting` gzip or not) reads first of a server-streaming (`Produce`) and
/// a bidi (`PingPong`) answer whose one message is flagged compressed, its HEADERS naming gzip
/// (`named`) or no encoding: the codes of the failures, `Ok` when it read a message.
async fn streamed_answers(named: bool, accepting: bool) -> [Code; 2] {
    let mut codes = [Code::Ok; 2];
    for (i, code) in codes.iter_mut().enumerate() {
        let addr = answering_compressed(named).await;
        let channel = bounded(
            "connect",
            Channel::connect(Endpoint::new("127.0.0.1", addr.port())),
        )
        .await
        .expect("connect to the fake server");
        let mut client = StreamerClient::new(channel);
        if accepting {
            client = client.accept_compressed(CompressionEncoding::Gzip);
        }
        let answer = if i == 0 {
            bounded("produce", client.produce(ProduceRequest::default())).await
        } else {
            let requests = futures_util::stream::iter([Chunk::default()]);
            bounded("ping_pong", client.ping_pong(requests)).await
        };
        let mut answers = answer
            .expect("the fake server answered with HEADERS")
            .into_inner();
        *code = match bounded("the first message", answers.message()).await {
            Ok(Some(chunk)) => {
                assert_eq!(chunk.seq, 9, "the message read");
                Code::Ok
            }
            Ok(None) => panic!("the answer ended with no message"),
            Err(status) => {
                if status.code() == Code::Internal {
                    assert!(status.message().contains("named no encoding"), "{status:?}");
                }
                status.code()
            }
        };
    }
    codes
}

/// The stream body once could not tell that no encoding was named: a default client
/// refused a streamed answer's unnamed compressed message `UNIMPLEMENTED`.
#[tokio::test]
async fn a_client_that_accepts_no_compression_refuses_an_unnamed_streamed_answer_internal() {
    assert_eq!(
        streamed_answers(false, false).await,
        [Code::Internal, Code::Internal],
        "server-streaming and bidi answers, no encoding named"
    );
    assert_eq!(
        streamed_answers(true, false).await,
        [Code::Unimplemented, Code::Unimplemented],
        "server-streaming and bidi answers, gzip named but not accepted"
    );
}

#[tokio::test]
async fn a_client_that_accepts_gzip_refuses_an_unnamed_streamed_answer_internal() {
    assert_eq!(
        streamed_answers(false, true).await,
        [Code::Internal, Code::Internal],
        "server-streaming and bidi answers, no encoding named"
    );
    assert_eq!(
        streamed_answers(true, true).await,
        [Code::Ok, Code::Ok],
        "server-streaming and bidi answers, gzip named and accepted"
    );
}
