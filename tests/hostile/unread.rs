//! A server that floods a client's stream with empty messages (they take no flow-control
//! credit) while the application reads none: the client's memory for that call stays bounded.
//! The call fails `RESOURCE_EXHAUSTED` after the messages it holds, and the server is told to
//! stop with a CANCEL.

use crate::raw::{frame, server_frames, MESSAGE, PREFACE};
use crate::support::{bounded, BOUND};
use sockrpc::Code;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::ProduceRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const HEADERS: u8 = 2;
const CANCEL: u8 = 5;
/// More empty messages than a client holds unread for one call (2 × the 64 KiB window).
const FLOOD: usize = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_empty_messages_ends_the_unread_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // The client's preface, OPEN and request MESSAGE (call 1).
        while server_frames(&got).len() < 2 && got.len() < 1 << 20 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let mut flood = Vec::with_capacity(PREFACE.len() + 14 + FLOOD * 12);
        flood.extend_from_slice(PREFACE);
        flood.extend_from_slice(&frame(HEADERS, 0, 1, &0u16.to_be_bytes()));
        for _ in 0..FLOOD {
            flood.extend_from_slice(&frame(MESSAGE, 0, 1, &[]));
        }
        if stream.write_all(&flood).await.is_err() {
            return false;
        }
        // Then wait for the client's CANCEL of call 1 (bounded in bytes).
        // (`server_frames` reads a preface first: this side's stands in for the client's.)
        let mut after = PREFACE.to_vec();
        while after.len() < 1 << 20 {
            let cancelled = server_frames(&after)
                .iter()
                .any(|f| f.kind == CANCEL && f.call_id == 1);
            if cancelled {
                return true;
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => after.extend_from_slice(&buf[..n]),
            }
        }
        false
    });
    let mut client = StreamerClient::connect(addr.to_string())
        .await
        .expect("connect to the fake server");
    let response = bounded(
        "the answer's head",
        client.produce(ProduceRequest::default()),
    )
    .await
    .expect("the server answered with HEADERS");
    // The application reads nothing while the flood arrives.
    let cancelled = bounded("the client's CANCEL", server)
        .await
        .expect("fake server");
    assert!(cancelled, "the client never cancelled the flooded call");
    // What it held is still delivered, then the call's failure.
    let mut stream = response.into_inner();
    let mut read = 0usize;
    let failure = tokio::time::timeout(BOUND, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => read += 1,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    })
    .await
    .expect("the stream ends in time")
    .expect("the flooded call fails");
    assert_eq!(failure.code(), Code::ResourceExhausted, "{failure:?}");
    assert!(
        (1..FLOOD).contains(&read),
        "read {read} messages before the failure"
    );
}
