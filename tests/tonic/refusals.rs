//! What a receiver does with compressed messages it cannot or will not read, driven from the
//! transport's own client (which sends whatever flags it is told) and from a raw socket.

use crate::support::{bounded, payload, EchoStreamer, Running};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::compression::{compress, EncodingFields, EncodingSet};
use sockrpc::protocol::frame::{self, Frame, OpenFrame, PREFACE};
use sockrpc::transport::{ClientConnection, FrameDecoder};
use sockrpc::{Code, CompressionEncoding, Limits, MetadataMap, MethodPath, Request, Status};
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const UNARY: &str = "/sockrpc.test.stream.Streamer/Unary";
const COLLECT: &str = "/sockrpc.test.stream.Streamer/Collect";
const PRODUCE: &str = "/sockrpc.test.stream.Streamer/Produce";

fn chunk_bytes(size: usize) -> Bytes {
    Chunk {
        seq: 7,
        payload: payload(size),
    }
    .encode_to_vec()
    .into()
}

async fn connect(server: &Running) -> ClientConnection {
    let stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    ClientConnection::spawn_tcp(stream, Limits::default())
}

/// A unary call whose one message is `body`, sent with `FLAG_COMPRESSED` and OPEN fields
/// naming `send`.
async fn send_compressed(
    conn: &ClientConnection,
    send: CompressionEncoding,
    body: Bytes,
) -> Result<Bytes, Status> {
    let mut request = Request::new(body);
    request.set_encoding(Some(EncodingFields::new(EncodingSet::EMPTY, Some(send))));
    request.set_message_compressed(true);
    let answer = bounded("call", conn.unary(MethodPath::from_static(UNARY), request)).await?;
    Ok(answer.into_inner())
}

#[tokio::test]
async fn an_encoding_the_server_does_not_accept_is_unimplemented() {
    let server = Running::start(
        StreamerServer::new(EchoStreamer).accept_compressed(CompressionEncoding::Zstd),
    );
    let conn = connect(&server).await;
    let gzipped = compress(CompressionEncoding::Gzip, &chunk_bytes(4096)).expect("gzip");
    let status = send_compressed(&conn, CompressionEncoding::Gzip, gzipped.clone())
        .await
        .expect_err("gzip is not accepted");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    // tonic's words exactly (its own test compares them whole).
    assert_eq!(
        status.message(),
        "Content is compressed with `gzip` which isn't supported",
        "{status}"
    );
    // gRPC's compression spec (and tonic): the refusal names what the server accepts.
    assert_eq!(
        status.metadata().get_str("grpc-accept-encoding"),
        Some("zstd,identity"),
        "{status:?}"
    );

    // The same on a client-streaming call: the handler's read fails, and so does the call.
    let (mut sender, mut receiver) = conn
        .open_stream_with(
            &MethodPath::from_static(COLLECT),
            &MetadataMap::new(),
            None,
            None,
            Some(EncodingFields::new(
                EncodingSet::EMPTY,
                Some(CompressionEncoding::Gzip),
            )),
        )
        .expect("open");
    std::future::poll_fn(|cx| sender.poll_ready(cx))
        .await
        .expect("credit");
    std::future::poll_fn(|cx| std::task::Poll::Ready(sender.send_flagged(cx, &gzipped, true)))
        .await
        .expect("sent");
    sender.close();
    let status = bounded("streamed answer", async {
        std::future::poll_fn(|cx| receiver.poll_headers(cx)).await?;
        match std::future::poll_fn(|cx| receiver.poll_message(cx)).await {
            Some(Ok(_)) => Ok(()),
            Some(Err(status)) => Err(status),
            None => Err(Status::internal("no answer")),
        }
    })
    .await
    .expect_err("refused");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert_eq!(
        status.metadata().get_str("grpc-accept-encoding"),
        Some("zstd,identity"),
        "{status:?}"
    );

    // A server with no compression settings at all refuses every compressed message.
    let plain = Running::start(StreamerServer::new(EchoStreamer));
    let conn = connect(&plain).await;
    let status = send_compressed(&conn, CompressionEncoding::Gzip, gzipped)
        .await
        .expect_err("no compression accepted");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert!(
        status.message().contains("accepts no compression"),
        "{status}"
    );
    assert_eq!(
        status.metadata().get_str("grpc-accept-encoding"),
        Some("identity"),
        "{status:?}"
    );
    plain.stop().await;
    server.stop().await;
}

