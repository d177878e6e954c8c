//! While cancelled handlers not yet gone fill the slack, the server stops reading the
//! connection (`server/aborted.rs`, `reset_pace.rs`): that pause is the server's, not the
//! client's. A frame the client sent whole, waiting in the read buffer behind the pause, is
//! not late; before, the frame timer counted the pause against the client and closed the
//! connection "frame not completed in time" when a cancelled handler took longer than the
//! frame timeout to go (one blocking in synchronous code, say). The same for the PONG to the
//! server's keepalive PING: it closed the connection "keepalive timeout".

use crate::raw::{connect, folded, frame, send, server_frames, GOAWAY, PING, PREFACE};
use crate::support::{bounded, start_serving, Running};
use prost::Message as _;
use sockrpc::service::ServerBuilder;
use sockrpc::transport::Keepalive;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tower::layer::util::Identity;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
pub(crate) const ECHO_PATH: &[u8] = b"/sockrpc.test.Echo/Echo";
pub(crate) const CANCEL: u8 = 5;
pub(crate) const PONG: u8 = 7;
/// The server's frame timeout (in the first test): far shorter than the blocking handler's hold.
const FRAME_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the cancelled `Sleep` handler blocks its worker (it cannot be dropped meanwhile).
pub(crate) const BLOCKS_MS: u64 = 1_500;

/// `Sleep` blocks its thread after its first await (so it runs in a task of its own, which a
/// CANCEL aborts but no worker can drop until it returns); `Echo` never answers.
struct Blocking {
    started: Arc<Notify>,
}

impl Echo for Blocking {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        std::future::pending().await
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        let millis = request.into_inner().millis.min(BLOCKS_MS);
        tokio::task::yield_now().await;
        self.started.notify_one();
        // Blocking, as a handler in synchronous code does; in place, so that the tasks queued
        // on this worker (the connection's among them) move to another thread meanwhile.
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(millis)));
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves [`Blocking`] with `builder` at a limit of one call, connects to it, and starts a
/// `Sleep` call (id 1) that blocks its thread for `millis`: the connection once the handler runs.
pub(crate) async fn blocked_connection(
    builder: ServerBuilder<Identity>,
    millis: u64,
) -> (Running, TcpStream) {
    let started = Arc::new(Notify::new());
    let service = Blocking {
        started: Arc::clone(&started),
    };
    let server = start_serving(|listener, shutdown| {
        builder
            .max_concurrent_calls(1)
            .grace_period(Duration::from_secs(2))
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let sleep = SleepRequest {
        millis,
        token: String::new(),
    }
    .encode_to_vec();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE, &folded(1, SLEEP_PATH, &sleep)]).await;
    bounded("the Sleep handler starts", started.notified()).await;
    (server, stream)
}

/// An `Echo` request, which [`Blocking`] never answers.
pub(crate) fn never_answered() -> Vec<u8> {
    EchoRequest {
        payload: b"never answered".to_vec().into(),
        id: 1,
    }
    .encode_to_vec()
}

/// Limit 1: a call in flight plus one cancelled handler not yet gone reach the ceiling (twice
/// the limit), and the PING behind them waits in the read buffer until the handler returns.
/// It is answered then, and the connection stays open; the server's own PINGs meanwhile are
/// answered at once (their PONGs wait in the read buffer too).
async fn a_ping_behind_cancelled_handlers_is_answered(builder: ServerBuilder<Identity>) {
    let (server, mut stream) = blocked_connection(builder, BLOCKS_MS).await;
    let echo = never_answered();
    // Call 1 cancelled (its handler blocks on), call 3 in flight: the ceiling. The PING waits.
    let ping = frame(PING, 0, 0, &42u64.to_be_bytes());
    send(
        &mut stream,
        &[
            &frame(CANCEL, 0, 1, &[]),
            &folded(3, ECHO_PATH, &echo),
            &ping,
        ],
    )
    .await;
    let pong = bounded("the PONG", async {
        let mut got = Vec::new();
        let mut answered = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let frames = server_frames(&got);
            assert!(
                !frames.iter().any(|f| f.kind == GOAWAY),
                "the server went away while it did not read: {frames:?}"
            );
            let pings: Vec<_> = frames.iter().filter(|f| f.kind == PING).collect();
            for server_ping in &pings[answered..] {
                send(&mut stream, &[&frame(PONG, 0, 0, &server_ping.body)]).await;
            }
            answered = pings.len();
            if let Some(pong) = frames.iter().find(|f| f.kind == PONG) {
                return pong.body.clone();
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed while it did not read: {frames:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert_eq!(pong, 42u64.to_be_bytes());
    drop(stream);
    server.stop().await;
}

/// The frame timer: it closed the connection "frame not completed in time".
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_frame_waiting_behind_cancelled_handlers_is_not_late() {
    a_ping_behind_cancelled_handlers_is_answered(
        sockrpc::Server::builder().frame_timeout(FRAME_TIMEOUT),
    )
    .await;
}

/// Keepalive: the server PINGs a client it heard nothing from, and the PONG waits unread; it
/// closed the connection "keepalive timeout".
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_pong_waiting_behind_cancelled_handlers_is_not_late() {
    let keepalive = Keepalive::new(Duration::from_millis(100), Duration::from_millis(200));
    a_ping_behind_cancelled_handlers_is_answered(
        sockrpc::Server::builder().keepalive(Some(keepalive)),
    )
    .await;
}
