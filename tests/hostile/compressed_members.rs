//! A compressed request of many gzip members, or zstd frames, is refused, not decoded one by
//! one (`compression/algorithm.rs`, `MAX_MEMBERS`).
//!
//! Why: gzip bodies are read as Go reads them (members one after another), and zstd's reader
//! takes frames one after another; each costs a header and a reset of the decoder whatever it
//! holds. A hostile client's body of empty members decoded to nothing but held the server's
//! thread for seconds per 4 MiB message (about 3.4 s for gzip in a release build, 50 times a
//! one-member body of that size; 0.5 s for zstd): a decompression bomb by count rather than by
//! size. A few members stay accepted.

use crate::compressed_running::{ends, RESOURCE_EXHAUSTED};
use crate::raw::{frame, open_body, server_frames, ECHO_PATH, MESSAGE, OPEN, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message;
use sockrpc::CompressionEncoding;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FLAG_ENCODING: u8 = 0x08;
const FLAG_COMPRESSED: u8 = 0x08;
/// Far more members than any sender writes, few enough to decode quickly without the bound.
const MANY: usize = 1_000;

/// A unary echo call that sends `packed` as its request, compressed with `encoding`.
fn compressed_call(call_id: u32, encoding: CompressionEncoding, packed: &[u8]) -> Vec<u8> {
    // Encoding fields (docs/COMPRESSION.md): length 3, the accept bits, the send id.
    let (accept, send) = match encoding {
        CompressionEncoding::Gzip => (0x0001u16, 1u8),
        CompressionEncoding::Zstd => (0x0004, 3),
        other => panic!("{other} is not sent here"),
    };
    let mut open = open_body(ECHO_PATH, &[]);
    open.push(3);
    open.extend_from_slice(&accept.to_be_bytes());
    open.push(send);
    [
        frame(OPEN, FLAG_ENCODING, call_id, &open),
        frame(MESSAGE, FLAG_COMPRESSED | 1, call_id, packed),
    ]
    .concat()
}

fn compress(encoding: CompressionEncoding, bytes: &[u8]) -> Vec<u8> {
    sockrpc::compression::compress(encoding, bytes)
        .expect("compresses")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_many_members_is_refused_and_of_a_few_is_read() {
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .add_service(
                EchoServer::new(EchoImpl::default())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .accept_compressed(CompressionEncoding::Zstd),
            )
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let request = EchoRequest {
        payload: b"members".to_vec().into(),
        id: 7,
    }
    .encode_to_vec();
    let (head, tail) = request.split_at(request.len() / 2);
    let mut bytes = PREFACE.to_vec();
    let mut expected = Vec::new();
    for (call_id, encoding) in [
        (1, CompressionEncoding::Gzip),
        (5, CompressionEncoding::Zstd),
    ] {
        // The request split over two members: one message.
        let two = [compress(encoding, head), compress(encoding, tail)].concat();
        bytes.extend_from_slice(&compressed_call(call_id, encoding, &two));
        expected.push((call_id, 0));
        // The request, then `MANY` empty members.
        let empty = compress(encoding, b"");
        let mut many = compress(encoding, &request);
        for _ in 0..MANY {
            many.extend_from_slice(&empty);
        }
        bytes.extend_from_slice(&compressed_call(call_id + 2, encoding, &many));
        expected.push((call_id + 2, RESOURCE_EXHAUSTED));
    }
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    stream.write_all(&bytes).await.expect("write the calls");

    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("every call ended", async {
        while ends(&got).len() < expected.len() {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let mut ended = ends(&got);
    ended.sort_unstable();
    assert_eq!(
        ended, expected,
        "two members are one request; {MANY} more are refused (gzip: calls 1, 3; zstd: 5, 7)"
    );
    for call_id in [1, 5] {
        let answer = server_frames(&got)
            .into_iter()
            .find(|f| f.kind == MESSAGE && f.call_id == call_id)
            .expect("answered");
        let reply = EchoReply::decode(&answer.body[..]).expect("an echo reply");
        assert_eq!((&reply.payload[..], reply.id), (&b"members"[..], 7));
    }
    drop(stream);
    running.stop().await;
}
