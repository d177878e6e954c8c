//! A unary request whose handler waits is counted against the connection's budget of running
//! requests (`max_running_requests_size`) at what it keeps alive, not its own few bytes: its
//! message is a slice of the read buffer, and a client that sends a filler frame (for a call
//! never opened) before each small request makes each keep a buffer of its own, up to 32 KiB
//! (`reader::GROWN`). Counted at its own 100 bytes, 2,000 such requests were all taken under an
//! 8 MiB budget and held over 60 MiB (4,096 of them, the call limit, 128 MiB); counted once
//! per buffer (`crates/sockrpc-transport/src/server/held.rs`), the calls past the budget are
//! refused `RESOURCE_EXHAUSTED` and what the connection holds stays about the budget. Measured
//! as `pinned_small.rs` does: the resident size of a server in a child process. An empty
//! request whose frame ends its buffer points one past the allocation it keeps: it counts
//! that buffer too (by the refusals past the budget, in process).

use crate::compressed_running::ends;
use crate::memory::{assert_growth, child_serving, parent_runtime, CHILD_ENV, MIB};
use crate::pinned_small::HoldingEcho;
use crate::raw::{
    concat, connect, echo_message, frame, header, open, send, server_frames, ECHO_PATH, END_STREAM,
    MESSAGE, PING, PREFACE,
};
use crate::support::{bounded, start_serving};
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use sockrpc_tests::echo::echo_server::EchoServer;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The server's budget of running requests, per connection.
const BUDGET: usize = 8 << 20;
/// Unary calls sent, each to wait 30 s in its handler: 4,000, under the call limit (4,096).
const CALLS: u32 = 4000;
/// The frame for a call never opened read before each request: each request is then sliced
/// from a read buffer of its own of about 18 KiB (one chunk and what was left of the last),
/// under the size past which small frames are copied out (`reader::GROWN`; with a filler of
/// 14,000 bytes or more the buffer grows past it, and requests are copied out).
const FILLER: usize = 12_000;
const PONG: u8 = 7;
const RESOURCE_EXHAUSTED: u32 = 8;

/// Sends `calls` `Echo` calls of 100 bytes, each after a frame of `filler` bytes for a call
/// never opened (none when 0), then a PING; once its PONG is back (every frame before it
/// taken), the calls refused so far: their ENDs' codes.
async fn waiting(addr: SocketAddr, calls: u32, filler: usize) -> (TcpStream, Vec<u32>) {
    let mut stream = connect(addr).await;
    let filler = vec![0x5A; filler];
    let mut wire = PREFACE.to_vec();
    for call_id in 1..=calls {
        if !filler.is_empty() {
            wire.extend_from_slice(&header(
                filler.len() as u32,
                MESSAGE,
                0,
                0,
                1_000_000 + call_id,
            ));
            wire.extend_from_slice(&filler);
        }
        wire.extend_from_slice(&concat(&[
            &open(call_id, ECHO_PATH, &[]),
            &echo_message(call_id, u64::from(call_id), &[0xA5; 100]),
        ]));
    }
    wire.extend_from_slice(&frame(PING, 0, 0, &7u64.to_be_bytes()));
    send(&mut stream, &[&wire]).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the PONG", async {
        while !server_frames(&got).iter().any(|f| f.kind == PONG) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let codes = ends(&got).into_iter().map(|(_, code)| code).collect();
    (stream, codes)
}

