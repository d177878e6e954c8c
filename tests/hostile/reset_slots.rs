//! HTTP/2's "rapid reset" (CVE-2023-44487) against the call limit: a call the client cancels
//! counts until its handler is really gone, as grpc-go's fix counts a reset stream's handler
//! until it returns (with a limit's worth of slack, `server/aborted.rs`). `probe.rs` shows every
//! cancelled handler is stopped in the end; here, that at no moment are more than twice
//! `max_concurrent_calls` handlers alive. A handler
//! running in a task of its own is stopped by aborting that task, which drops it only when a
//! worker next runs it; the slot used to be given back at the CANCEL, so a client sending
//! OPEN+CANCEL pairs faster than the workers dropped the aborted tasks had hundreds of
//! handlers alive on a connection limited to 4. A well-behaved client is served throughout.

use crate::raw::{connect, folded, frame, send, server_frames, ECHO_PATH, END, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl, Running, Witness};
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
const CANCEL: u8 = 5;
/// The server's `max_concurrent_calls`.
const LIMIT: usize = 4;

/// `Sleep` handlers alive now, and the most ever alive at once.
#[derive(Default)]
struct Alive {
    now: AtomicUsize,
    most: AtomicUsize,
    started: AtomicUsize,
}

struct Guard(Arc<Alive>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Counting {
    alive: Arc<Alive>,
    inner: EchoImpl,
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.echo(request).await
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let alive = &self.alive;
        alive.started.fetch_add(1, Ordering::SeqCst);
        let now = alive.now.fetch_add(1, Ordering::SeqCst) + 1;
        alive.most.fetch_max(now, Ordering::SeqCst);
        let _guard = Guard(Arc::clone(alive));
        self.inner.sleep(request).await
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.fail(request).await
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.grow(request).await
    }
}

fn start(service: Counting) -> Running {
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_concurrent_calls(LIMIT)
            .grace_period(Duration::from_secs(2))
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_calls_keep_their_slot_until_their_handler_is_gone() {
    let service = Counting::default();
    let alive = Arc::clone(&service.alive);
    let server = start(service);
    let witness = Witness::start(server.addr).await;
    let sleep = SleepRequest {
        millis: 60_000,
        token: String::new(),
    }
    .encode_to_vec();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    // Read (and drop) what the server answers meanwhile, so that its write buffer never
    // stops it reading.
    let (mut reader, mut writer) = stream.into_split();
    let drain = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = reader.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let mut call_id = 1u32;
    // 40 writes of 500 OPEN+CANCEL pairs: 20,000 calls.
    for _ in 0..40 {
        let mut batch = Vec::new();
        for _ in 0..500 {
            batch.extend_from_slice(&folded(call_id, SLEEP_PATH, &sleep));
            batch.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
            call_id += 2;
        }
        bounded("write a batch", writer.write_all(&batch))
            .await
            .expect("write");
    }
    // Then one call: answered once the cancelled handlers are gone.
    let echo = EchoRequest {
        payload: b"after".to_vec().into(),
        id: 1,
    }
    .encode_to_vec();
    bounded(
        "write the last call",
        writer.write_all(&folded(call_id, ECHO_PATH, &echo)),
    )
    .await
    .expect("write");
    bounded("every cancelled handler gone", async {
        while alive.now.load(Ordering::SeqCst) != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    writer.shutdown().await.expect("shutdown");
    let got = bounded("the server closes", drain).await.expect("drain");
    let frames = server_frames(&got);
    let last_ended = frames.iter().any(|f| f.call_id == call_id && f.kind == END);
    let started = alive.started.load(Ordering::SeqCst);
    let most = alive.most.load(Ordering::SeqCst);
    assert!(
        started > 0,
        "no Sleep handler ever started: the test proved nothing"
    );
    assert!(
        most <= 2 * LIMIT,
        "{most} handlers alive at once on a connection limited to {LIMIT} calls ({started} started)"
    );
    assert!(last_ended, "the call after the resets was answered");
    witness.finish().await;
    server.stop().await;
}
