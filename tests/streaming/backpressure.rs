//! Must show 2: a slow reader bounds how far the server's producer runs ahead, and a unary call
//! on the same connection completes while the stream is stalled.

use crate::support::{
    bounded, next, only_connection, tagged, unary_promptly, wait_until, Running, STEP, WHOLE,
};
use bytes::Bytes;
use prost::Message;
use sockrpc::protocol::frame::STREAM_WINDOW;
use sockrpc::{MetadataMap, MethodPath};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::time::Duration;

/// Messages of `size` payload bytes the window lets be outstanding (sent and not yet credited
/// back): the sender may send while less than `STREAM_WINDOW` bytes are outstanding.
fn window_messages(size: usize) -> usize {
    // seq 0 encodes smallest, so it gives the largest count.
    let smallest = Chunk {
        seq: 0,
        payload: Bytes::from(vec![0; size]),
    }
    .encoded_len();
    STREAM_WINDOW.div_ceil(smallest)
}

const BACKPRESSURE_COUNT: u64 = 100_000;
const BACKPRESSURE_SIZE: u32 = 1024;

/// How far the producer may run ahead of the consumer. Credit goes back only for messages the
/// client's application has taken, so whatever sits in socket buffers, in the client's queue or
/// in the server's outbox is still counted against the window: the bound is the window itself
/// (64 messages of 1 KiB) plus a little slack, whatever the socket buffer sizes.
fn backpressure_bound() -> usize {
    window_messages(BACKPRESSURE_SIZE as usize) + 2
}

