//! A server that streams answers without waiting for the client's credit, to an application
//! that reads none: the stream's window must bound what the client holds for the call.
//!
//! A server that announced `CAP_CHARGED` counts each answer as its length + 64 against the
//! call's 64 KiB window and sends only while what it counts is under it, so the client never
//! finds a window's worth of answers unread when another arrives (`docs/FLOW-CONTROL.md`).
//! Until session 38 the client refused a message only past the window *and* one whole message
//! limit (4 MiB), so such a server could make it hold 4 MiB of small answers per stream, 64
//! times the window: 64 streams on a connection, 256 MiB; and empty answers, which take no
//! bytes, until 131,072 were unread. Now the first answer past the window, each counted as
//! its charge, fails the call `INTERNAL` and the client sends CANCEL. A server that does not announce
//! `CAP_CHARGED` (an older one) is over-credited by the client's charge, so it may run ahead of
//! the window legitimately: it keeps the older slack.

use crate::raw::{block, frame, MESSAGE, PREFACE};
use crate::server_probe::{end, fake_server, next_frame, next_request, settings, HEADERS};
use crate::support::bounded;
use prost::Message as _;
use sockrpc::{Code, Status};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::{Chunk, ProduceRequest};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const CANCEL: u8 = 5;
/// `CAP_CHARGED` in the server's SETTINGS.
const CAP_CHARGED: u16 = 0x4;
/// Answers the server sends at once, each a `Chunk` of 1 KiB: 200 KiB, three windows, far
/// under the older slack of a window and a message limit.
const ANSWERS: u64 = 200;
/// Empty answers the server sends at once: charged 64 bytes each, two windows (1,024 fill one),
/// far under the 131,072 unread messages a client holds before it refuses for their number.
const EMPTY_ANSWERS: u64 = 2048;

/// A server that answers the first streaming call with `answers` chunks of `size` bytes at
/// once (empty messages when `size` is 0), ignoring credit, and an OK END, after a SETTINGS
/// with `capabilities`; sets `cancelled` when the client's CANCEL of that call arrives (reading
/// until the client closes, or a quiet while).
async fn flooding_server(
    capabilities: u16,
    answers: u64,
    size: usize,
    cancelled: Arc<AtomicBool>,
) -> std::net::SocketAddr {
    let fake = fake_server(move |mut stream| {
        let cancelled = Arc::clone(&cancelled);
        async move {
            let hello = [&PREFACE[..], &settings(0, capabilities)].concat();
            let _ = stream.write_all(&hello).await;
            let mut buf = Vec::new();
            let Some((id, _)) = next_request(&mut stream, &mut buf).await else {
                return;
            };
            let mut flood = frame(HEADERS, 0, id, &block(&[]));
            for seq in 0..answers {
                let chunk = match size {
                    0 => Vec::new(),
                    _ => Chunk {
                        seq,
                        payload: vec![0x5a; size].into(),
                    }
                    .encode_to_vec(),
                };
                flood.extend_from_slice(&frame(MESSAGE, 0, id, &chunk));
            }
            // Ended, so that only a refusal (not the stream's drop) makes the client cancel.
            flood.extend_from_slice(&end(id, 0, b"", b"", &block(&[])));
            if stream.write_all(&flood).await.is_err() {
                return;
            }
            while let Some((kind, _, call, _)) = next_frame(&mut stream, &mut buf).await {
                if kind == CANCEL && call == id {
                    cancelled.store(true, Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    fake.addr
}

/// Opens a `Produce` stream to `addr`, reads nothing while the answers arrive, then reads the
/// stream to its end: the chunks read and its failure, if any.
async fn read_later(addr: std::net::SocketAddr) -> (u64, Option<Status>) {
    let mut client = bounded("connect", StreamerClient::connect(addr.to_string()))
        .await
        .expect("connect to the fake server");
    let response = bounded(
        "the answer's head",
        client.produce(ProduceRequest::default()),
    )
    .await
    .expect("the server answered with HEADERS");
    // The application reads nothing while the flood arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut stream = response.into_inner();
    let mut read = 0;
    let end = bounded("the stream's end or its last chunk", async {
        loop {
            match tokio::time::timeout(std::time::Duration::from_millis(300), stream.message())
                .await
            {
                Ok(Ok(Some(_))) => read += 1,
                Ok(Ok(None)) => return None,
                Ok(Err(status)) => return Some(status),
                Err(_) => panic!("the stream neither ended nor failed after {read} chunks"),
            }
        }
    })
    .await;
    (read, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_past_the_window_of_a_charging_server_fail_the_call() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let addr = flooding_server(CAP_CHARGED, ANSWERS, 1024, Arc::clone(&cancelled)).await;
    let (read, end) = read_later(addr).await;
    let status = end.unwrap_or_else(|| panic!("read {read} chunks and no failure"));
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("flow-control window"),
        "{status:?}"
    );
    // What arrived within the window (64 KiB of 1 KiB chunks) is still delivered, no more.
    assert!((1..=64).contains(&read), "read {read} chunks");
    cancel_arrives(&cancelled).await;
}

/// Empty answers take no bytes of the window, but a charging server counts each as 64: it
/// sends at most 1,024 unread. Counted by their bytes alone, a server ignoring its credit could
/// send 131,072 before the client refused them for their number (`unread.rs`), a few MiB held
/// per stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_answers_past_the_window_of_a_charging_server_fail_the_call() {
    let cancelled = Arc::new(AtomicBool::new(false));
    let addr = flooding_server(CAP_CHARGED, EMPTY_ANSWERS, 0, Arc::clone(&cancelled)).await;
    let (read, end) = read_later(addr).await;
    let status = end.unwrap_or_else(|| panic!("read {read} empty answers and no failure"));
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert!(
        status.message().contains("flow-control window"),
        "{status:?}"
    );
    assert!((1..=1024).contains(&read), "read {read} empty answers");
    cancel_arrives(&cancelled).await;
}

/// Waits for the client's CANCEL of the flooded call.
async fn cancel_arrives(cancelled: &AtomicBool) {
    bounded("the client's CANCEL", async {
        while !cancelled.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_server_keeps_the_slack_its_over_credit_needs() {
    let cancelled = Arc::new(AtomicBool::new(false));
    for (answers, size) in [(ANSWERS, 1024), (EMPTY_ANSWERS, 0)] {
        let addr = flooding_server(0, answers, size, Arc::clone(&cancelled)).await;
        let (read, end) = read_later(addr).await;
        assert!(end.is_none(), "{size}-byte answers: {end:?}");
        assert_eq!(read, answers, "{size}-byte answers");
        assert!(!cancelled.load(Ordering::SeqCst), "the call was cancelled");
    }
}
