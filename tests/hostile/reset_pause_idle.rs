//! While cancelled handlers not yet gone hold reading back (`server/aborted.rs`), the
//! connection waits to be woken when the oldest is gone. It used to wake itself and look again:
//! a handler slow to go (here one that blocks its thread, as synchronous code does) kept a
//! second worker spinning for as long as it blocked.
//!
//! Counted with tokio's `worker_total_busy_duration`: the time the runtime's workers spent
//! not parked. A worker that spins never parks, however loaded the machine, so the measure
//! does not depend on how much CPU the test gets. The blocked handler does not count: it
//! blocks in `block_in_place`, which hands its worker to another thread.

use crate::raw::{connect, folded, frame, send, server_frames, PING, PREFACE};
use crate::reset_pause_timers::{Blocking, CANCEL, ECHO_PATH, PONG, SLEEP_PATH};
use crate::support::{bounded, start_serving};
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::runtime::Handle;
use tokio::sync::Notify;

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
    let started = Arc::new(Notify::new());
    let service = Blocking {
        started: Arc::clone(&started),
    };
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_concurrent_calls(1)
            .grace_period(Duration::from_secs(2))
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let sleep = SleepRequest {
        millis: BLOCK_MS,
        token: String::new(),
    }
    .encode_to_vec();
    let echo = EchoRequest {
        payload: b"never answered".to_vec().into(),
        id: 1,
    }
    .encode_to_vec();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE, &folded(1, SLEEP_PATH, &sleep)]).await;
    bounded("the Sleep handler starts", started.notified()).await;
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
