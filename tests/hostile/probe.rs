//! An attacker's probe, on real loopback sockets: what the other tests of this binary do not
//! cover. Frames dripped on many connections at once, a preface dripped slower than the
//! handshake timeout, floods of frames that need no answer, OPEN+CANCEL in a loop (HTTP/2's
//! "rapid reset"), a client that resets or half-closes its connection with a call in flight,
//! metadata of thousands of tiny entries, a request of deeply nested protobuf groups, and many
//! connections that never read their answers. Each test runs a witness (a well-behaved
//! generated client) through the attack, is bounded in count and time, and asserts no server
//! task panicked.

use crate::memory::{assert_growth, parent_runtime, peak_of, warm_baseline, CHILD_ENV, MIB};
use crate::raw::{
    concat, connect, frame, goaway, header, open, open_body, read_until_closed, send,
    server_frames, xorshift_bytes, Closed, ServerFrame, END, END_STREAM, GOAWAY, MESSAGE, OPEN,
    PREFACE, WINDOW,
};
use crate::support::{bounded, count_worker_panics, fresh_call, EchoImpl, Running, Witness, BOUND};
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::child::{test_name, ChildServer};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
const ECHO_PATH: &[u8] = b"/sockrpc.test.Echo/Echo";
const GROW_PATH: &[u8] = b"/sockrpc.test.Echo/Grow";
const CANCEL: u8 = 5;
const HEADERS: u8 = 2;
const PONG: u8 = 7;
/// Frame flag on OPEN: the request message is folded in (`FLAG_MESSAGE`).
const FOLDED: u8 = 0x20;
const DEADLINE_EXCEEDED: u32 = 4;

/// Handlers of `Sleep` alive right now (started and not yet returned or dropped), and how many
/// ever started: a handler the server forgot to stop shows as one that stays alive.
#[derive(Debug, Default)]
struct Live {
    now: AtomicUsize,
    started: AtomicUsize,
}

struct Alive(Arc<Live>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The hostile tests' echo, with `Sleep` counted in [`Live`].
#[derive(Default)]
struct ProbeEcho {
    live: Arc<Live>,
    inner: EchoImpl,
}

impl Echo for ProbeEcho {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.echo(request).await
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.live.started.fetch_add(1, Ordering::SeqCst);
        self.live.now.fetch_add(1, Ordering::SeqCst);
        let _alive = Alive(Arc::clone(&self.live));
        self.inner.sleep(request).await
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.fail(request).await
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.inner.grow(request).await
    }
}

/// A probe server on `127.0.0.1:0` with short timeouts, so that the timeout attacks take
/// seconds of real time.
struct Probe {
    addr: SocketAddr,
    live: Arc<Live>,
    running: Running,
}

/// The probe server's frame and handshake timeouts.
const SHORT: Duration = Duration::from_millis(800);

impl Probe {
    fn start() -> Probe {
        count_worker_panics();
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let service = ProbeEcho::default();
        let live = Arc::clone(&service.live);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            sockrpc::Server::builder()
                .frame_timeout(SHORT)
                .handshake_timeout(SHORT)
                .grace_period(Duration::from_secs(2))
                .add_service(EchoServer::new(service))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        Probe {
            addr,
            live,
            running: Running {
                addr,
                stop: Some(stop),
                task,
            },
        }
    }