/// Must show 2: 100,000 messages of 1 KiB to a slow reader. What the server's stream produced
/// beyond what the client consumed stays within the window at every point (measured in
/// messages, not time); while the stream is stalled, a unary call on the same connection
/// completes within 2 s; then the stream is drained to its clean end, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_bounds_the_producer_and_other_calls_proceed() {
    let server = Running::start();
    let channel = server.channel().await;
    let mut client = StreamerClient::new(channel.clone());
    let probe = server.streamer.probe("backpressure");
    let bound = backpressure_bound();
    tokio::time::timeout(WHOLE, async {
        let request = ProduceRequest {
            count: BACKPRESSURE_COUNT,
            size: BACKPRESSURE_SIZE,
            ..Default::default()
        };
        let mut responses = bounded(
            "open Produce",
            client.produce(tagged(request, "backpressure")),
        )
        .await
        .expect("Produce opens")
        .into_inner();
        let mut consumed = 0usize;
        let mut most_ahead = 0usize;
        for round in 0..5 {
            for _ in 0..100 {
                let chunk = next("slow read", &mut responses).await;
                assert_eq!(chunk.seq, consumed as u64, "in order");
                assert_eq!(chunk.payload.len(), BACKPRESSURE_SIZE as usize);
                consumed += 1;
            }
            // The reader stalls: the producer must stop once the window is used up.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let ahead = probe.produced() - consumed;
            most_ahead = most_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "round {round}: produced {} but consumed {consumed}: {ahead} ahead, bound {bound}",
                probe.produced()
            );
            if round == 0 || round == 4 {
                // One stalled stream does not hold up other calls on its connection.
                unary_promptly(&channel, 1000 + round, Duration::from_secs(2)).await;
                let ahead = probe.produced() - consumed;
                assert!(ahead <= bound, "after the unary call: {ahead} ahead");
            }
        }
        // Drain the rest at full speed; the bound holds at every message.
        let remaining = BACKPRESSURE_COUNT as usize - consumed;
        for _ in 0..remaining {
            let chunk = next("drain", &mut responses).await;
            assert_eq!(chunk.seq, consumed as u64, "in order");
            consumed += 1;
            let ahead = probe.produced() - consumed;
            most_ahead = most_ahead.max(ahead);
            assert!(
                ahead <= bound,
                "draining at {consumed}: {ahead} ahead, bound {bound}"
            );
        }
        let end = bounded("end", responses.message())
            .await
            .expect("clean end");
        assert!(end.is_none(), "exactly {BACKPRESSURE_COUNT} messages");
        assert_eq!(probe.produced(), BACKPRESSURE_COUNT as usize);
        assert!(probe.finished());
        let trailers = responses
            .trailers_now()
            .expect("trailers after a clean end");
        assert_eq!(
            trailers.get_str("x-produced"),
            Some(BACKPRESSURE_COUNT.to_string().as_str())
        );
        eprintln!("producer ran at most {most_ahead} messages ahead (bound {bound})");
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// Must show 2, the client's side: on the transport's own stream (where the queue is visible),
/// what the client has received and not consumed stays within the window while it reads
/// slowly. Dropping the receiver then cancels the server's stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_queue_stays_within_the_window() {
    let server = Running::start();
    let channel = server.channel().await;
    let probe = server.streamer.probe("queue");
    let conn = only_connection(&channel);
    tokio::time::timeout(WHOLE, async {
        let request = ProduceRequest {
            count: BACKPRESSURE_COUNT,
            size: BACKPRESSURE_SIZE,
            ..Default::default()
        };
        let mut metadata = MetadataMap::new();
        metadata.insert_str("x-token", "queue").expect("valid");
        let (_sender, mut receiver) = conn
            .open_stream(
                &MethodPath::from_static("/sockrpc.test.stream.Streamer/Produce"),
                &metadata,
                None,
                Some(Bytes::from(request.encode_to_vec())),
            )
            .expect("open the stream");
        let head = bounded(
            "response head",
            std::future::poll_fn(|cx| receiver.poll_headers(cx)),
        )
        .await
        .expect("head");
        assert_eq!(head.get_str("x-head"), Some("produce"));
        let largest = Chunk {
            seq: BACKPRESSURE_COUNT,
            payload: Bytes::from(vec![0; BACKPRESSURE_SIZE as usize]),
        }
        .encoded_len();
        let bound = backpressure_bound();
        let mut consumed = 0usize;
        let mut most_queued = 0usize;
        for round in 0..5 {
            for _ in 0..100 {
                let message = bounded(
                    "slow read",
                    std::future::poll_fn(|cx| receiver.poll_message(cx)),
                )
                .await
                .expect("a message")
                .expect("not a failure");
                let chunk = Chunk::decode(message).expect("decodes");
                assert_eq!(chunk.seq, consumed as u64);
                consumed += 1;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (messages, bytes) = receiver.queued();
            assert!(
                bytes < STREAM_WINDOW + largest,
                "round {round}: {bytes} bytes ({messages} messages) queued on the client"
            );
            assert!(messages <= bound, "round {round}: {messages} queued");
            most_queued = most_queued.max(bytes);
            let ahead = probe.produced() - consumed;
            assert!(ahead <= bound, "round {round}: producer {ahead} ahead");
        }
        eprintln!("at most {most_queued} bytes queued on the client (window {STREAM_WINDOW})");
        drop(receiver);
        wait_until(
            "the server's stream is dropped after the receiver is",
            || probe.cancelled(),
        )
        .await;
        assert!(probe.produced() < BACKPRESSURE_COUNT as usize);
        unary_promptly(&channel, 7, STEP).await;
    })
    .await
    .expect("the test finishes in time");
    server.stop().await;
}

/// A client that opens many streams and never reads its socket: each stream's window alone
/// would let the server queue 64 KiB per stream (64 MiB for 1,000 streams); the connection's
/// write buffer limit parks every producer once 8 MiB wait, so the server's memory stays bounded
/// by the connection, not by how many streams a client opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_streams_to_a_client_that_never_reads_stay_bounded() {
    use sockrpc::protocol::frame::{encode_message, encode_open, PREFACE};
    use tokio::io::AsyncWriteExt;

    const STREAMS: u32 = 1_000;
    let server = Running::start();
    let probe = server.streamer.probe("never-reads");
    let mut socket = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let path = MethodPath::from_static("/sockrpc.test.stream.Streamer/Produce");
    let mut metadata = MetadataMap::new();
    metadata
        .insert_str("x-token", "never-reads")
        .expect("valid");
    let request = ProduceRequest {
        count: 1_000,
        size: 1024,
        ..Default::default()
    }
    .encode_to_vec();
    let mut wire = bytes::BytesMut::from(&PREFACE[..]);
    for id in 1..=STREAMS {
        encode_open(&mut wire, id, None, &path, &metadata, false);
        encode_message(&mut wire, id, true, &request);
    }
    socket.write_all(&wire).await.expect("send the calls");

    // Let the producers run until they are all parked, then check they stopped early.
    let mut last = usize::MAX;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let produced = probe.produced();
        if produced == last {
            break;
        }
        last = produced;
    }
    let window_bound = STREAMS as usize * window_messages(1024);
    let produced = probe.produced();
    assert!(produced > 0, "nothing was produced");
    assert!(
        produced < window_bound / 2,
        "{produced} messages produced for a client that reads nothing; windows alone allow {window_bound}"
    );
    drop(socket);
    server.stop().await;
}
