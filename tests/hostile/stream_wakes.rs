//! Response streams parked because their connection's write buffer is past its high-water mark
//! are woken a few at a time as a slow client drains it, not all at once
//! (`server/pump.rs`, the parked writers in `server/respond.rs`).
//!
//! `parked_wakes.rs` checks the same for handlers that wait. Here the answers are streams: a
//! client opens thousands of server streams whose answers are ready at once, and reads slowly.
//! The connection used to wake every parked stream each pass it found its buffer under the
//! mark; one or two sent a message, the buffer passed the mark again, and the rest parked
//! again: thousands of polls per few KiB the client read. Streams are polled on the
//! connection's own task, each within its call's `rpc` span, so their polls are counted as the
//! enters of those spans (`parked_wakes.rs`'s counter).

use crate::parked_wakes::{counted_runtime, PollCount, Slow, SEND_BUFFER};
use crate::raw::{connect, frame, open, END_STREAM, MESSAGE, PREFACE};
use crate::support::{bounded, fresh_call, start_serving_with};
use crate::unread_answers::read_all_ends;
use crate::unread_waiting_answers::SlowGrow;
use futures_util::StreamExt;
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::mirror::Chunks;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PRODUCE_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Produce";
/// Streams opened at once, each answering [`MESSAGES`] chunks of [`SIZE`] bytes (within the
/// stream window, so the client needs grant no credit): 47 MiB in all, so over a thousand
/// streams park behind the 8 MiB mark.
const STREAMS: u32 = 2000;
const MESSAGES: u64 = 2;
const SIZE: u32 = 12 * 1024;
/// Polls (span enters) of one stream while the client reads: most streams are dispatched then
/// (the connection takes no more frames while its buffer is past the mark): the dispatch and
/// the handler's first poll, the stream's first poll on the connection's task, where it parks,
/// and its turn, in which it sends everything while the buffer has room (4.0 a stream
/// measured). Waking every parked stream per drain made it 61.
const POLLS_PER_STREAM_READING: u64 = 6;

/// `Produce`, its chunks ready at once; the rest is `Mirror`'s.
struct Ready;

impl Streamer for Ready {
    sockrpc_tests::mirror_methods!(unary, collect, ping_pong, gather);

    type ProduceStream = Chunks;

    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let request = request.into_inner();
        let size = request.size.min(SIZE) as usize;
        let chunks = (0..request.count.min(MESSAGES)).map(move |seq| {
            Ok(Chunk {
                seq,
                payload: vec![7; size].into(),
            })
        });
        Ok(Response::new(futures_util::stream::iter(chunks).boxed()))
    }
}

#[test]
fn parked_response_streams_are_woken_a_few_at_a_time_as_a_slow_client_reads() {
    let counter = Arc::new(PollCount::default());
    let runtime = counted_runtime(&counter);
    runtime.block_on(async {
        let socket =
            sockrpc::transport::SocketConfig::default().send_buffer_size(Some(SEND_BUFFER));
        let server = start_serving_with(&socket, |listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(StreamerServer::new(Ready))
                // For the fresh call that checks the server still serves.
                .add_service(EchoServer::new(SlowGrow))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
        let produce = ProduceRequest {
            count: MESSAGES,
            size: SIZE,
            ..ProduceRequest::default()
        }
        .encode_to_vec();
        let mut calls = PREFACE.to_vec();
        for call_id in 1..=STREAMS {
            calls.extend_from_slice(&open(call_id, PRODUCE_PATH, &[]));
            calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &produce));
        }
        let mut stream = connect(server.addr).await;
        bounded("write the calls", stream.write_all(&calls))
            .await
            .expect("write");
        // The buffer fills past the mark; the streams behind it park.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = counter.enters.load(Ordering::Relaxed);
        let mut slow = Slow::new(&mut stream);
        let limit = u64::from(STREAMS) * (MESSAGES * (u64::from(SIZE) + 64) + 1024) + 1024;
        let codes = tokio::time::timeout(
            Duration::from_secs(60),
            read_all_ends(&mut slow, STREAMS, limit),
        )
        .await
        .expect("every stream ends as the client reads");
        assert!(codes.iter().all(|&c| c == 0), "END codes: {codes:?}");
        let polls = counter.enters.load(Ordering::Relaxed) - before;
        let spans = counter.spans.load(Ordering::Relaxed);
        eprintln!("{spans} streams, {polls} polls of their tasks while the client read");
        assert!(
            spans >= u64::from(STREAMS),
            "the count sees every call's span ({spans})"
        );
        assert!(
            polls <= u64::from(STREAMS) * POLLS_PER_STREAM_READING,
            "{polls} polls of {STREAMS} streams while the client read: parked streams were \
             woken all at once"
        );
        drop(stream);
        fresh_call(server.addr, 1).await;
        server.stop().await;
    });
}
