//! HTTP/2's "rapid reset" (CVE-2023-44487) and "MadeYouReset", on streaming calls. `probe.rs`
//! opens and cancels unary calls, whose handlers run on tasks of their own and are aborted; a
//! streaming call's handler is polled on the connection's own task (`local.rs`) and a CANCEL
//! drops it there, and a call the *server* ends at its deadline is dropped by the deadline's
//! guard (`call.rs`). Here a client opens streams to a handler that never returns and cancels
//! each at once, tens of thousands of times, then opens streams whose deadline has all but
//! passed so that the server itself ends them: every handler is dropped, none outlives its
//! call, the call limit (64 here) holds at every moment — no handler of an ended call runs
//! beside it — and the connection goes on serving.

use crate::edges::{end_code, until_end};
use crate::raw::{
    connect, frame, open, open_body, send, server_frames, END_STREAM, MESSAGE, OPEN, PING, PREFACE,
};
use crate::support::{bounded, start_serving, Running};
use prost::Message as _;
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(crate) const COLLECT_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Collect";
pub(crate) const UNARY_PATH: &[u8] = b"/sockrpc.test.stream.Streamer/Unary";
/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
const CANCEL: u8 = 5;
const PONG: u8 = 7;
/// The server's limit of calls in flight per connection.
const LIMIT: usize = 64;

/// `Collect` handlers alive now, the most ever alive at once, and how many started.
#[derive(Default)]
pub(crate) struct Live {
    now: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
}

struct Alive(Arc<Live>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `Collect` waits for ever (until dropped), counted in [`Live`]; the rest is [`Mirror`]'s.
#[derive(Default)]
pub(crate) struct Holding {
    live: Arc<Live>,
}

impl Streamer for Holding {
    sockrpc_tests::mirror_methods!(unary, produce, ping_pong, gather);

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        let live = &self.live;
        live.started.fetch_add(1, Ordering::SeqCst);
        let now = live.now.fetch_add(1, Ordering::SeqCst) + 1;
        live.peak.fetch_max(now, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(live));
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    }
}

fn start(service: Holding) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_concurrent_calls(LIMIT)
            .add_service(StreamerServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// A streaming OPEN of `Collect` whose deadline is `timeout_us` away (0: none).
fn collect_open(call_id: u32, timeout_us: u64) -> Vec<u8> {
    let mut body = open_body(COLLECT_PATH, &[]);
    body[..8].copy_from_slice(&timeout_us.to_be_bytes());
    frame(OPEN, STREAM, call_id, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reset_by_either_side_leave_no_handler_running() {
    let service = Holding::default();
    let live = Arc::clone(&service.live);
    let server = start(service);
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    let mut call_id = 1u32;
    // The client's resets: 40 writes of 250 streams opened and cancelled at once.
    for _ in 0..40 {
        let mut batch = Vec::new();
        for _ in 0..250 {
            batch.extend_from_slice(&collect_open(call_id, 0));
            batch.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
            call_id += 2;
        }
        bounded("write a batch", stream.write_all(&batch))
            .await
            .expect("write");
    }
    // The server's: 20 writes of 100 streams whose 1 µs deadline the server enforces.
    for _ in 0..20 {
        let mut batch = Vec::new();
        for _ in 0..100 {
            batch.extend_from_slice(&collect_open(call_id, 1));
            call_id += 2;
        }
        bounded("write a batch", stream.write_all(&batch))
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A PING: its PONG comes once the server has taken every frame before it.
    send(&mut stream, &[&frame(PING, 0, 0, &7u64.to_be_bytes())]).await;
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
    // Each stream ended by either side: its handler is dropped, none left behind.
    bounded("every handler dropped", async {
        while live.now.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    // The connection still serves a call.
    let chunk = Chunk {
        seq: 7,
        payload: bytes::Bytes::from_static(b"after"),
    };
    send(
        &mut stream,
        &[
            &open(call_id, UNARY_PATH, &[]),
            &frame(MESSAGE, END_STREAM, call_id, &chunk.encode_to_vec()),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, call_id).await;
    assert_eq!(end_code(&frames, call_id), 0, "the call after the resets");
    let started = live.started.load(Ordering::SeqCst);
    assert!(
        started > 10_000,
        "only {started} handlers started: the probe proved little"
    );
    let peak = live.peak.load(Ordering::SeqCst);
    assert!(
        peak <= LIMIT,
        "{peak} handlers alive at once (limit {LIMIT})"
    );
    drop(stream);
    server.stop().await;
}
