//! `StreamingFromServer` with empty answers (`response_size` 0: gRPC's 0-byte scenarios) to a
//! client that reads slower than the server produces.
//!
//! An empty message takes no bytes of a stream's window, so before the per-message charge the
//! server sent them without bound (only its 8 MiB write buffer held it back: ~700,000 frames),
//! and the client failed the call `RESOURCE_EXHAUSTED` once it held 131,072 unread. gRPC never
//! fails this call: each message costs its 5-byte prefix of HTTP/2 window, so the reader paces
//! the writer.

use crate::support::{bounded, Bench, STEP, WHOLE};
use sockrpc::protocol::frame::{MESSAGE_CHARGE, STREAM_WINDOW};
use sockrpc_interop::pb::SimpleRequest;
use std::time::Duration;
use tokio::time::Instant;

/// More than the 131,072 unread messages a client holds on one call.
const FLOOD: u64 = 140_000;

/// Empty answers a reader that does not read lets the server produce: the window's worth of
/// per-message charges, plus the one the server polls before it waits for credit, plus slack.
fn bound() -> u64 {
    (STREAM_WINDOW / MESSAGE_CHARGE) as u64 + 16
}

/// A client that does not read an endless stream of empty answers holds the server back at
/// its window, and then reads more answers than a client may hold unread without the call
/// failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answers_are_paced_by_a_slow_reader() {
    let bench = Bench::start();
    let mut client = bench.client().await;
    tokio::time::timeout(WHOLE, async {
        let mut answers = bounded(
            "open StreamingFromServer",
            client.streaming_from_server(SimpleRequest::default()),
        )
        .await
        .expect("StreamingFromServer opens")
        .into_inner();
        let first = bounded("first answer", answers.message())
            .await
            .expect("first answer")
            .expect("an answer, not the end");
        assert_eq!(first.payload, None, "response_size 0: no payload");

        // Not reading: the server goes on until flow control holds it (or, without it, until
        // it has sent more than the client may hold unread).
        let deadline = Instant::now() + STEP;
        let mut last = bench.server.streamed_answers();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = bench.server.streamed_answers();
            if now == last || now > FLOOD || Instant::now() > deadline {
                last = now;
                break;
            }
            last = now;
        }
        assert!(
            last <= bound(),
            "the server produced {last} empty answers for a client that read 1 (bound {})",
            bound()
        );

        // Reading on, past what a client may hold unread: the call does not fail.
        for read in 1..FLOOD {
            match bounded("next answer", answers.message()).await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the endless stream ended after {read} answers"),
                Err(status) => panic!("answer {read} failed: {status:?}"),
            }
        }
        assert_eq!(bench.server.live_streams(), 1);
        drop(answers);
    })
    .await
    .expect("test finished in time");
    bench.running.stop().await;
}
