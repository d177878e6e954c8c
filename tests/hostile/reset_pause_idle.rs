//! While cancelled handlers not yet gone hold reading back (`server/aborted.rs`), the
//! connection waits to be woken when the oldest is gone. It used to wake itself and look again:
//! a handler slow to go (here one that blocks its thread, as synchronous code does) kept a
//! second worker spinning for as long as it blocked.
//!
//! Counted with tokio's `worker_total_busy_duration`: the time the runtime's workers spent
//! not parked. A worker that spins never parks, however loaded the machine, so the measure
//! does not depend on how much CPU the test gets. The blocked handler does not count: it
//! blocks in `block_in_place`, which hands its worker to another thread.

use crate::raw::{folded, frame, send, server_frames, PING};
use crate::reset_pause_timers::{blocked_connection, never_answered, CANCEL, ECHO_PATH, PONG};
use crate::support::bounded;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;

/// How long the cancelled handler blocks: the length of the pause.
const BLOCK_MS: u64 = 1_000;

/// The time all of this runtime's workers spent busy so far.
fn busy() -> Duration {
    let metrics = Handle::current().metrics();
    (0..metrics.num_workers())
        .map(|worker| metrics.worker_total_busy_duration(worker))
        .sum()
}

/// Limit 1: call 1 cancelled while its handler blocks, call 3 in flight (never answered): the
/// ceiling of twice the limit, so the PING behind them waits until the handler returns. Over
/// that wait the workers are idle; spinning, one was busy throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_connection_waiting_for_cancelled_handlers_does_not_spin() {
    let (server, mut stream) = blocked_connection(sockrpc::Server::builder(), BLOCK_MS).await;
    let echo = never_answered();
    let (busy_before, since) = (busy(), Instant::now());
    send(
        &mut stream,
        &[
            &frame(CANCEL, 0, 1, &[]),
            &folded(3, ECHO_PATH, &echo),
            &frame(PING, 0, 0, &7u64.to_be_bytes()),
        ],
    )
    .await;
    bounded("the PONG once the handler is gone", async {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !server_frames(&got).iter().any(|f| f.kind == PONG) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed: {:?}", server_frames(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let (busy, waited) = (busy() - busy_before, since.elapsed());
    println!("waited {waited:?} for the PONG; the workers were busy {busy:?} of it");
    assert!(
        waited >= Duration::from_millis(BLOCK_MS / 2),
        "the PING was answered before the handler returned ({waited:?}): nothing was paused"
    );
    assert!(
        busy < waited / 2,
        "the workers were busy {busy:?} of the {waited:?} the connection waited: it spun"
    );
    drop(stream);
    server.stop().await;
}
