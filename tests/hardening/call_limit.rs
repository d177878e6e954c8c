//! The limit of calls in flight on one connection (`max_concurrent_calls`) counts the calls
//! that run on in tasks of their own. The server keeps that count without its lock as a bound
//! that is never below the real one (`at_call_limit`, `crates/sockrpc-transport/src/server/
//! conn.rs`); these tests hold the limit to what the calls really do: an OPEN past it is
//! answered `RESOURCE_EXHAUSTED`, and calls that ended on their own tasks free their slots for
//! the next OPENs on the same connection. What the requests of those running calls hold
//! together is bounded too (`max_running_requests_size`).

use crate::raw::{concat, frame, open, END, END_STREAM, MESSAGE};
use crate::service::HardEcho;
use crate::support::Running;
use crate::wire::{end_code, RawConn, OK, RESOURCE_EXHAUSTED, SLEEP_PATH};
use prost::Message as _;
use sockrpc::Server;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::SleepRequest;
use std::time::Duration;
use tokio::time::Instant;

const LIMIT: usize = 2;
const SLEEP: Duration = Duration::from_secs(1);

/// A `Sleep` call of `millis`: one that sleeps runs on in a task of its own.
fn sleep_call(call_id: u32, millis: u64) -> Vec<u8> {
    padded_sleep_call(call_id, millis, 0)
}

/// A `Sleep` call of `millis` whose request carries `pad` bytes more (in its token).
fn padded_sleep_call(call_id: u32, millis: u64, pad: usize) -> Vec<u8> {
    let request = SleepRequest {
        millis,
        token: "p".repeat(pad),
    };
    concat(&[
        &open(call_id, SLEEP_PATH, &[]),
        &frame(MESSAGE, END_STREAM, call_id, &request.encode_to_vec()),
    ])
}

/// The code `call_id` ended with, and when its END came.
async fn ended(conn: &mut RawConn, call_id: u32) -> (u32, Instant) {
    let frames = conn.call_until_end(call_id, "a call's end").await;
    let end = frames.last().expect("call_until_end returns the END");
    assert_eq!(end.kind, END, "{frames:?}");
    (end_code(end), Instant::now())
}

#[tokio::test(start_paused = true)]
async fn calls_in_their_own_tasks_hold_the_limit_and_free_it_when_they_end() {
    let echo = HardEcho::default();
    let server = Running::start(
        Server::builder()
            .idle_timeout(None)
            .max_concurrent_calls(LIMIT)
            .add_service(EchoServer::new(echo.clone())),
    );
    let start = Instant::now();
    let mut conn = RawConn::connect(server.addr).await;
    // Two calls that sleep fill the connection.
    conn.send(&concat(&[
        &sleep_call(1, SLEEP.as_millis() as u64),
        &sleep_call(2, SLEEP.as_millis() as u64),
    ]))
    .await;
    // A third while both run is refused at once, unrun.
    conn.send(&sleep_call(3, 0)).await;
    let (code, at) = ended(&mut conn, 3).await;
    assert_eq!(code, RESOURCE_EXHAUSTED, "a call past the limit");
    assert!(
        at < start + SLEEP,
        "refused at once, not after the sleepers"
    );
    assert_eq!(echo.seen.sleeping(), 2, "only the two within the limit ran");

    for call_id in [1, 2] {
        let (code, at) = ended(&mut conn, call_id).await;
        assert_eq!(code, OK, "call {call_id}");
        assert!(at >= start + SLEEP, "call {call_id} slept");
    }
    // Both ended on their own tasks: their slots take the next two calls, which fill the limit
    // again and sleep; a call past them is refused again.
    conn.send(&concat(&[
        &sleep_call(4, SLEEP.as_millis() as u64),
        &sleep_call(5, SLEEP.as_millis() as u64),
        &sleep_call(6, 0),
    ]))
    .await;
    let (code, _) = ended(&mut conn, 6).await;
    assert_eq!(code, RESOURCE_EXHAUSTED, "the limit holds again");
    for call_id in [4, 5] {
        let (code, _) = ended(&mut conn, call_id).await;
        assert_eq!(code, OK, "call {call_id} ran in a freed slot");
    }
    assert_eq!(echo.seen.sleeping(), 4);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn running_calls_requests_are_bounded_and_freed_when_they_end() {
    // A budget of 1,160 KiB: three running calls of 400 KiB requests take it (the third is
    // admitted at two held), so a fourth, however small, is refused at once, unrun; once the
    // three ended, the next call runs. Each request counts the read buffer it was sliced from,
    // about 544 KiB here (`server/held.rs`): a budget between twice and three times anything
    // from 400 to 560 KiB holds whatever the reader's buffers come to in that range.
    const PAD: usize = 400 * 1024;
    let echo = HardEcho::default();
    let server = Running::start(
        Server::builder()
            .idle_timeout(None)
            .max_running_requests_size(1160 * 1024)
            .add_service(EchoServer::new(echo.clone())),
    );
    let start = Instant::now();
    let mut conn = RawConn::connect(server.addr).await;
    let millis = SLEEP.as_millis() as u64;
    conn.send(&concat(&[
        &padded_sleep_call(1, millis, PAD),
        &padded_sleep_call(2, millis, PAD),
        &padded_sleep_call(3, millis, PAD),
    ]))
    .await;
    conn.send(&sleep_call(4, 0)).await;
    let (code, at) = ended(&mut conn, 4).await;
    assert_eq!(code, RESOURCE_EXHAUSTED, "a call past the budget");
    assert!(
        at < start + SLEEP,
        "refused at once, not after the sleepers"
    );
    assert_eq!(echo.seen.sleeping(), 3, "the three within the budget ran");
    for call_id in [1, 2, 3] {
        let (code, _) = ended(&mut conn, call_id).await;
        assert_eq!(code, OK, "call {call_id}");
    }
    conn.send(&sleep_call(5, 0)).await;
    let (code, _) = ended(&mut conn, 5).await;
    assert_eq!(code, OK, "the budget was given back");
}
