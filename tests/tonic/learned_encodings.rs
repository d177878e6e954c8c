//! What a client learns from an error answer to a compressed request. gRPC's compression guide:
//! a server refusing a message's encoding answers `UNIMPLEMENTED` naming what it reads (as
//! `grpc-accept-encoding`, which the refusal still carries for programs), and an
//! `UNIMPLEMENTED` to a message in an encoding it reads is not about compression. Here the
//! server's error answer carries what it reads in the protocol's own field (the encoding fields
//! of a HEADERS before the END), so the client learns it from there: after a refusal it stops
//! using an encoding the server does not read, an error with no HEADERS (a method the server
//! does not have) leaves compression on, and a handler's own `grpc-accept-encoding` metadata
//! changes nothing. A proxy reads the COMPRESSED flag of each request off the wire.

use crate::support::{bounded, payload, EchoStreamer, Running, Sniffer};
use futures_util::stream::BoxStream;
use sockrpc::compression::EncodingSet;
use sockrpc::{
    Channel, Client, Code, CompressionEncoding, Endpoint, ProstCodec, Request, Response, Server,
    Status, Streaming,
};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::net::SocketAddr;

const UNARY: &str = "/sockrpc.test.stream.Streamer/Unary";
const MISSING: &str = "/sockrpc.test.stream.Streamer/NotThere";

async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::new("127.0.0.1", addr.port()).pool_size(1);
    bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect")
}

/// A unary call of `method` with a compressible chunk.
async fn call(
    client: &mut Client<Channel>,
    method: &'static str,
) -> Result<Response<Chunk>, Status> {
    call_seq(client, method, 1).await
}

/// A unary call of `method` with a compressible chunk numbered `seq`.
async fn call_seq(
    client: &mut Client<Channel>,
    method: &'static str,
    seq: u64,
) -> Result<Response<Chunk>, Status> {
    let chunk = Chunk {
        seq,
        payload: payload(2048),
    };
    bounded(
        method,
        client.unary(Request::new(chunk), method, ProstCodec),
    )
    .await
}

#[tokio::test]
async fn a_refusal_list_is_learned_and_a_missing_method_keeps_compression_on() {
    let gzip = EncodingSet::EMPTY.with(CompressionEncoding::Gzip);
    let gzip_server = Running::start(
        StreamerServer::new(EchoStreamer).accept_compressed(CompressionEncoding::Gzip),
    );
    let sniffer = Sniffer::start(gzip_server.addr).await;
    let mut client =
        Client::new(connect(sniffer.addr).await).send_compressed(CompressionEncoding::Gzip);

    // The first call goes plain; its HEADERS say the server reads gzip.
    call(&mut client, UNARY).await.expect("first call");
    assert_eq!(client.server_accepts(), gzip);

    // A method the server does not have: `UNIMPLEMENTED` from its router, no encoding list.
    let status = call(&mut client, MISSING)
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert_eq!(status.metadata().get_raw("grpc-accept-encoding"), None);
    assert_eq!(client.server_accepts(), gzip, "compression stays on");
    call(&mut client, UNARY).await.expect("compressed call");
    let compressed: Vec<bool> = sniffer
        .take()
        .requests
        .iter()
        .map(|s| s.compressed)
        .collect();
    assert_eq!(compressed, [false, true, true]);

    // Behind the same client, a server that reads zstd only refuses gzip, naming zstd: the
    // client learns that and sends plain from then on.
    let zstd_server = Running::start(
        StreamerServer::new(EchoStreamer).accept_compressed(CompressionEncoding::Zstd),
    );
    *client.get_mut() = connect(zstd_server.addr).await;
    let status = call(&mut client, UNARY).await.expect_err("gzip refused");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert_eq!(
        client.server_accepts(),
        EncodingSet::EMPTY.with(CompressionEncoding::Zstd)
    );
    call(&mut client, UNARY).await.expect("plain call");

    // A server that reads no compression at all (no compression settings) refuses gzip the
    // same way, its encoding fields saying it reads nothing: the client sends plain from then
    // on, rather than have each call to it refused.
    call(&mut client, UNARY).await.expect("plain call");
    *client.get_mut() = connect(gzip_server.addr).await;
    call(&mut client, UNARY)
        .await
        .expect("plain call, learning gzip");
    assert_eq!(client.server_accepts(), gzip);
    let plain_server = Running::start(StreamerServer::new(EchoStreamer));
    *client.get_mut() = connect(plain_server.addr).await;
    let status = call(&mut client, UNARY).await.expect_err("gzip refused");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert_eq!(client.server_accepts(), EncodingSet::EMPTY);
    call(&mut client, UNARY).await.expect("plain call");

    plain_server.stop().await;
    zstd_server.stop().await;
    gzip_server.stop().await;
}

