//! Handlers parked because their connection's write buffer is past its high-water mark
//! (`server/room.rs`) are not lost: their deadlines still end them, every call is answered
//! once the client reads, and a server shut down meanwhile stops within its grace period.
//!
//! `unread_waiting_answers.rs` measures what such a client makes the server hold; here, on a
//! multi-threaded runtime (handlers on both workers, racing the connection for its lock),
//! whether a parked handler can be left hanging.

use crate::raw::{connect, frame, open_body, END_STREAM, MESSAGE, OPEN, PREFACE};
use crate::support::{bounded, fresh_call, start_serving, Running};
use crate::unread_answers::read_all_ends;
use crate::unread_answers::GROW_PATH;
use crate::unread_waiting_answers::SlowGrow;
use prost::Message as _;
use sockrpc::server::ServerConfig;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::GrowRequest;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Calls of 1 MiB answers: 80 MiB, ten times the high-water mark.
const CALLS: u32 = 80;
/// Of those, the last ones carry a deadline that passes while the client does not read.
const WITH_DEADLINE: u32 = 20;
const DEADLINE_EXCEEDED: u32 = 4;

fn start(config: ServerConfig) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .config(config)
            .add_service(EchoServer::new(SlowGrow))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// Sends [`CALLS`] Grow calls of 1 MiB on a fresh connection, the last [`WITH_DEADLINE`] with
/// a 100 ms deadline, and reads nothing.
async fn unread_calls(server: &Running) -> TcpStream {
    let grow = GrowRequest { size: 1 << 20 }.encode_to_vec();
    let mut calls = PREFACE.to_vec();
    for call_id in 1..=CALLS {
        let mut body = open_body(GROW_PATH, &[]);
        if call_id > CALLS - WITH_DEADLINE {
            body[..8].copy_from_slice(&100_000u64.to_be_bytes());
        }
        calls.extend_from_slice(&frame(OPEN, 0, call_id, &body));
        calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
    }
    let mut stream = connect(server.addr).await;
    bounded("write the calls", stream.write_all(&calls))
        .await
        .expect("write");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_handlers_are_answered_once_the_client_reads_their_deadlines_included() {
    let mut config = ServerConfig::default();
    config.idle_timeout = None;
    let server = start(config);
    for round in 0..3 {
        let mut stream = unread_calls(&server).await;
        // Every handler has waited its 50 ms, most are parked, the deadlines have passed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let limit = u64::from(CALLS) * ((1 << 20) + 1024) + 1024;
        let codes = tokio::time::timeout(
            Duration::from_secs(30),
            read_all_ends(&mut stream, CALLS, limit),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: a parked call was never answered"));
        assert!(
            codes.iter().all(|&c| c == 0 || c == DEADLINE_EXCEEDED),
            "round {round}: {codes:?}"
        );
        let late = codes.iter().filter(|&&c| c == DEADLINE_EXCEEDED).count();
        assert!(late <= WITH_DEADLINE as usize, "round {round}: {codes:?}");
    }
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shut_down_with_parked_handlers_stops_within_its_grace_period() {
    let mut config = ServerConfig::default();
    config.grace_period = Duration::from_millis(500);
    let server = start(config);
    let stream = unread_calls(&server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The client never reads: the grace period ends the parked handlers.
    bounded("shutdown with parked handlers", server.stop()).await;
    drop(stream);
}