#[tokio::test]
async fn a_corrupt_compressed_body_is_internal() {
    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .accept_compressed(CompressionEncoding::Deflate),
    );
    let conn = connect(&server).await;
    for encoding in [
        CompressionEncoding::Gzip,
        CompressionEncoding::Zstd,
        CompressionEncoding::Deflate,
    ] {
        let mut body = compress(encoding, &chunk_bytes(4096))
            .expect("compress")
            .to_vec();
        let middle = body.len() / 2;
        for byte in &mut body[middle..middle + 4] {
            *byte ^= 0xff;
        }
        let status = send_compressed(&conn, encoding, body.into())
            .await
            .expect_err("corrupt");
        assert_eq!(status.code(), Code::Internal, "{encoding}: {status}");
        assert!(status.message().contains("decompress"), "{status}");
        // A sound body on the same connection still works.
        let good = compress(encoding, &chunk_bytes(4096)).expect("compress");
        let answer = send_compressed(&conn, encoding, good).await.expect("sound");
        assert_eq!(Chunk::decode(answer).expect("chunk").payload, payload(4096));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_zip_bomb_ends_its_call_resource_exhausted() {
    const LIMIT: usize = 1024 * 1024;
    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(LIMIT),
    );
    let conn = connect(&server).await;
    // 16 MiB of zeros inside a valid Chunk: a small body on the wire.
    let bomb = Chunk {
        seq: 1,
        payload: Bytes::from(vec![0u8; 16 * 1024 * 1024]),
    }
    .encode_to_vec();
    for encoding in [CompressionEncoding::Gzip, CompressionEncoding::Zstd] {
        let packed = compress(encoding, &bomb).expect("compress");
        assert!(packed.len() < 256 * 1024, "{encoding}: {}", packed.len());
        let status = send_compressed(&conn, encoding, packed)
            .await
            .expect_err("bomb");
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{encoding}: {status}"
        );
        assert!(status.message().contains(&LIMIT.to_string()), "{status}");
    }
    // Under the limit, compressed, is fine.
    let fine = compress(CompressionEncoding::Zstd, &chunk_bytes(LIMIT / 2)).expect("zstd");
    send_compressed(&conn, CompressionEncoding::Zstd, fine)
        .await
        .expect("under the limit");
    server.stop().await;
}

/// Reads frames from `stream` until `ends` END frames have arrived.
async fn read_until_ends(stream: &mut TcpStream, ends: usize) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut seen_ends = 0;
    while seen_ends < ends {
        while let Some(frame) = decoder.decode(&mut buf).expect("frame") {
            if matches!(frame, Frame::End { .. }) {
                seen_ends += 1;
            }
            frames.push(frame);
        }
        if seen_ends >= ends {
            break;
        }
        let mut chunk = [0u8; 16 * 1024];
        let n = bounded("read", stream.read(&mut chunk))
            .await
            .expect("read");
        assert!(n > 0, "server closed early: {frames:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    frames
}

#[tokio::test]
async fn a_peer_that_never_advertised_an_encoding_never_receives_a_compressed_flag() {
    let server = Running::start(
        StreamerServer::new(EchoStreamer)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip)
            .compression_min_size(0),
    );
    let mut stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    // What a client of the previous version writes: OPENs without encoding fields.
    let mut out = BytesMut::new();
    out.extend_from_slice(&PREFACE);
    let metadata = MetadataMap::new();
    let unary = MethodPath::from_static(UNARY);
    frame::encode_open_frame(&mut out, 1, &OpenFrame::new(&unary, &metadata));
    frame::encode_message(&mut out, 1, true, &chunk_bytes(8192));
    let produce = MethodPath::from_static(PRODUCE);
    frame::encode_open_frame(&mut out, 3, &OpenFrame::new(&produce, &metadata));
    let request = ProduceRequest {
        count: 4,
        size: 8192,
        ..Default::default()
    };
    frame::encode_message(&mut out, 3, true, &request.encode_to_vec());
    stream.write_all(&out).await.expect("write");
    let frames = read_until_ends(&mut stream, 2).await;
    let mut messages = 0;
    for frame in &frames {
        match frame {
            Frame::Message {
                compressed, body, ..
            } => {
                messages += 1;
                assert!(!compressed, "compressed toward an old peer");
                assert_eq!(
                    Chunk::decode(body.clone())
                        .expect("plain chunk")
                        .payload
                        .len(),
                    8192
                );
            }
            Frame::Headers { encoding, .. } => assert_eq!(*encoding, None),
            Frame::End { code, message, .. } => assert_eq!(*code, Code::Ok, "{message}"),
            _ => {}
        }
    }
    assert_eq!(messages, 5, "{frames:?}");
    server.stop().await;
}