/// A handler that answers a chunk numbered [`FORGED`] with its own `UNIMPLEMENTED`, carrying a
/// `grpc-accept-encoding` list of its choosing (the chunk's payload is the list, padded with
/// spaces so that the request goes compressed), and echoes
/// any other.
struct Forging;

/// The `seq` of a chunk [`Forging`] answers `UNIMPLEMENTED`.
const FORGED: u64 = 9;

type Chunks = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for Forging {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let chunk = request.into_inner();
        if chunk.seq != FORGED {
            return Ok(Response::new(chunk));
        }
        let mut status = Status::unimplemented("the handler's own");
        let list = String::from_utf8_lossy(&chunk.payload).into_owned();
        status
            .metadata_mut()
            .insert_str("grpc-accept-encoding", list.trim_end())
            .expect("an ASCII list");
        Err(status)
    }

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type GatherStream = Chunks;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

/// A handler's `UNIMPLEMENTED` with a `grpc-accept-encoding` list of its own neither turns the
/// client's compression off (`identity`) nor makes it take encodings the server does not read
/// (`zstd`): metadata is the handler's to write, and what the server reads travels in the
/// protocol's encoding fields, which say gzip.
#[tokio::test]
async fn a_handlers_accept_encoding_metadata_is_no_protocol_signal() {
    let gzip = EncodingSet::EMPTY.with(CompressionEncoding::Gzip);
    let service = StreamerServer::new(Forging).accept_compressed(CompressionEncoding::Gzip);
    let server = sockrpc_tests::serve::Running::start(Server::builder().add_service(service));
    let sniffer = Sniffer::start(server.addr).await;
    let mut client =
        Client::new(connect(sniffer.addr).await).send_compressed(CompressionEncoding::Gzip);
    call(&mut client, UNARY).await.expect("first call");
    assert_eq!(client.server_accepts(), gzip);

    for list in ["identity", "zstd,gzip,identity", "zstd"] {
        let chunk = Chunk {
            seq: FORGED,
            payload: format!("{list}{:2048}", "").into_bytes().into(),
        };
        let answer: Result<Response<Chunk>, Status> = bounded(
            "forged",
            client.unary(Request::new(chunk), UNARY, ProstCodec),
        )
        .await;
        let status = answer.expect_err("the handler's UNIMPLEMENTED");
        assert_eq!(status.code(), Code::Unimplemented, "{status}");
        assert_eq!(
            status.metadata().get_raw("grpc-accept-encoding"),
            Some(list.as_bytes()),
            "the handler's metadata reaches the caller as it was"
        );
        assert_eq!(client.server_accepts(), gzip, "after {list:?}");
    }
    call(&mut client, UNARY).await.expect("compressed call");
    let compressed = sniffer.take().requests.last().map(|s| s.compressed);
    assert_eq!(compressed, Some(true), "compression stays on");
}

/// A streamed answer's call that fails at once fails as the call, not at its first message:
/// what the server reads comes with the error, and makes no answer head of it.
#[tokio::test]
async fn a_streamed_answers_error_at_once_fails_the_call() {
    let service = StreamerServer::new(Forging).accept_compressed(CompressionEncoding::Gzip);
    let server = sockrpc_tests::serve::Running::start(Server::builder().add_service(service));
    let channel = connect(server.addr).await;
    let mut client = sockrpc_tests::stream::streamer_client::StreamerClient::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    for _ in 0..20 {
        let answer = bounded("produce", client.produce(ProduceRequest::default())).await;
        let Err(status) = answer else {
            panic!("the handler's error is the call's, not its answer stream's");
        };
        assert_eq!(status.code(), Code::Unimplemented, "{status}");
    }
}
