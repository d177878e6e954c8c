//! Compressed messages of a client's stream count what they decompress to against the
//! connection's budget of running requests (`Limits::max_running_requests_size`), as a
//! compressed unary request does (`compressed_running.rs`).
//!
//! A streaming handler holds what it read: a message it works on (a database write, a call to
//! another service) lives until that is done. Plain, such a message costs its client as many
//! bytes on the wire; compressed, a gzip message of 1 KiB holds 1 MiB, and a client of 4,096
//! streams each sending one held 4 GiB of one connection, against a count of their paths and
//! metadata alone. Now each stream's last decompressed message counts until its handler reads
//! the next: here a raw client opens 8 gzip streams, one message each, to a server with a
//! budget of 4 MiB whose handler keeps the message it read; past the budget the handler's read
//! fails `RESOURCE_EXHAUSTED`, and the streams that hold theirs hold no more than the budget.
//! And a stream that read a large message, then small ones, counts the small one only.

use crate::compressed_running::{ends, RESOURCE_EXHAUSTED};
use crate::raw::{frame, open_body, PREFACE};
use crate::stream_reset::COLLECT_PATH;
use crate::support::{bounded, start_serving, BOUND};
use prost::Message;
use sockrpc::{Code, CompressionEncoding, Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// OPEN: the client streams its request (`STREAM`), with encoding fields (`ENCODING`).
const STREAM_WITH_ENCODING: u8 = 0x02 | 0x08;
const FLAG_COMPRESSED: u8 = 0x08;
const BUDGET: usize = 4 << 20;
const DECODED: usize = 1 << 20;
const STREAMS: u32 = 8;

/// A `Collect` that keeps the first message it reads until the test releases it.
struct Keeping {
    release: Arc<Semaphore>,
    holding: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

impl Streamer for Keeping {
    sockrpc_tests::mirror_methods!(unary, produce, ping_pong, gather);

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let mut stream = request.into_inner();
        let first = match stream.message().await {
            Ok(first) => first,
            Err(status) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                return Err(status);
            }
        };
        self.holding.fetch_add(1, Ordering::SeqCst);
        let _permit = tokio::time::timeout(BOUND * 2, self.release.acquire()).await;
        Ok(Response::new(Summary {
            count: 1,
            bytes: first.map_or(0, |chunk| chunk.payload.len() as u64),
            ..Default::default()
        }))
    }
}

