//! What a client learns from an `UNIMPLEMENTED` answer to a compressed request. gRPC's
//! compression guide: a server refusing a message's encoding answers `UNIMPLEMENTED` with
//! `grpc-accept-encoding` naming what it reads, and an `UNIMPLEMENTED` to a message compressed
//! with an encoding that list names is not about compression. So the client takes the list as
//! the server's accept set (and stops using an encoding it does not name), and an
//! `UNIMPLEMENTED` with no list (a method the server does not have) leaves compression on. A
//! proxy reads the COMPRESSED flag of each request off the wire.

use crate::support::{bounded, payload, EchoStreamer, Running, Sniffer};
use sockrpc::compression::EncodingSet;
use sockrpc::{
    Channel, Client, Code, CompressionEncoding, Endpoint, ProstCodec, Request, Response, Status,
};
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
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
    let chunk = Chunk {
        seq: 1,
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

    zstd_server.stop().await;
    gzip_server.stop().await;
}
