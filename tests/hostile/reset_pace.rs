//! A client that keeps to `max_concurrent_calls` is never refused for the handlers of the calls
//! it cancelled. Those count against the limit until their tasks are gone (`reset_slots.rs`,
//! `server/aborted.rs`), with a limit's worth of slack; a client cancelling calls back to back
//! (a short timeout in a loop, calls given up in a burst) goes past that slack before a worker
//! has dropped the aborted tasks, and each of its calls past it used to fail
//! `RESOURCE_EXHAUSTED`, though it never had more than one call open on a connection limited to
//! one. As grpc-go does, the server now stops reading the connection until those tasks are
//! gone: the calls are late by that, never refused.

use crate::raw::{connect, folded, frame, send, server_frames, ECHO_PATH, END, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl, Running};
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
const CANCEL: u8 = 5;
const RESOURCE_EXHAUSTED: u32 = 8;
/// Calls opened and cancelled one after the other, each alone on the connection.
const CALLS: u32 = 20;

fn start_limited(limit: usize) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_concurrent_calls(limit)
            .grace_period(Duration::from_secs(2))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// The server on this test's one thread, so that no worker drops an aborted task while the
/// connection reads a batch: what the slack alone would allow is what this client gets.
#[tokio::test]
async fn calls_cancelled_one_at_a_time_are_never_refused() {
    let server = start_limited(1);
    let sleep = SleepRequest {
        millis: 60_000,
        token: String::new(),
    }
    .encode_to_vec();
    let echo = EchoRequest {
        payload: b"last".to_vec().into(),
        id: 1,
    }
    .encode_to_vec();
    // One call open at a time, by any count: each is cancelled before the next opens.
    let mut batch = PREFACE.to_vec();
    let mut call_id = 1u32;
    for _ in 0..CALLS {
        batch.extend_from_slice(&folded(call_id, SLEEP_PATH, &sleep));
        batch.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
        call_id += 2;
    }
    batch.extend_from_slice(&folded(call_id, ECHO_PATH, &echo));
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[&batch]).await;
    let got = bounded("the last call's answer", async {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !server_frames(&got)
            .iter()
            .any(|f| f.kind == END && f.call_id == call_id)
        {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed before answering the last call");
            got.extend_from_slice(&buf[..n]);
        }
        got
    })
    .await;
    let refused: Vec<u32> = server_frames(&got)
        .iter()
        .filter(|f| f.kind == END && f.body.len() >= 4)
        .filter(|f| {
            u32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]]) == RESOURCE_EXHAUSTED
        })
        .map(|f| f.call_id)
        .collect();
    assert!(
        refused.is_empty(),
        "calls refused RESOURCE_EXHAUSTED though one at most was open (limit 1): {refused:?}"
    );
    stream.shutdown().await.expect("shutdown");
    server.stop().await;
}
