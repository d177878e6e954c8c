//! Behaviour 6: calls waiting for their request message do not pin the connection's read
//! buffer. A client alternates a message near the 4 MiB limit with an OPEN whose MESSAGE never
//! comes, 48 times: each OPEN arrives right behind the large message, in the multi-MiB buffer
//! that message needed. The server's memory stays bounded while all 48 OPENs wait.
//!
//! Before the fix, a decoded frame was a slice of the read buffer, so each waiting OPEN's path
//! and metadata kept the whole buffer it arrived in alive, and the next large message had to
//! grow a fresh one: 48 pending OPENs held about 48 buffers of 4+ MiB each.
//!
//! Measured as in `tests/hostile/memory.rs`: the server runs in a child process (this test
//! binary, re-run with `CHILD_ENV` set), so the other tests of this binary cannot disturb its
//! numbers, and its resident size is read from `/proc`.

use crate::raw::{concat, echo_message, frame, ECHO_PATH, END, END_STREAM, MESSAGE};
use crate::service::HardEcho;
use crate::support::bounded;
use crate::wire::{end_code, open_with, RawConn, OK, SLEEP_PATH};
use prost::Message as _;
use sockrpc::Server;
use sockrpc_tests::child::{memory_of, parent_pid, test_name, ChildServer};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::SleepRequest;
use std::collections::HashSet;
use std::time::Duration;

const CHILD_ENV: &str = "SOCKRPC_HARDENING_CHILD_SERVER";
const MIB: u64 = 1024 * 1024;
/// The default message limit.
const LIMIT: usize = 4 << 20;
const PENDING: u32 = 48;

/// The child: a server on a current-thread runtime, printing its address, exiting when its
/// parent is gone or after two minutes. A panic aborts it.
fn child_server() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("child server panicked: {info}");
        std::process::abort();
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind");
        println!(
            "{}{}",
            sockrpc_tests::child::ADDR_LINE,
            listener.local_addr().expect("address")
        );
        let parent = parent_pid();
        let orphaned = async move {
            for _ in 0..1200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if parent_pid() != parent {
                    return;
                }
            }
        };
        // Default settings but for the frame timeout, which would otherwise answer the
        // waiting OPENs after 30 s on a slow machine, before the measurement.
        let _ = Server::builder()
            .frame_timeout(Duration::from_secs(600))
            .add_service(EchoServer::new(HardEcho::default()))
            .serve_with_listener_and_shutdown(listener, orphaned)
            .await;
    });
    std::process::exit(0);
}

/// This module's child server: `test` of this module, re-run with `CHILD_ENV` set.
fn spawn_child(test: &str) -> ChildServer {
    ChildServer::spawn(&test_name(module_path!(), test), CHILD_ENV)
}

/// A `Sleep` call (0 ms: answered at once) whose request is just under the message limit.
fn large_call(call_id: u32) -> Vec<u8> {
    let request = SleepRequest {
        millis: 0,
        token: "x".repeat(LIMIT - 16),
    }
    .encode_to_vec();
    assert!(request.len() <= LIMIT);
    concat(&[
        &open_with(call_id, SLEEP_PATH, Duration::ZERO, 0),
        &frame(MESSAGE, END_STREAM, call_id, &request),
    ])
}

/// Waits for `call_id`'s END (OK); any frame for a call in `pending` fails the test.
async fn answered(conn: &mut RawConn, call_id: u32, pending: &HashSet<u32>) {
    loop {
        let frame = conn.next_frame("the large call's answer").await;
        assert!(
            !pending.contains(&frame.call_id),
            "a pending OPEN was answered early: {frame:?}"
        );
        if frame.call_id == call_id && frame.kind == END {
            assert_eq!(end_code(&frame), OK, "{frame:?}");
            return;
        }
    }
}

/// A complete small call, answered: everything sent before it has been read and handled.
async fn echo_round_trip(conn: &mut RawConn, call_id: u32, pending: &HashSet<u32>) {
    conn.send(&concat(&[
        &open_with(call_id, ECHO_PATH, Duration::ZERO, 0),
        &echo_message(call_id, 1, b"sync"),
    ]))
    .await;
    answered(conn, call_id, pending).await;
}

#[test]
fn pending_opens_do_not_pin_large_read_buffers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = spawn_child("pending_opens_do_not_pin_large_read_buffers");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let none = HashSet::new();
        // Warm up: the same large calls, without pending OPENs, so the allocator already holds
        // what one large read buffer needs.
        let mut warm = RawConn::connect(child.addr).await;
        for call_id in (1..).step_by(2).take(8) {
            bounded("send a large call", warm.send(&large_call(call_id))).await;
            answered(&mut warm, call_id, &none).await;
        }
        drop(warm);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());

        // The attack: each large message is followed, in the same write, by an OPEN (with a
        // deadline far away) whose MESSAGE never comes.
        let mut conn = RawConn::connect(child.addr).await;
        let mut pending = HashSet::new();
        for round in 0..PENDING {
            let call_id = 4 * round + 1;
            let waiting = call_id + 2;
            let mut bytes = large_call(call_id);
            bytes.extend(open_with(waiting, ECHO_PATH, Duration::from_secs(3600), 0));
            bounded("send a large call", conn.send(&bytes)).await;
            answered(&mut conn, call_id, &pending).await;
            pending.insert(waiting);
        }
        echo_round_trip(&mut conn, 4 * PENDING + 1, &pending).await;
        let after = memory_of(child.pid());

        let grew = after.0.saturating_sub(before.0);
        eprintln!(
            "{PENDING} pending OPENs behind {} MiB messages: RSS {} -> {} MiB, VmSize {} -> {} MiB",
            LIMIT as u64 / MIB,
            before.0 / MIB,
            after.0 / MIB,
            before.1 / MIB,
            after.1 / MIB
        );
        assert!(
            grew < 32 * MIB,
            "server RSS grew by {} MiB while {PENDING} OPENs waited (bound 32 MiB)",
            grew / MIB
        );
        // Still serving, the OPENs still waiting.
        echo_round_trip(&mut conn, 4 * PENDING + 3, &pending).await;
        drop(conn);
    });
    child.finish();
}