    /// Waits (bounded) until no `Sleep` handler is alive.
    async fn no_handler_alive(&self, what: &str) {
        let live = &self.live;
        bounded(what, async {
            while live.now.load(Ordering::SeqCst) != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    async fn stop(self) {
        self.running.stop().await;
    }
}

fn sleep_call(call_id: u32, millis: u64) -> Vec<u8> {
    let body = SleepRequest {
        millis,
        token: String::new(),
    }
    .encode_to_vec();
    frame(MESSAGE, END_STREAM, call_id, &body)
}

/// An encoded `EchoRequest`.
fn echo_request(id: u64, payload: &[u8]) -> Vec<u8> {
    EchoRequest {
        payload: payload.to_vec().into(),
        id,
    }
    .encode_to_vec()
}

/// A unary OPEN with its request folded in (`FLAG_MESSAGE | END_STREAM`).
fn folded(call_id: u32, path: &[u8], metadata: &[(&[u8], &[u8])], message: &[u8]) -> Vec<u8> {
    let mut body = open_body(path, metadata);
    body.extend_from_slice(message);
    frame(OPEN, FOLDED | END_STREAM, call_id, &body)
}

/// Reads frames from `stream` (preface included in `got`) until one for `call_id` ends it:
/// `Some(code)` from its END, `Some(0)` for a MESSAGE answer followed by END OK.
async fn answer_of(stream: &mut TcpStream, got: &mut Vec<u8>, call_id: u32) -> Vec<ServerFrame> {
    let mut buf = vec![0u8; 64 * 1024];
    bounded("an answer", async {
        loop {
            let frames = server_frames(got);
            if frames.iter().any(|f| f.call_id == call_id && f.kind == END) {
                return frames;
            }
            if let Some(reason) = goaway(&frames) {
                panic!("GOAWAY instead of an answer to call {call_id}: {reason:?}");
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed before answering call {call_id}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
}

fn end_code_of(frames: &[ServerFrame], call_id: u32) -> (u32, String) {
    let end = frames
        .iter()
        .find(|f| f.call_id == call_id && f.kind == END)
        .expect("an END");
    let b = &end.body;
    let code = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
    (code, String::from_utf8_lossy(&b[8..8 + len]).into_owned())
}

/// Many connections at once drip a frame one byte at a time (slowloris, per frame) or drip the
/// preface slower than the handshake timeout: each is closed once its own clock runs out — a
/// dripped frame with GOAWAY `DEADLINE_EXCEEDED`, a dripped preface without a word — however
/// steadily it drips, and the witness is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_and_prefaces_dripped_on_many_connections_are_cut_off() {
    let server = Probe::start();
    let witness = Witness::start(server.addr).await;
    let mut drips = Vec::new();
    for i in 0..24u32 {
        let addr = server.addr;
        drips.push(tokio::spawn(async move {
            let mut stream = connect(addr).await;
            // Even: a 4 MiB MESSAGE announced, its body dripped. Odd: the preface dripped.
            let (start, tail) = if i % 2 == 0 {
                (
                    concat(&[PREFACE, &header(4 << 20, MESSAGE, 0, 0, 1)]),
                    vec![b'x'; 64],
                )
            } else {
                (Vec::new(), PREFACE.to_vec())
            };
            send(&mut stream, &[&start]).await;
            let started = tokio::time::Instant::now();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            let mut dripped = 0;
            // One byte each 150 ms: the frame (or preface) would take 9.6 s (1.2 s) whole;
            // the server's clocks are 0.8 s.
            let closed = loop {
                if dripped < tail.len() && stream.write_all(&tail[dripped..=dripped]).await.is_err()
                {
                    break Closed::Error;
                }
                dripped += 1;
                match tokio::time::timeout(Duration::from_millis(150), stream.read(&mut buf)).await
                {
                    Err(_) => {}
                    Ok(Ok(0)) => break Closed::Eof,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(Err(_)) => break Closed::Error,
                }
                assert!(
                    started.elapsed() < SHORT + BOUND,
                    "drip {i}: still open after {:?}",
                    started.elapsed()
                );
            };
            let took = started.elapsed();
            assert!(took >= SHORT / 2, "drip {i}: closed early, after {took:?}");
            if i % 2 == 0 {
                assert!(
                    matches!(closed, Closed::Eof),
                    "drip {i}: expected an orderly close, got {closed:?}"
                );
                let (code, reason) = goaway(&server_frames(&got))
                    .unwrap_or_else(|| panic!("drip {i}: closed without a GOAWAY"));
                assert_eq!(code, DEADLINE_EXCEEDED, "drip {i}: {reason}");
                assert!(reason.contains("frame not completed in time"), "{reason}");
            } else {
                assert!(
                    server_frames(&got).iter().all(|f| f.kind != GOAWAY),
                    "drip {i}: a preface not finished in time needs no GOAWAY"
                );
            }
        }));
    }
    for drip in drips {
        drip.await.expect("drip task");
    }
    witness.finish().await;
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

/// Frames that need no answer — SETTINGS, WINDOW on call 0 at `u32::MAX`, PONG, a client's
/// GOAWAY and HEADERS, CANCEL, WINDOW and empty MESSAGEs for calls that never existed — sent by
/// the tens of thousands on one connection: the server answers none of them (no amplification:
/// at most a connection WINDOW for the MESSAGEs' charge), keeps the connection open, answers a
/// call on it afterwards, and serves the witness throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_frames_that_need_no_answer_gets_none() {
    let server = Probe::start();
    let witness = Witness::start(server.addr).await;
    let goaway_body = concat(&[
        &0u32.to_be_bytes(),
        &0u32.to_be_bytes(),
        &0u16.to_be_bytes(),
    ]);
    let mut batch = Vec::new();
    for i in 0..2_000u32 {
        batch.extend_from_slice(&frame(WINDOW, 0x20, 0, &u32::MAX.to_be_bytes()));
        batch.extend_from_slice(&frame(WINDOW, 0, 0, &u32::MAX.to_be_bytes()));
        batch.extend_from_slice(&frame(WINDOW, 0, 1_000_000 + i, &u32::MAX.to_be_bytes()));
        batch.extend_from_slice(&frame(PONG, 0, 0, &u64::from(i).to_be_bytes()));
        batch.extend_from_slice(&frame(GOAWAY, 0, 0, &goaway_body));
        batch.extend_from_slice(&frame(HEADERS, 0, 3_000_000 + i, &0u16.to_be_bytes()));
        batch.extend_from_slice(&frame(CANCEL, 0, 2_000_000 + i, &[]));
        batch.extend_from_slice(&frame(MESSAGE, 0, 4_000_000 + i, &[]));
    }
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    // 20 batches of 16,000 frames: 320,000 frames, about 6 MB.
    for _ in 0..20 {
        bounded("write a batch", stream.write_all(&batch))
            .await
            .expect("the server keeps reading");
    }
    let echo = echo_request(7, b"after the flood");
    send(&mut stream, &[&folded(1, ECHO_PATH, &[], &echo)]).await;
    let mut got = Vec::new();
    let frames = answer_of(&mut stream, &mut got, 1).await;
    assert!(
        got.len() < 4096,
        "the server answered frames that need no answer: {} bytes, {:?}",
        got.len(),
        frames
            .iter()
            .map(|f| (f.kind, f.call_id))
            .collect::<Vec<_>>()
    );
    assert_eq!(end_code_of(&frames, 1).0, 0, "the call after the flood");
    assert!(
        frames
            .iter()
            .all(|f| f.call_id == 1 || (f.kind == WINDOW && f.call_id == 0)),
        "unexpected frames: {:?}",
        frames
            .iter()
            .map(|f| (f.kind, f.call_id))
            .collect::<Vec<_>>()
    );
    drop(stream);
    witness.finish().await;
    server.stop().await;
}

/// HTTP/2's "rapid reset" (CVE-2023-44487): a client opens a call and cancels it at once, in a
/// loop, so the call cap never holds it back. Every cancelled handler is stopped — none is
/// left alive — the connection still serves a call afterwards, and the witness is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_then_cancel_in_a_loop_leaves_no_handler_running() {
    let server = Probe::start();
    let witness = Witness::start(server.addr).await;
    let sleep = SleepRequest {
        millis: 60_000,
        token: String::new(),
    }
    .encode_to_vec();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    let mut call_id = 1u32;
    for _ in 0..40 {
        let mut batch = Vec::new();
        for _ in 0..250 {
            batch.extend_from_slice(&folded(call_id, SLEEP_PATH, &[], &sleep));
            batch.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
            call_id += 2;
        }
        bounded("write a batch", stream.write_all(&batch))
            .await
            .expect("write");
    }
    let echo = echo_request(1, b"after");
    send(&mut stream, &[&folded(call_id, ECHO_PATH, &[], &echo)]).await;
    let mut got = Vec::new();
    let frames = answer_of(&mut stream, &mut got, call_id).await;
    assert_eq!(
        end_code_of(&frames, call_id).0,
        0,
        "the call after the loop"
    );
    assert!(
        server.live.started.load(Ordering::SeqCst) > 0,
        "no Sleep handler ever started: the probe proved nothing"
    );
    server
        .no_handler_alive("every cancelled handler stopped")
        .await;
    drop(stream);
    witness.finish().await;
    server.stop().await;
}

/// Clients that send a call and then reset their connection (RST, `SO_LINGER` 0): the server
/// stops each handler at once rather than at its 60 s end, and serves the witness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connection_stops_its_handlers() {
    let server = Probe::start();
    let witness = Witness::start(server.addr).await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut stream = connect(server.addr).await;
        send(
            &mut stream,
            &[PREFACE, &open(1, SLEEP_PATH, &[]), &sleep_call(1, 60_000)],
        )
        .await;
        streams.push(stream);
    }
    let live = &server.live;
    bounded("every handler started", async {
        while live.started.load(Ordering::SeqCst) < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for stream in streams {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(stream);
    }
    server
        .no_handler_alive("handlers of reset connections stopped")
        .await;
    witness.finish().await;
    server.stop().await;
}

/// A client that sends its call and then shuts its write side (a TCP half-close, as `nc -N`
/// or `shutdown(SHUT_WR)` does) has ended the connection: the protocol's half-close is the END
/// frame, and a FIN is what a client's exit sends, so the server stops that connection's
/// handlers at once (as it does on a reset) instead of running them for nobody, and closes
/// without an answer (`docs/PROTOCOL.md`, *A client's FIN*).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fin_with_a_call_in_flight_stops_its_handler_and_closes() {
    let server = Probe::start();
    let mut stream = connect(server.addr).await;
    send(
        &mut stream,
        &[PREFACE, &open(1, SLEEP_PATH, &[]), &sleep_call(1, 60_000)],
    )
    .await;
    let live = &server.live;
    bounded("the handler started", async {
        while live.started.load(Ordering::SeqCst) < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    stream.shutdown().await.expect("half-close");
    server
        .no_handler_alive("the handler of a half-closed connection stopped")
        .await;
    let (got, closed) = read_until_closed(&mut stream, "after the FIN").await;
    assert!(matches!(closed, Closed::Eof), "{closed:?}");
    let frames = server_frames(&got);
    assert!(
        !frames.iter().any(|f| f.call_id == 1),
        "nothing more for the stopped call: {frames:?}"
    );
    server.stop().await;
}

/// The control: a handler that answers at once is answered even after the half-close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_at_once_survives_a_half_close() {
    let server = Probe::start();
    let mut stream = connect(server.addr).await;
    let echo = echo_request(1, b"half");
    send(&mut stream, &[PREFACE, &folded(1, ECHO_PATH, &[], &echo)]).await;
    stream.shutdown().await.expect("half-close");
    let mut got = Vec::new();
    let frames = answer_of(&mut stream, &mut got, 1).await;
    assert_eq!(end_code_of(&frames, 1).0, 0);
    let (_, closed) = read_until_closed(&mut stream, "after the answer").await;
    assert!(matches!(closed, Closed::Eof), "{closed:?}");
    server.stop().await;
}

/// Calls whose metadata block is 455 one-byte keys with empty values (1,822 bytes, 16,382 with
/// HTTP/2's 32 bytes per entry, under the 16 KiB limit): each is parsed and served, 200 of them in a row on one connection, while the
/// witness is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_tiny_metadata_entries_are_served() {
    let server = Probe::start();
    let witness = Witness::start(server.addr).await;
    let keys: Vec<[u8; 1]> = (0..455).map(|i| [b'a' + (i % 26) as u8]).collect();
    let metadata: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &b""[..])).collect();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    let mut got = Vec::new();
    for round in 0..200u32 {
        let call_id = 2 * round + 1;
        let echo = echo_request(u64::from(round), &xorshift_bytes(u64::from(round) + 1, 64));
        send(
            &mut stream,
            &[&folded(call_id, ECHO_PATH, &metadata, &echo)],
        )
        .await;
        let frames = answer_of(&mut stream, &mut got, call_id).await;
        assert_eq!(end_code_of(&frames, call_id).0, 0, "call {call_id}");
    }
    drop(stream);
    witness.finish().await;
    server.stop().await;
}

/// A request of a million nested protobuf groups (an unknown field's start-group tags, which a
/// decoder must recurse into to skip): prost's recursion limit refuses it, so the call fails
/// `INTERNAL` and nothing else happens — no stack overflow, the connection serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_groups_fail_only_their_call() {
    let server = Probe::start();
    let mut stream = connect(server.addr).await;
    let depth = 1_000_000;
    // Field 3, wire type 3 (start group) = 0x1b; its end group (type 4) = 0x1c.
    let mut body = vec![0x1b; depth];
    body.extend(std::iter::repeat_n(0x1c, depth));
    send(
        &mut stream,
        &[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &frame(MESSAGE, END_STREAM, 1, &body),
        ],
    )
    .await;
    let mut got = Vec::new();
    let frames = answer_of(&mut stream, &mut got, 1).await;
    let (code, message) = end_code_of(&frames, 1);
    assert_eq!(code, 13, "INTERNAL: {message}");
    assert!(message.contains("recursion limit"), "{message}");
    let echo = echo_request(2, b"next");
    send(&mut stream, &[&folded(3, ECHO_PATH, &[], &echo)]).await;
    let frames = answer_of(&mut stream, &mut got, 3).await;
    assert_eq!(end_code_of(&frames, 3).0, 0);
    drop(stream);
    fresh_call(server.addr, 4).await;
    server.stop().await;
}

/// Connections that each write many calls with 1 MiB answers and never read: what the server
/// holds grows with the connections, but for each only by its write buffer's high-water mark
/// (8 MiB) and an answer or two — never by all it was asked for (40 MiB each here). Peak
/// resident size of a server in a child process (`memory.rs`'s). There is no bound across
/// connections: 200 such clients held about 2 GB of `sockrpc serve` (see the report of
/// session "hostile probe").
#[test]
fn many_connections_that_never_read_hold_a_bounded_share_each() {
    const CONNS: u64 = 12;
    const CALLS: u32 = 40;
    /// Per connection: 8 MiB high water, one or two 1 MiB answers, the read buffer, slack.
    const PER_CONN: u64 = 16 * MIB;
    let name = "many_connections_that_never_read_hold_a_bounded_share_each";
    if std::env::var_os(CHILD_ENV).is_some() {
        return crate::memory::child_server();
    }
    let child = ChildServer::spawn(&test_name(module_path!(), name), CHILD_ENV);
    parent_runtime().block_on(async {
        let (_, virt_before) = warm_baseline(&child).await;
        let before = (peak_of(child.pid()).0, virt_before);
        let witness = Witness::start(child.addr).await;
        let grow = GrowRequest { size: 1 << 20 }.encode_to_vec();
        let mut calls = PREFACE.to_vec();
        for call_id in 1..=CALLS {
            calls.extend_from_slice(&open(call_id, GROW_PATH, &[]));
            calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
        }
        let mut streams = Vec::new();
        for _ in 0..CONNS {
            let mut stream = connect(child.addr).await;
            bounded("write the calls", stream.write_all(&calls))
                .await
                .expect("write");
            streams.push(stream);
        }
        // Long enough for a server that buffers every answer to have done so.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if peak_of(child.pid()).0.saturating_sub(before.0) >= CONNS * PER_CONN {
                break;
            }
        }
        fresh_call(child.addr, 500).await;
        let after = peak_of(child.pid());
        assert_growth(
            "12 connections x 40 unread 1 MiB answers (peak RSS)",
            before,
            after,
            CONNS * PER_CONN,
            4 * CONNS * PER_CONN,
        );
        drop(streams);
        witness.finish().await;
        fresh_call(child.addr, 501).await;
    });
    child.finish();
}
