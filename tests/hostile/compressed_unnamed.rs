//! A request message flagged compressed whose OPEN named no encoding is a protocol error, and
//! the server answers it `INTERNAL`, whether or not it accepts compression: gRPC's compression
//! spec says so of a message with its Compressed-Flag set and no `grpc-encoding`, and tonic's
//! `client_mark_compressed_without_header_server_enforces` and grpc-go answer so. A default
//! server answered `UNIMPLEMENTED` ("accepts no compression"), which reads to a client as a
//! method the server lacks. An encoding named but not accepted stays `UNIMPLEMENTED`, as tonic
//! answers it.

use crate::compressed_running::ends;
use crate::raw::{frame, open_body, MESSAGE, OPEN, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message;
use sockrpc::{CompressionEncoding, Router};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// OPEN's flag: encoding fields follow its metadata (`docs/COMPRESSION.md`).
const FLAG_ENCODING: u8 = 0x08;
/// MESSAGE's flag: the body is compressed.
const FLAG_COMPRESSED: u8 = 0x08;
/// MESSAGE's END_STREAM flag.
const LAST: u8 = 1;
const INTERNAL: u32 = 13;
const UNIMPLEMENTED: u32 = 12;

/// A unary echo call whose MESSAGE is a gzip request flagged compressed, under an OPEN that
/// names gzip as what it sends (`named`) or carries no encoding fields at all.
fn gzip_call(call_id: u32, named: bool) -> Vec<u8> {
    let mut open = open_body(b"/sockrpc.test.Echo/Echo", &[]);
    let flags = if named {
        // Encoding fields: length 3, accept gzip, send gzip.
        open.extend_from_slice(&[3, 0, 1, 1]);
        FLAG_ENCODING
    } else {
        0
    };
    let request = EchoRequest {
        payload: vec![7u8; 100].into(),
        id: u64::from(call_id),
    }
    .encode_to_vec();
    let packed = sockrpc::compression::compress(CompressionEncoding::Gzip, &request)
        .expect("gzip compresses");
    [
        frame(OPEN, flags, call_id, &open),
        frame(MESSAGE, FLAG_COMPRESSED | LAST, call_id, &packed),
    ]
    .concat()
}

/// Sends call 1 (no encoding named) and call 3 (gzip named) to a server of `router`; the
/// codes their ENDs carried.
async fn codes_from(router: Router) -> Vec<(u32, u32)> {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .router(router)
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let bytes = [PREFACE.to_vec(), gzip_call(1, false), gzip_call(3, true)].concat();
    stream.write_all(&bytes).await.expect("write the calls");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    bounded("both calls answered", async {
        while ends(&got).len() < 2 {
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

#[tokio::test]
async fn a_server_that_accepts_no_compression_refuses_an_unnamed_one_internal() {
    let router = Router::new().add_service(EchoServer::new(EchoImpl::default()));
    assert_eq!(
        codes_from(router).await,
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
        codes_from(router).await,
        [(1, INTERNAL), (3, 0)],
        "no encoding named: INTERNAL; gzip named and accepted: answered OK"
    );
}
