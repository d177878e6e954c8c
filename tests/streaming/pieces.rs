//! Large messages in pieces: a small answer is not held behind a whole large one.
//!
//! A raw client (frames written from docs/PROTOCOL.md) opens a stream whose one answer is
//! 3 MiB, then a unary call on the same connection, and reads slowly. The server's socket
//! buffers are small, so most of the 3 MiB waits in the server's outbox: with pieces
//! (`FLAG_MORE`), the unary answer goes out between two of them; without, it waited for the
//! whole message.

use crate::service::TestStreamer;
use crate::support::{bounded, STEP};
use prost::Message as _;
use sockrpc::Server;
use sockrpc::SocketConfig;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MESSAGE: u8 = 3;
const END: u8 = 4;
const WINDOW: u8 = 9;
const END_STREAM: u8 = 0x01;
const MORE: u8 = 0x02;
const FOLD_END: u8 = 0x10;
const SETTINGS: u8 = 0x20;
const CAP_PIECES: u32 = 0x8;
const PIECE: usize = 64 * 1024;
const ANSWER: u32 = 3 << 20;

fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&[kind, flags, 0, 0]);
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An OPEN for `path`: no deadline, no metadata.
fn open(call_id: u32, flags: u8, path: &str) -> Vec<u8> {
    let mut body = 0u64.to_be_bytes().to_vec();
    body.extend_from_slice(&(path.len() as u16).to_be_bytes());
    body.extend_from_slice(path.as_bytes());
    body.extend_from_slice(&0u16.to_be_bytes());
    frame(1, flags, call_id, &body)
}

/// A server whose sockets buffer little, so that a large answer waits in its outbox.
async fn small_buffered_server() -> SocketAddr {
    let sockets = SocketConfig::default().send_buffer_size(Some(16 * 1024));
    let listener = sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &sockets)
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(
        Server::builder()
            .socket_config(sockets)
            .add_service(StreamerServer::new(TestStreamer::default()))
            .serve_with_listener(listener),
    );
    addr
}

/// Connects with a small receive buffer, sends the preface (and SETTINGS with `caps`), and
/// opens call 1, a stream whose one answer is [`ANSWER`] bytes.
async fn open_large_stream(addr: SocketAddr, caps: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    let mut stream = bounded("connect", socket.connect(addr))
        .await
        .expect("connect");
    let mut wire = b"SOCKRPC\x01".to_vec();
    if let Some(caps) = caps {
        wire.extend(frame(WINDOW, SETTINGS, 0, &caps.to_be_bytes()));
    }
    wire.extend(open(1, 0, "/sockrpc.test.stream.Streamer/Produce"));
    let request = ProduceRequest {
        count: 1,
        size: ANSWER,
        ..ProduceRequest::default()
    };
    wire.extend(frame(MESSAGE, END_STREAM, 1, &request.encode_to_vec()));
    bounded("send", stream.write_all(&wire))
        .await
        .expect("send");
    stream
}

/// What the raw client reads: frames as (kind, flags, call id, body), and the bytes after the
/// last whole one.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
    seen: Vec<(u8, u8, u32, Vec<u8>)>,
}

impl Frames {
    /// Reads once (at most `chunk` bytes) and takes out every whole frame; the preface and
    /// SETTINGS first.
    async fn read(&mut self, stream: &mut TcpStream, chunk: usize) {
        let mut bytes = vec![0u8; chunk];
        let n = bounded("read", stream.read(&mut bytes))
            .await
            .expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&bytes[..n]);
        if self.seen.is_empty() && self.buf.starts_with(b"SOCKRPC\x01") {
            self.buf.drain(..8);
            self.seen.push((0, 0, 0, Vec::new()));
        }
        while self.buf.len() >= 12 {
            let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            let whole = 12 + len as usize;
            if self.buf.len() < whole {
                break;
            }
            let call = u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
            let (kind, flags) = (self.buf[4], self.buf[5]);
            self.seen
                .push((kind, flags, call, self.buf[12..whole].to_vec()));
            self.buf.drain(..whole);
        }
    }

    /// Where call `id`'s first MESSAGE without MORE, or END, is.
    fn last_of(&self, id: u32) -> Option<usize> {
        self.seen.iter().position(|(kind, flags, call, _)| {
            *call == id && (*kind == END || (*kind == MESSAGE && flags & MORE == 0))
        })
    }

    /// Call `id`'s MESSAGE frames up to and including the first without MORE.
    fn messages(&self, id: u32) -> Vec<&(u8, u8, u32, Vec<u8>)> {
        let end = self.last_of(id).unwrap_or(self.seen.len());
        self.seen[..=end.min(self.seen.len() - 1)]
            .iter()
            .filter(|(kind, _, call, _)| *call == id && *kind == MESSAGE)
            .collect()
    }
}