#[test]
fn waiting_requests_count_the_buffers_they_keep_against_the_running_budget() {
    let test = "waiting_requests_count_the_buffers_they_keep_against_the_running_budget";
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .max_running_requests_size(BUDGET)
                .add_service(EchoServer::new(HoldingEcho))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(&test_name(module_path!(), test), CHILD_ENV);
    parent_runtime().block_on(async {
        // Warm up: the same with a few calls, on a connection closed again (which ends them).
        drop(waiting(child.addr, 50, FILLER).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());
        let (stream, codes) = waiting(child.addr, CALLS, FILLER).await;
        let after = memory_of(child.pid());
        let refused = codes.len();
        eprintln!("{refused} of {CALLS} calls refused under a budget of {BUDGET} bytes");
        // What the budget lets the requests hold, and as much again for the allocator and
        // the waiting handlers' tasks; over 60 MiB before the buffers were counted.
        assert_growth(
            &format!("{CALLS} waiting requests of 100 bytes, each in a buffer of its own"),
            before,
            after,
            3 * BUDGET as u64,
            4 * u64::from(CALLS) * 32 * 1024 + 64 * MIB,
        );
        assert!(
            refused > 0,
            "no call was refused: the buffers went uncounted"
        );
        assert!(
            codes.iter().all(|code| *code == RESOURCE_EXHAUSTED),
            "refused RESOURCE_EXHAUSTED: {codes:?}"
        );
        drop(stream);
        // An honest client's requests, sent back to back, share their buffers: on a
        // connection of its own, every one of them is taken under the same budget.
        let (_stream, codes) = waiting(child.addr, CALLS, 0).await;
        assert_eq!(
            codes,
            [] as [u32; 0],
            "requests sharing their buffers refused"
        );
    });
    child.finish();
}

/// The read buffer's capacity on a fresh connection and after each move (`reader::CHUNK`).
const CHUNK: usize = 16 * 1024;
/// A PING frame: header and 8-byte payload.
const PING_LEN: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_request_that_ends_its_read_buffer_counts_that_buffer() {
    // An empty request message is a slice of the read buffer like any other (it keeps the
    // whole allocation alive), but one whose frame ends the allocation points one past it. A
    // client that fills each buffer to its last byte with a filler, an OPEN and an empty
    // MESSAGE had each such request counted as its path alone while it kept 16 KiB: here 150
    // of them wait in the queue of a layer not ready (a concurrency limit of one call), and
    // 2.4 MiB stayed pinned under a budget of 1 MiB, no call refused.
    const CALLS: u32 = 150;
    const BUDGET: usize = 1 << 20;
    // A PING after each batch tells when it was read: PINGs as often as that are fine here.
    let mut pings = sockrpc::server::PingPolicy::default();
    pings.min_interval = Duration::ZERO;
    pings.permit_without_calls = true;
    let server = start_serving(move |listener, shutdown| {
        sockrpc::Server::builder()
            .ping_policy(pings)
            .max_running_requests_size(BUDGET)
            .ready_queue(sockrpc::ReadyQueue::new(4096, Duration::from_secs(60)))
            .layer(tower::limit::ConcurrencyLimitLayer::new(1))
            .add_service(EchoServer::new(HoldingEcho))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for call_id in 1..=CALLS {
        // The buffer the batch goes into: a fresh one (the preface first), or the one the last
        // PING went into.
        let (start, room) = if call_id == 1 {
            (PREFACE.to_vec(), CHUNK - PREFACE.len())
        } else {
            (Vec::new(), CHUNK - PING_LEN)
        };
        let request = concat(&[
            &open(call_id, ECHO_PATH, &[]),
            &frame(MESSAGE, END_STREAM, call_id, &[]),
        ]);
        let filler = vec![0x5A; room - 12 - request.len()];
        let batch = concat(&[
            &start,
            &frame(MESSAGE, 0, 1_000_000 + call_id, &filler),
            &request,
        ]);
        send(&mut stream, &[&batch]).await;
        send(
            &mut stream,
            &[&frame(PING, 0, 0, &u64::from(call_id).to_be_bytes())],
        )
        .await;
        // Every frame of the batch taken before the next is sent: the PING's PONG.
        bounded("the PONG", async {
            let pongs = |got: &[u8]| server_frames(got).iter().filter(|f| f.kind == PONG).count();
            while pongs(&got) < call_id as usize {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "the server closed the connection: {:?}",
                    crate::raw::goaway(&server_frames(&got))
                );
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
    }
    let codes: Vec<u32> = ends(&got).into_iter().map(|(_, code)| code).collect();
    eprintln!(
        "{} of {CALLS} calls refused under a budget of {BUDGET} bytes",
        codes.len()
    );
    assert!(
        !codes.is_empty(),
        "no call refused: {CALLS} buffers of 16 KiB held under a budget of 1 MiB"
    );
    assert!(
        codes.iter().all(|code| *code == RESOURCE_EXHAUSTED),
        "refused RESOURCE_EXHAUSTED: {codes:?}"
    );
    drop(stream);
    server.stop().await;
}
