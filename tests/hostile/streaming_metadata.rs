//! Streaming calls count their metadata against the connection's budget of running requests
//! (`Limits::max_running_requests_size`, `server/call.rs`).
//!
//! A streaming call's handler holds its path and metadata for as long as it runs. Those were
//! counted nowhere: the budget covered unary requests, the budget of `open.rs` unary calls
//! waiting for their message, and the connection window a stream's queued messages. So
//! 4,000 streaming OPENs with metadata blocks of 455 one-byte keys (16 KiB as counted, 1.8 KiB
//! on the wire), whose handlers wait for a message that never comes, held 151 MiB of one
//! server connection (peak resident size, measured as `pending_memory.rs` does) from 7 MiB sent,
//! bounded only by the call cap. Here the budget is 1 MiB: the streams past it are refused
//! `RESOURCE_EXHAUSTED`, those under it run, and the connection goes on serving.

use crate::raw::{echo_message, frame, open, server_frames, ECHO_PATH, END, OPEN, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl};
use sockrpc_tests::echo::echo_server::EchoServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const STREAM: u8 = 0x02;
pub(crate) const CANCEL: u8 = 5;
pub(crate) const RESOURCE_EXHAUSTED: u32 = 8;
/// Streaming OPENs sent: 200 blocks of 16,382 bytes as HTTP/2 counts them, over 3 MiB.
pub(crate) const OPENS: u32 = 200;
/// Entries per block: 2 + 4 × 455 bytes, 16,382 as counted, just under the 16 KiB limit.
pub(crate) const ENTRIES: usize = 455;
pub(crate) const BUDGET: usize = 1 << 20;

/// A streaming OPEN of `path` with `ENTRIES` entries `a: ""`.
pub(crate) fn streaming_open(call_id: u32, path: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + path.len() + 4 * ENTRIES);
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&(path.len() as u16).to_be_bytes());
    body.extend_from_slice(path);
    body.extend_from_slice(&(ENTRIES as u16).to_be_bytes());
    for _ in 0..ENTRIES {
        body.extend_from_slice(&[1, b'a', 0, 0]);
    }
    frame(OPEN, STREAM, call_id, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_calls_past_the_running_budget_are_refused() {
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=OPENS {
        bytes.extend_from_slice(&streaming_open(call_id, ECHO_PATH));
    }
    // A unary call after them: its answer shows the server has taken every OPEN.
    let last = OPENS + 1;
    bytes.extend_from_slice(&open(last, ECHO_PATH, &[]));
    bytes.extend_from_slice(&echo_message(last, 7, b"after"));
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the unary call after the streams is answered", async {
        while !server_frames(&got)
            .iter()
            .any(|f| f.kind == END && f.call_id == last)
        {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let frames = server_frames(&got);
    let code = |call_id: u32| {
        frames
            .iter()
            .find(|f| f.kind == END && f.call_id == call_id)
            .map(|f| u32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]]))
    };
    // Over the budget the streams hold, a unary call is refused too, as it would be past it.
    assert!(
        code(last).is_some(),
        "the unary call after them is answered"
    );
    let refused = (1..=OPENS)
        .filter(|id| code(*id) == Some(RESOURCE_EXHAUSTED))
        .count();
    let other: Vec<_> = (1..=OPENS)
        .filter_map(|id| code(id).filter(|c| *c != RESOURCE_EXHAUSTED))
        .collect();
    assert!(other.is_empty(), "streams ended otherwise: {other:?}");
    let runs = OPENS as usize - refused;
    // Each counts at least its 455 entries' bytes and 32 bytes apiece.
    assert!(
        runs * ENTRIES * 36 <= BUDGET + ENTRIES * 200,
        "{runs} streaming calls run holding their metadata, past the budget of {BUDGET} bytes \
         ({refused} refused)"
    );
    assert!(runs >= 1, "the first stream runs");

    // Cancelled, the streams give their share back: the next call is served.
    let mut bytes = Vec::new();
    for call_id in 1..=OPENS {
        bytes.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
    }
    let after = last + 1;
    bytes.extend_from_slice(&open(after, ECHO_PATH, &[]));
    bytes.extend_from_slice(&echo_message(after, 8, b"after the cancels"));
    stream.write_all(&bytes).await.expect("write");
    bounded("the unary call after the cancels is answered", async {
        while !server_frames(&got)
            .iter()
            .any(|f| f.kind == END && f.call_id == after)
        {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let frames = server_frames(&got);
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == after)
        .expect("END");
    assert_eq!(
        &end.body[..4],
        &0u32.to_be_bytes(),
        "served once the streams ended"
    );
    drop(stream);
    running.stop().await;
}
