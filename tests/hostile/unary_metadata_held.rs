//! A unary call whose handler waits counts its metadata against the connection's budget of
//! running requests (`Limits::max_running_requests_size`) as parsed, the same count a stream's
//! or a waiting call's metadata gets (`frame::metadata_held`, `server/call.rs`, `server/open.rs`).
//!
//! A unary call's metadata was counted as its limit counts it, 36 bytes for an entry of a
//! one-byte key and no value, while the parsed entry holds over 64 (its place in the table,
//! which grows by doubling, and its key's allocation); streams counted 128. Under a 1 MiB
//! budget, 64 such unary calls ran where 18 streams did: 1.9 MiB held of entries' tables alone.
//! Here the same metadata blocks are sent as unary calls whose handlers sleep and as streams
//! whose handlers wait: no more unary calls run than streams, and what they hold stays within
//! the budget.

use crate::raw::{echo_message, frame, open, server_frames, ECHO_PATH, END, MESSAGE, OPEN};
use crate::raw::{END_STREAM, PREFACE};
use crate::streaming_metadata::{streaming_open, CANCEL, ENTRIES, RESOURCE_EXHAUSTED};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::SleepRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
/// Calls sent of each kind: far more than the budget lets run.
const CALLS: u32 = 120;
const BUDGET: usize = 1 << 20;
/// What a parsed entry of a one-byte key and no value holds at the least: its place in the
/// map's table (a key `String` and a value of `Bytes` and a flag), not counting the table's
/// spare capacity nor its key's allocation.
const ENTRY_AT_LEAST: usize = 64;

/// A unary OPEN of `Sleep` with `ENTRIES` entries `a: ""`, and its request: sleep a minute.
fn sleeping_call(call_id: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + SLEEP_PATH.len() + 4 * ENTRIES);
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&(SLEEP_PATH.len() as u16).to_be_bytes());
    body.extend_from_slice(SLEEP_PATH);
    body.extend_from_slice(&(ENTRIES as u16).to_be_bytes());
    for _ in 0..ENTRIES {
        body.extend_from_slice(&[1, b'a', 0, 0]);
    }
    let sleep = SleepRequest {
        millis: 60_000,
        token: String::new(),
    }
    .encode_to_vec();
    let mut bytes = frame(OPEN, 0, call_id, &body);
    bytes.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &sleep));
    bytes
}

/// Sends `calls` on a new connection, then a unary echo whose answer shows the server took
/// them all; returns how many of `calls`' ids were not refused `RESOURCE_EXHAUSTED` (none may
/// end otherwise), then cancels them.
async fn running_of(addr: std::net::SocketAddr, calls: impl Fn(u32) -> Vec<u8>) -> usize {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=CALLS {
        bytes.extend_from_slice(&calls(call_id));
    }
    let last = CALLS + 1;
    bytes.extend_from_slice(&open(last, ECHO_PATH, &[]));
    bytes.extend_from_slice(&echo_message(last, 7, b"after"));
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the call after them is answered", async {
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
    let other: Vec<_> = (1..=CALLS)
        .filter_map(|id| code(id).filter(|c| *c != RESOURCE_EXHAUSTED))
        .collect();
    assert!(other.is_empty(), "calls ended otherwise: {other:?}");
    let refused = (1..=CALLS)
        .filter(|id| code(*id) == Some(RESOURCE_EXHAUSTED))
        .count();
    let mut cancels = Vec::new();
    for call_id in 1..=CALLS {
        cancels.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
    }
    stream.write_all(&cancels).await.expect("write");
    CALLS as usize - refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_count_their_metadata_as_held_as_streams_do() {
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_running_requests_size(BUDGET)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let unary = running_of(running.addr, sleeping_call).await;
    let streams = running_of(running.addr, |call_id| streaming_open(call_id, ECHO_PATH)).await;
    assert!(unary >= 1 && streams >= 1, "the first calls run");
    assert!(
        unary * ENTRIES * ENTRY_AT_LEAST <= BUDGET,
        "{unary} unary calls run, each holding {} bytes of metadata at least: past the budget \
         of {BUDGET} bytes ({streams} streams run)",
        ENTRIES * ENTRY_AT_LEAST
    );
    // One rule for both: no more unary calls run than streams (a few fewer: the read buffer
    // their messages were sliced from counts too, `server/held.rs`).
    assert!(
        unary <= streams + 1,
        "{unary} unary calls run against {streams} streams"
    );
    running.stop().await;
}