#[tokio::test]
async fn a_unary_answer_passes_a_large_message_going_out_in_pieces() {
    let addr = small_buffered_server().await;
    let mut stream = open_large_stream(addr, Some(CAP_PIECES)).await;
    let mut frames = Frames::default();
    // Bounded: the stream's first bytes arrive in a few reads.
    for _ in 0..1_000 {
        if frames.seen.iter().any(|f| f.0 == MESSAGE && f.2 == 1) {
            break;
        }
        frames.read(&mut stream, 4096).await;
    }
    assert!(
        frames.seen.iter().any(|f| f.0 == MESSAGE && f.2 == 1),
        "no answer began"
    );
    // The large answer has begun; now a unary call on the same connection.
    let mut wire = open(3, FOLD_END, "/sockrpc.test.stream.Streamer/Unary");
    let request = Chunk {
        seq: 7,
        payload: Default::default(),
    };
    wire.extend(frame(MESSAGE, END_STREAM, 3, &request.encode_to_vec()));
    bounded("send", stream.write_all(&wire))
        .await
        .expect("send");
    // Read slowly, 16 KiB a millisecond, until both calls' answers are in. Bounded: 3 MiB
    // takes about 200 reads of 16 KiB.
    let deadline = tokio::time::Instant::now() + STEP;
    while frames.last_of(1).is_none() || frames.last_of(3).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "answers incomplete");
        frames.read(&mut stream, 16 * 1024).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (large_end, small) = (
        frames.last_of(1).expect("large"),
        frames.last_of(3).expect("small"),
    );
    assert!(
        small < large_end,
        "the unary answer (frame {small}) waited behind the whole large message (its end: frame \
         {large_end})"
    );
    // The pieces make the message whole: each at most a piece (the last at most half a piece
    // more), MORE on all but the last.
    let pieces = frames.messages(1);
    assert!(pieces.len() > 1, "the large answer came in one frame");
    for (i, (_, flags, _, body)) in pieces.iter().enumerate() {
        assert!(body.len() <= PIECE + PIECE / 2);
        assert_eq!(flags & MORE != 0, i + 1 < pieces.len(), "piece {i}");
    }
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.3.iter().copied()).collect();
    let chunk = Chunk::decode(&whole[..]).expect("the pieces make one message");
    assert_eq!(chunk.payload.len(), ANSWER as usize);
    let small = &frames.seen[small];
    assert_eq!(Chunk::decode(&small.3[..]).expect("answer").seq, 7);
}

#[tokio::test]
async fn a_client_that_announces_no_pieces_gets_a_large_message_whole() {
    let addr = small_buffered_server().await;
    let mut stream = open_large_stream(addr, None).await;
    let mut frames = Frames::default();
    let deadline = tokio::time::Instant::now() + STEP;
    while frames.last_of(1).is_none() {
        assert!(tokio::time::Instant::now() < deadline, "answer incomplete");
        frames.read(&mut stream, 256 * 1024).await;
    }
    let messages = frames.messages(1);
    assert_eq!(messages.len(), 1, "an old client got pieces");
    let chunk = Chunk::decode(&messages[0].3[..]).expect("one whole message");
    assert_eq!(chunk.payload.len(), ANSWER as usize);
}
