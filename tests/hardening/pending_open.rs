//! Behaviour 4: a unary OPEN whose MESSAGE never comes does not wait for ever. It is answered
//! `DEADLINE_EXCEEDED` when its own deadline passes, `CANCELLED` after the server's frame
//! timeout when it has no deadline (or a longer one), and the call slots such OPENs held are
//! free again afterwards.
//!
//! Before the fix, such an OPEN was never answered and held its slot for the connection's life.
//! These tests run on tokio's paused clock: server and client share one runtime, which jumps to
//! the next timer whenever both are idle, so waiting costs no real time.

use crate::raw::{concat, echo_message, ECHO_PATH, END, MESSAGE};
use crate::service::HardEcho;
use crate::support::Running;
use crate::wire::{
    end_code, open_with, RawConn, CANCELLED, DEADLINE_EXCEEDED, OK, RESOURCE_EXHAUSTED,
};
use sockrpc::Server;
use sockrpc_tests::echo::echo_server::EchoServer;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

const FRAME_TIMEOUT: Duration = Duration::from_secs(2);

fn server(max_concurrent_calls: usize) -> Running {
    Running::start(
        Server::builder()
            .frame_timeout(FRAME_TIMEOUT)
            .idle_timeout(None)
            .max_concurrent_calls(max_concurrent_calls)
            .add_service(EchoServer::new(HardEcho::default())),
    )
}

/// Reads `n` ENDs (and nothing else), with each one's code and when it arrived.
async fn ends(conn: &mut RawConn, n: usize, what: &str) -> HashMap<u32, (u32, Instant)> {
    let mut ends = HashMap::new();
    while ends.len() < n {
        let frame = conn.next_frame(what).await;
        assert_eq!(frame.kind, END, "{what}: only ENDs expected, got {frame:?}");
        ends.insert(frame.call_id, (end_code(&frame), Instant::now()));
    }
    ends
}

/// A complete echo call on `conn` is answered with its message and END(OK).
async fn echo_served(conn: &mut RawConn, call_id: u32) {
    conn.send(&concat(&[
        &open_with(call_id, ECHO_PATH, Duration::ZERO, 0),
        &echo_message(call_id, u64::from(call_id), b"served"),
    ]))
    .await;
    let frames = conn.call_until_end(call_id, "a complete call").await;
    let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [MESSAGE, END], "{frames:?}");
    assert_eq!(end_code(&frames[1]), OK, "{frames:?}");
}

#[tokio::test(start_paused = true)]
async fn pending_open_expires_at_its_deadline() {
    let server = server(16);
    let mut conn = RawConn::connect(server.addr).await;
    let sent = Instant::now();
    conn.send(&open_with(1, ECHO_PATH, Duration::from_millis(200), 0))
        .await;
    let got = ends(&mut conn, 1, "the expired OPEN").await;
    let (code, at) = got[&1];
    assert_eq!(code, DEADLINE_EXCEEDED);
    assert!(
        at >= sent + Duration::from_millis(200),
        "answered before its deadline"
    );
    assert!(
        at < sent + FRAME_TIMEOUT,
        "answered by the frame timeout, not its deadline"
    );
    // The connection lives on.
    echo_served(&mut conn, 3).await;
    drop(conn);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pending_open_without_deadline_is_cancelled_after_frame_timeout() {
    let server = server(16);
    let mut conn = RawConn::connect(server.addr).await;
    let sent = Instant::now();
    conn.send(&concat(&[
        // No deadline at all...
        &open_with(1, ECHO_PATH, Duration::ZERO, 0),
        // ...or one far beyond the frame timeout.
        &open_with(3, ECHO_PATH, Duration::from_secs(3600), 0),
    ]))
    .await;
    let got = ends(&mut conn, 2, "the OPENs without MESSAGE").await;
    for call_id in [1, 3] {
        let (code, at) = got[&call_id];
        assert_eq!(code, CANCELLED, "call {call_id}");
        assert!(at >= sent + FRAME_TIMEOUT, "call {call_id} answered early");
    }
    echo_served(&mut conn, 5).await;
    drop(conn);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn expired_pending_opens_free_their_call_slots() {
    const SLOTS: usize = 3;
    let server = server(SLOTS);
    let mut conn = RawConn::connect(server.addr).await;
    let sent = Instant::now();
    // Every slot taken by an OPEN whose MESSAGE never comes...
    let mut bytes = Vec::new();
    for call_id in (1..).step_by(2).take(SLOTS) {
        bytes.extend(open_with(call_id, ECHO_PATH, Duration::ZERO, 0));
    }
    // ...so a complete call is refused for now.
    let refused = 2 * SLOTS as u32 + 1;
    bytes.extend(open_with(refused, ECHO_PATH, Duration::ZERO, 0));
    bytes.extend(echo_message(refused, 0, b"refused"));
    conn.send(&bytes).await;
    let got = ends(&mut conn, SLOTS + 1, "the refusal and the expiries").await;
    let (code, at) = got[&refused];
    assert_eq!(code, RESOURCE_EXHAUSTED, "the slots were all taken");
    assert!(at < sent + FRAME_TIMEOUT);
    for call_id in (1..).step_by(2).take(SLOTS) {
        assert_eq!(got[&call_id].0, CANCELLED, "call {call_id}");
    }
    // Once they expired, calls are served again, up to the cap.
    for call_id in (refused + 2..).step_by(2).take(SLOTS + 1) {
        echo_served(&mut conn, call_id).await;
    }
    drop(conn);
    server.stop().await;
}