/// A streaming `Collect` whose OPEN names gzip as what it sends, and one gzip message of
/// `DECODED` bytes of payload (about 1 KiB on the wire); the stream stays open.
fn compressed_stream(call_id: u32) -> Vec<u8> {
    let mut open = open_body(COLLECT_PATH, &[]);
    // Encoding fields: length 3, accept gzip, send gzip (docs/COMPRESSION.md).
    open.extend_from_slice(&[3, 0, 1, 1]);
    let chunk = Chunk {
        seq: u64::from(call_id),
        payload: vec![0u8; DECODED].into(),
    }
    .encode_to_vec();
    let packed =
        sockrpc::compression::compress(CompressionEncoding::Gzip, &chunk).expect("gzip compresses");
    assert!(
        packed.len() < 16 * 1024,
        "{} bytes compressed",
        packed.len()
    );
    [
        frame(crate::raw::OPEN, STREAM_WITH_ENCODING, call_id, &open),
        frame(crate::raw::MESSAGE, FLAG_COMPRESSED, call_id, &packed),
    ]
    .concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_stream_messages_count_what_they_decompress_to() {
    let release = Arc::new(Semaphore::new(0));
    let holding = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let service = Keeping {
        release: Arc::clone(&release),
        holding: Arc::clone(&holding),
        refused: Arc::clone(&refused),
    };
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(StreamerServer::new(service).accept_compressed(CompressionEncoding::Gzip))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=STREAMS {
        bytes.extend_from_slice(&compressed_stream(call_id));
    }
    stream.write_all(&bytes).await.expect("write the streams");

    // Every handler either holds its message or had its read refused.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let settled = || holding.load(Ordering::SeqCst) + refused.load(Ordering::SeqCst);
    bounded("every stream's message held or refused", async {
        while settled() < STREAMS as usize {
            tokio::select! {
                n = stream.read(&mut buf) => {
                    let n = n.expect("read");
                    assert!(n > 0, "the server closed the connection");
                    got.extend_from_slice(&buf[..n]);
                }
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
    })
    .await;
    let held = holding.load(Ordering::SeqCst);
    assert!(
        held * DECODED <= BUDGET + DECODED,
        "{held} handlers hold {} MiB of decompressed messages on one connection, past the \
         budget of {} MiB",
        (held * DECODED) >> 20,
        BUDGET >> 20,
    );

    // The refused streams end RESOURCE_EXHAUSTED; the others are answered once released.
    release.add_permits(STREAMS as usize);
    bounded("every stream ended", async {
        while ends(&got).len() < STREAMS as usize {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let ends = ends(&got);
    let answered = ends.iter().filter(|(_, code)| *code == 0).count();
    assert_eq!(
        answered, held,
        "every stream that held its message is answered OK: {ends:?}"
    );
    assert!(
        ends.iter()
            .all(|(_, code)| *code == 0 || *code == RESOURCE_EXHAUSTED),
        "{ends:?}"
    );
    assert_eq!(Code::ResourceExhausted as u32, RESOURCE_EXHAUSTED);
    drop(stream);
    running.stop().await;
}

/// A client whose streams each begin with a large compressed message and go on with small
/// ones (a snapshot, then updates), opened one after another on one connection, to a handler
/// that answers each message and keeps none. Each stream counted the largest message it had
/// read for as long as it ran: after five of them the connection counted 5 MiB against its
/// budget of 4 MiB while its handlers held a few bytes, the sixth stream's snapshot was refused
/// `RESOURCE_EXHAUSTED`, and so was every new call on the connection, for as long as the
/// streams stayed open. A stream now counts the message its handler read last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_count_their_last_compressed_message_not_their_largest() {
    use sockrpc::{Channel, Endpoint};
    use sockrpc_tests::stream::streamer_client::StreamerClient;
    use tokio::sync::mpsc;

    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(
                StreamerServer::new(sockrpc_tests::mirror::Mirror)
                    .accept_compressed(CompressionEncoding::Gzip),
            )
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let channel = bounded(
        "connect",
        Channel::connect(Endpoint::new("127.0.0.1", running.addr.port()).pool_size(1)),
    )
    .await
    .expect("connect");
    let client = StreamerClient::new(channel).send_compressed(CompressionEncoding::Gzip);
    // The streams stay open (their senders and answers kept) until the end.
    let mut open = Vec::new();
    for stream in 0..STREAMS {
        let (tx, mut rx) = mpsc::channel::<Chunk>(2);
        let requests = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut answers = bounded("ping_pong", client.clone().ping_pong(requests))
            .await
            .unwrap_or_else(|status| panic!("stream {stream} opens: {status}"))
            .into_inner();
        for (seq, size) in [(0u64, DECODED), (1, 64)] {
            let chunk = Chunk {
                seq,
                payload: vec![0u8; size].into(),
            };
            bounded("send", tx.send(chunk)).await.expect("send");
            let echo = bounded("echo", answers.message())
                .await
                .unwrap_or_else(|status| panic!("stream {stream}, message {seq}: {status}"))
                .expect("an echo");
            assert_eq!(echo.payload.len(), size, "stream {stream}, message {seq}");
        }
        open.push((tx, answers));
    }
    let answer = bounded("unary", client.clone().unary(Chunk::default())).await;
    assert!(answer.is_ok(), "a call beside the streams: {answer:?}");
    drop(open);
    running.stop().await;
}
