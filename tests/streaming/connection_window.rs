//! Many bidirectional streams whose client stops reading their answers for a while, then reads
//! them all: every stream finishes. The server's handlers stop taking requests once their
//! answers wait for the client's stream credit, so requests queue on the server; a connection
//! that then stopped reading to bound that queue would never read the credit its answers wait
//! for, even once the client reads again: a deadlock. The client keeps its streams' messages
//! under the connection window the server announced (`CONNECTION_WINDOW`, granted back with
//! WINDOW on call 0 as handlers consume), so the server never has to stop reading.

use crate::support::{Running, WHOLE};
use bytes::Bytes;
use futures_util::StreamExt;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::Chunk;
use std::time::Duration;
use tokio::task::JoinSet;

/// Streams on the one connection: each queues about a window (64 KiB) on the server once its
/// answers stall, so together they queue past the 16 MiB connection window.
const STREAMS: usize = 320;
/// Messages each stream sends, of `SIZE` bytes.
const MESSAGES: u64 = 4;
const SIZE: usize = 60 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_whose_answers_stall_never_stop_the_connection() {
    let server = Running::start();
    let channel = server.channel().await;
    let client = StreamerClient::new(channel.clone());
    let mut opened = Vec::with_capacity(STREAMS);
    for stream in 0..STREAMS {
        let requests = futures_util::stream::iter(0..MESSAGES).map(move |seq| Chunk {
            seq,
            payload: Bytes::from(vec![(stream % 251) as u8; SIZE]),
        });
        let answers = tokio::time::timeout(WHOLE, client.clone().ping_pong(requests))
            .await
            .expect("the stream opens in time")
            .expect("the stream opens")
            .into_inner();
        opened.push(answers);
    }
    // Nobody reads the answers for a while: the handlers' answers wait for stream credit, and
    // the requests behind them queue on the server as far as the windows let them.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut readers = JoinSet::new();
    for (stream, mut answers) in opened.into_iter().enumerate() {
        readers.spawn(async move {
            for seq in 0..MESSAGES {
                let chunk = answers
                    .message()
                    .await
                    .unwrap_or_else(|status| panic!("stream {stream}: {status:?}"))
                    .unwrap_or_else(|| panic!("stream {stream} ended after {seq} answers"));
                assert_eq!(chunk.seq, seq, "stream {stream}: in order");
                assert_eq!(chunk.payload.len(), SIZE);
            }
            let end = answers.message().await.expect("a clean end");
            assert!(end.is_none(), "stream {stream}: nothing after its answers");
        });
    }
    let mut done = 0;
    while let Some(result) = tokio::time::timeout(WHOLE, readers.join_next())
        .await
        .unwrap_or_else(|_| {
            panic!("{done} of {STREAMS} streams finished: the connection stopped moving")
        })
    {
        result.expect("reader");
        done += 1;
    }
    assert_eq!(done, STREAMS);
    server.stop().await;
}
