//! Control signals are protocol fields that only the framework sets, never user metadata:
//!
//! - "not processed" (END's `NOT_PROCESSED` flag) is set only by a server connection that
//!   refused a call unstarted: a handler returning `Status::not_processed` sends a plain
//!   `UNAVAILABLE` that the client never re-sends, while a draining server's refusal still
//!   reaches the client as `is_not_processed()` and is retried on another connection;
//! - the `sockrpc-` metadata prefix is reserved: refused on insert, dropped off the wire, so a
//!   raw OPEN carrying `sockrpc-not-processed` or `sockrpc-udp-reissue` is an ordinary call;
//! - a TCP re-issue of a UDP call (OPEN's `REISSUE` field) passes every middleware layer (auth
//!   included), must name the method the UDP call ran, and needs a server that serves UDP.
//!
//! Real sockets on 127.0.0.1, port 0; raw frames are written and read by hand here, byte by
//! byte as `docs/PROTOCOL.md` lays them out. Every wait is bounded.

use bytes::Bytes;
use prost::Message as _;
use sockrpc::server::{Finish, ServerBuilder};
use sockrpc::service::udp::{UdpClient, UdpClientConfig, UdpOutcome};
use sockrpc::transport::ClientConnection;
use sockrpc::{
    Body, Call, Channel, Code, Endpoint, Limits, MetadataMap, MethodPath, Request, Response,
    Server, Status,
};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::Service;

/// Longest any single wait may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(10);

static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
static GROW: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Grow");

// Frame kinds and flags as `docs/PROTOCOL.md` numbers them.
const OPEN: u8 = 1;
const MESSAGE: u8 = 3;
const END: u8 = 4;
const GOAWAY: u8 = 8;
const FLAG_END_STREAM: u8 = 0x01;
const FLAG_NOT_PROCESSED: u8 = 0x04;
const PREFACE: &[u8; 8] = b"SOCKRPC\x01";

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The service: counts every handler run and remembers the metadata keys it was shown.

#[derive(Clone, Default)]
struct Counting {
    echoes: Arc<AtomicU64>,
    sleeps: Arc<AtomicU64>,
    fails: Arc<AtomicU64>,
    grows: Arc<AtomicU64>,
    /// Metadata keys each `Echo` run saw, in order.
    seen_keys: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.echoes.fetch_add(1, Ordering::SeqCst);
        let keys = request
            .metadata()
            .iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        self.seen_keys.lock().expect("lock").push(keys);
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    /// Forges the framework's "never started" status after doing its work.
    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        self.fails.fetch_add(1, Ordering::SeqCst);
        Err(Status::not_processed("forged by a handler that did run"))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.grows.fetch_add(1, Ordering::SeqCst);
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![7u8; size]),
            id: 0,
        }))
    }
}

struct Running {
    tcp: SocketAddr,
    udp: Option<SocketAddr>,
    handlers: Counting,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts `builder` (services already mounted) on a fresh TCP port, and on a UDP port too
    /// when `udp`.
    async fn start<L>(builder: ServerBuilder<L>, handlers: Counting, udp: bool) -> Running
    where
        L: Finish + Send + 'static,
    {
        let listener =
            sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
                .expect("bind tcp");
        let tcp = listener.local_addr().expect("addr");
        let (builder, udp) = if udp {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let addr = socket.local_addr().expect("addr");
            (builder.udp(socket, Default::default()), Some(addr))
        } else {
            (builder, None)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(builder.serve_with_listener_and_shutdown(listener, async {
            let _ = stopped.await;
        }));
        Running {
            tcp,
            udp,
            handlers,
            stop: Some(stop),
            task,
        }
    }

    async fn echo(udp: bool) -> Running {
        let handlers = Counting::default();
        let builder = Server::builder()
            .grace_period(BOUND)
            .add_service(EchoServer::new(handlers.clone()));
        Running::start(builder, handlers, udp).await
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    async fn stop(mut self) {
        self.signal_stop();
        bounded("server shutdown", &mut self.task)
            .await
            .expect("server task")
            .expect("serve");
    }
}

// ---------------------------------------------------------------------------------------------
// Raw frames, written and read by hand.

/// Appends a frame: `length: u32 | kind | flags | reserved: u16 | call id: u32 | body`.
fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, call_id: u32, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(body);
}

/// A metadata block, with any keys at all (the API would refuse the reserved ones).
fn metadata_block(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut block = (entries.len() as u16).to_be_bytes().to_vec();
    for (key, value) in entries {
        block.push(key.len() as u8);
        block.extend_from_slice(key.as_bytes());
        block.extend_from_slice(&(value.len() as u16).to_be_bytes());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// OPEN + MESSAGE(END_STREAM) of a unary call with no deadline.
fn put_unary(
    out: &mut Vec<u8>,
    call_id: u32,
    path: &MethodPath,
    metadata: &[(&str, &str)],
    message: &impl prost::Message,
) {
    let path = path.as_bytes();
    let mut open = 0u64.to_be_bytes().to_vec();
    open.extend_from_slice(&(path.len() as u16).to_be_bytes());
    open.extend_from_slice(path);
    open.extend_from_slice(&metadata_block(metadata));
    put_frame(out, OPEN, 0, call_id, &open);
    put_frame(
        out,
        MESSAGE,
        FLAG_END_STREAM,
        call_id,
        &message.encode_to_vec(),
    );
}

/// END: `code: u32 | msg_len: u32 | message | details_len: u32 | details | metadata block`.
fn put_end(
    out: &mut Vec<u8>,
    call_id: u32,
    flags: u8,
    code: Code,
    message: &str,
    trailers: &[(&str, &str)],
) {
    let mut body = code.as_u32().to_be_bytes().to_vec();
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&metadata_block(trailers));
    put_frame(out, END, flags, call_id, &body);
}

/// GOAWAY: `last_call_id: u32 | code: u32 | msg_len: u16 | message`.
fn put_goaway(out: &mut Vec<u8>, last_call_id: u32, code: Code, message: &str) {
    let mut body = last_call_id.to_be_bytes().to_vec();
    body.extend_from_slice(&code.as_u32().to_be_bytes());
    body.extend_from_slice(&(message.len() as u16).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    put_frame(out, GOAWAY, 0, 0, &body);
}

#[derive(Debug)]
struct RawFrame {
    kind: u8,
    flags: u8,
    call_id: u32,
    body: Vec<u8>,
}

/// The next frame, or `None` at a clean end of stream.
async fn read_frame(stream: &mut TcpStream) -> Option<RawFrame> {
    let mut header = [0u8; 12];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(err) => panic!("read: {err}"),
    }
    let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    assert!(len < 1 << 24, "frame of {len} bytes");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.expect("frame body");
    Some(RawFrame {
        kind: header[4],
        flags: header[5],
        call_id: u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")),
        body,
    })
}

/// Reads frames (bounded) until one of `kind` for `call_id`; returns it and those before it.
async fn read_until(stream: &mut TcpStream, kind: u8, call_id: u32) -> (RawFrame, Vec<RawFrame>) {
    bounded("the expected frame", async {
        let mut before = Vec::new();
        loop {
            let frame = read_frame(stream)
                .await
                .unwrap_or_else(|| panic!("stream ended before frame {kind} of call {call_id}"));
            if frame.kind == kind && frame.call_id == call_id {
                return (frame, before);
            }
            before.push(frame);
        }
    })
    .await
}

struct End {
    code: u32,
    message: String,
    trailers: Vec<String>,
}

fn parse_end(body: &[u8]) -> End {
    let u32_at = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let code = u32_at(0);
    let msg_len = u32_at(4) as usize;
    let message = String::from_utf8_lossy(&body[8..8 + msg_len]).into_owned();
    let mut at = 8 + msg_len;
    let details_len = u32_at(at) as usize;
    at += 4 + details_len;
    let count = u16::from_be_bytes([body[at], body[at + 1]]);
    at += 2;
    let mut trailers = Vec::new();
    for _ in 0..count {
        let key_len = usize::from(body[at]);
        trailers.push(String::from_utf8_lossy(&body[at + 1..at + 1 + key_len]).into_owned());
        at += 1 + key_len;
        let value_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
        at += 2 + value_len;
    }
    End {
        code,
        message,
        trailers,
    }
}

/// A raw client connection: both prefaces exchanged.
async fn raw_connect(addr: SocketAddr) -> TcpStream {
    let mut stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.write_all(PREFACE).await.expect("preface");
    let mut theirs = [0u8; 8];
    bounded("server preface", stream.read_exact(&mut theirs))
        .await
        .expect("server preface");
    assert_eq!(&theirs, PREFACE);
    stream
}

// ---------------------------------------------------------------------------------------------
// (1) A handler cannot forge "not processed".

/// A handler that ran and returns `Status::not_processed` must not make the client send the
/// call again: the client sees a plain `UNAVAILABLE`, the handler ran once, although the pool
/// had a second connection to retry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_cannot_forge_not_processed_to_make_the_client_resend_a_call_that_ran() {
    let server = Running::echo(false).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .pool_size(2)
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    assert_eq!(
        channel.connections().len(),
        2,
        "a second connection to retry on"
    );
    let mut client = EchoClient::new(channel);

    let status = bounded("call", client.fail(FailRequest::default()))
        .await
        .expect_err("the handler fails the call");
    assert_eq!(
        server.handlers.fails.load(Ordering::SeqCst),
        1,
        "the call ran once and was not sent again"
    );
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        !status.is_not_processed(),
        "a handler's status is never a refusal: {status:?}"
    );
    // Nothing arrives later either.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.handlers.fails.load(Ordering::SeqCst), 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// (2) A draining server's refusal is still "not processed", and the client retries it.

/// After GOAWAY, a call that crosses it is refused unstarted with END's `NOT_PROCESSED` flag
/// (a protocol field, not a trailer), while the call already running finishes normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_refuses_late_calls_with_the_not_processed_flag() {
    let mut server = Running::echo(false).await;
    let mut raw = raw_connect(server.tcp).await;
    let mut out = Vec::new();
    let sleep = SleepRequest {
        millis: 1_000,
        token: String::new(),
    };
    put_unary(
        &mut out,
        1,
        &MethodPath::from_static("/sockrpc.test.Echo/Sleep"),
        &[],
        &sleep,
    );
    raw.write_all(&out).await.expect("write");
    let sleeps = Arc::clone(&server.handlers.sleeps);
    eventually("the first call running", || {
        sleeps.load(Ordering::SeqCst) == 1
    })
    .await;

    server.signal_stop();
    let (goaway, _) = read_until(&mut raw, GOAWAY, 0).await;
    let last = u32::from_be_bytes(goaway.body[0..4].try_into().expect("4 bytes"));
    assert_eq!(last, 1, "GOAWAY keeps the running call");

    // A call the client sent before it read the GOAWAY.
    let mut out = Vec::new();
    put_unary(&mut out, 3, &ECHO, &[], &EchoRequest::default());
    raw.write_all(&out).await.expect("write");
    let (end, _) = read_until(&mut raw, END, 3).await;
    let refused = parse_end(&end.body);
    assert_eq!(
        refused.code,
        Code::Unavailable.as_u32(),
        "{}",
        refused.message
    );
    assert_ne!(
        end.flags & FLAG_NOT_PROCESSED,
        0,
        "refused unstarted: the END carries the NOT_PROCESSED flag"
    );
    assert!(
        refused.trailers.iter().all(|k| !k.starts_with("sockrpc-")),
        "no signal in the trailers: {:?}",
        refused.trailers
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 0);

    // The running call still finishes, without the flag.
    let (end, _) = read_until(&mut raw, END, 1).await;
    assert_eq!(parse_end(&end.body).code, 0);
    assert_eq!(end.flags & FLAG_NOT_PROCESSED, 0);
    drop(raw);
    server.stop().await;
}

/// How the hand-written server below refuses the first call it gets.
#[derive(Clone, Copy)]
enum Refusal {
    /// As a draining server does: END(UNAVAILABLE) with the `NOT_PROCESSED` flag, then GOAWAY.
    Flag,
    /// END(UNAVAILABLE) with the old trailer `sockrpc-not-processed: 1` and no flag.
    Trailer,
}

#[derive(Default)]
struct FakeLog {
    /// Connection index of each refused call.
    refused: Vec<usize>,
    /// Connection index of each answered call.
    served: Vec<usize>,
    accepted: usize,
}

/// A server written by hand: refuses the first call it is sent (as `refusal` says) and echoes
/// every later one, on whichever connection.
async fn fake_server(refusal: Refusal) -> (SocketAddr, Arc<Mutex<FakeLog>>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(FakeLog::default()));
    let task = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut log = log.lock().expect("lock");
                    log.accepted += 1;
                    log.accepted - 1
                };
                conns.spawn(fake_connection(stream, index, refusal, Arc::clone(&log)));
            }
        })
    };
    (addr, log, task)
}

async fn fake_connection(
    mut stream: TcpStream,
    index: usize,
    refusal: Refusal,
    log: Arc<Mutex<FakeLog>>,
) {
    let mut preface = [0u8; 8];
    if stream.write_all(PREFACE).await.is_err() || stream.read_exact(&mut preface).await.is_err() {
        return;
    }
    while let Some(frame) = read_frame(&mut stream).await {
        if frame.kind != MESSAGE {
            continue;
        }
        let id = frame.call_id;
        let mut out = Vec::new();
        let refuse = {
            let mut log = log.lock().expect("lock");
            let first = log.refused.is_empty() && log.served.is_empty();
            if first {
                log.refused.push(index);
            } else {
                log.served.push(index);
            }
            first
        };
        if refuse {
            match refusal {
                Refusal::Flag => {
                    put_end(
                        &mut out,
                        id,
                        FLAG_NOT_PROCESSED,
                        Code::Unavailable,
                        "draining",
                        &[],
                    );
                    put_goaway(&mut out, id, Code::Unavailable, "draining");
                }
                Refusal::Trailer => put_end(
                    &mut out,
                    id,
                    0,
                    Code::Unavailable,
                    "trailer only",
                    &[("sockrpc-not-processed", "1")],
                ),
            }
        } else {
            let request = EchoRequest::decode(&frame.body[..]).expect("an EchoRequest");
            let reply = EchoReply {
                payload: request.payload,
                id: request.id,
            };
            put_frame(
                &mut out,
                MESSAGE,
                FLAG_END_STREAM,
                id,
                &reply.encode_to_vec(),
            );
            put_end(&mut out, id, 0, Code::Ok, "", &[]);
        }
        // One write: the client reads the END and the GOAWAY together.
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

async fn pooled_client(addr: SocketAddr, log: &Arc<Mutex<FakeLog>>) -> EchoClient {
    let endpoint = Endpoint::from_uri(&format!("tcp://{addr}"))
        .expect("endpoint")
        .pool_size(2)
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let log = Arc::clone(log);
    eventually("both pooled connections accepted", || {
        log.lock().expect("lock").accepted == 2
    })
    .await;
    EchoClient::new(channel)
}

/// END with the `NOT_PROCESSED` flag, as a draining server sends it, reaches the client as
/// `is_not_processed()`: the channel sends the call again on its other connection, and the
/// caller sees only the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_flagged_not_processed_is_retried_on_another_connection() {
    let (addr, log, task) = fake_server(Refusal::Flag).await;
    let mut client = pooled_client(addr, &log).await;
    let reply = bounded(
        "call",
        client.echo(EchoRequest {
            payload: Bytes::from_static(b"again"),
            id: 7,
        }),
    )
    .await
    .expect("retried transparently")
    .into_inner();
    assert_eq!(reply.id, 7);
    assert_eq!(&reply.payload[..], b"again");
    {
        let log = log.lock().expect("lock");
        assert_eq!(log.refused.len(), 1);
        assert_eq!(log.served.len(), 1, "sent once more, not more");
        assert_ne!(
            log.refused[0], log.served[0],
            "the retry went to the other connection"
        );
    }
    task.abort();
}

/// The old signal, a `sockrpc-not-processed` trailer, is user metadata: dropped off the wire and
/// never read as a refusal, so the call is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_processed_trailer_without_the_flag_is_not_a_refusal() {
    let (addr, log, task) = fake_server(Refusal::Trailer).await;
    let mut client = pooled_client(addr, &log).await;
    let status = bounded("call", client.echo(EchoRequest::default()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.is_not_processed(), "{status:?}");
    assert!(
        status
            .metadata()
            .iter()
            .all(|(k, _)| !k.starts_with("sockrpc-")),
        "reserved keys are dropped off the wire: {:?}",
        status.metadata()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = log.lock().expect("lock");
    assert_eq!(log.refused.len(), 1);
    assert!(log.served.is_empty(), "not sent again: {:?}", log.served);
    drop(log);
    task.abort();
}

// ---------------------------------------------------------------------------------------------
// (3) The `sockrpc-` prefix is reserved.

#[test]
fn sockrpc_prefixed_metadata_keys_are_refused_on_insert() {
    let mut map = MetadataMap::new();
    for key in [
        "sockrpc-x",
        "sockrpc-not-processed",
        "sockrpc-udp-reissue",
        "Sockrpc-Not-Processed",
    ] {
        assert!(map.insert(key, "1").is_err(), "{key} accepted");
    }
    assert!(map.insert_bin("sockrpc-x-bin", vec![1u8]).is_err());
    assert!(map.is_empty(), "{map:?}");
    // Only the exact prefix: look-alikes are ordinary keys.
    map.insert("sockrpc", "1").expect("no dash: not the prefix");
    map.insert("x-sockrpc-y", "1").expect("not at the start");
    map.insert("sockrpcx", "1").expect("not the prefix");
    assert_eq!(map.len(), 3);

    let mut request = Request::new(EchoRequest::default());
    assert!(request
        .metadata_mut()
        .insert("sockrpc-udp-reissue", "0000000000000001.00000001")
        .is_err());
    let mut status = Status::internal("x");
    assert!(status
        .metadata_mut()
        .insert("sockrpc-not-processed", "1")
        .is_err());
}

/// A raw OPEN carrying the old signal keys is an ordinary call, on a server with UDP and one
/// without: it runs once, answers OK without the refusal flag, and the handler never sees the
/// reserved keys (only the ordinary one next to them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_keys_in_a_raw_open_reach_no_handler_and_signal_nothing() {
    for udp in [false, true] {
        let server = Running::echo(udp).await;
        let mut raw = raw_connect(server.tcp).await;
        let mut out = Vec::new();
        put_unary(
            &mut out,
            1,
            &ECHO,
            &[
                ("sockrpc-udp-reissue", "0000000000000001.00000001"),
                ("sockrpc-not-processed", "1"),
                ("x-keep", "yes"),
            ],
            &EchoRequest {
                payload: Bytes::from_static(b"plain"),
                id: 5,
            },
        );
        raw.write_all(&out).await.expect("write");
        let (end, before) = read_until(&mut raw, END, 1).await;
        let ended = parse_end(&end.body);
        assert_eq!(ended.code, 0, "udp={udp}: {}", ended.message);
        assert_eq!(end.flags & FLAG_NOT_PROCESSED, 0, "udp={udp}");
        let message = before
            .iter()
            .find(|f| f.kind == MESSAGE && f.call_id == 1)
            .unwrap_or_else(|| panic!("udp={udp}: no answer message in {before:?}"));
        let reply = EchoReply::decode(&message.body[..]).expect("EchoReply");
        assert_eq!((reply.id, &reply.payload[..]), (5, &b"plain"[..]));
        assert_eq!(
            server.handlers.echoes.load(Ordering::SeqCst),
            1,
            "udp={udp}: ran once"
        );
        assert_eq!(
            *server.handlers.seen_keys.lock().expect("lock"),
            [vec!["x-keep".to_owned()]],
            "udp={udp}: the handler saw only the ordinary key"
        );
        drop(raw);
        server.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// (4) A TCP re-issue passes the middleware and names the method its UDP call ran.

const AUTH_KEY: &str = "x-auth";
const AUTH_TOKEN: &str = "let-me-in";

/// What the auth layer saw of one call.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    transport: Option<sockrpc::transport::TransportKind>,
    reissue: bool,
    admitted: bool,
}

/// A tower layer that refuses every call without `x-auth: let-me-in`, and logs what it saw.
#[derive(Clone)]
struct RequireAuth<S> {
    inner: S,
    log: Arc<Mutex<Vec<Seen>>>,
}

type CallResult = Result<Response<Body>, Status>;

impl<S> Service<Call> for RequireAuth<S>
where
    S: Service<Call, Response = Response<Body>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = CallResult> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let admitted = call.request().metadata().get(AUTH_KEY) == Some(AUTH_TOKEN);
        self.log.lock().expect("lock").push(Seen {
            path: call.path().to_owned(),
            transport: call.transport(),
            reissue: call.replay().is_some(),
            admitted,
        });
        if !admitted {
            return Box::pin(std::future::ready(Err(Status::unauthenticated(
                "no x-auth",
            ))));
        }
        Box::pin(self.inner.call(call))
    }
}

async fn auth_server(udp: bool) -> (Running, Arc<Mutex<Vec<Seen>>>) {
    let handlers = Counting::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let layer = {
        let log = Arc::clone(&log);
        tower::layer::layer_fn(move |inner| RequireAuth {
            inner,
            log: Arc::clone(&log),
        })
    };
    let builder = Server::builder()
        .layer(layer)
        .add_service(EchoServer::new(handlers.clone()));
    (Running::start(builder, handlers, udp).await, log)
}

fn authorized<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(AUTH_KEY, AUTH_TOKEN)
        .expect("valid");
    request.set_timeout(BOUND);
    request
}

fn encoded(request: &Request<impl prost::Message>) -> Request<Bytes> {
    Request::from_parts(
        request.metadata().clone(),
        Bytes::from(request.get_ref().encode_to_vec()),
        request.timeout(),
    )
}

/// The status a call failed with; a success is reported by its size, not its bytes.
fn failure(what: &str, result: Result<Response<Bytes>, Status>) -> Status {
    match result {
        Ok(response) => panic!("{what}: succeeded with {} bytes", response.get_ref().len()),
        Err(status) => status,
    }
}

async fn tcp_connection(addr: SocketAddr) -> ClientConnection {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    bounded("handshake", conn.ready()).await.expect("ready");
    conn
}

/// A re-issue is a call like any other to the middleware: without credentials the auth layer
/// refuses it `UNAUTHENTICATED` (the cached answer is not handed out); with them, naming
/// another method than the UDP call ran is `INVALID_ARGUMENT`; naming the right one returns
/// the cached answer without running the handler again. A server with no UDP refuses any
/// re-issue `FAILED_PRECONDITION`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_reissue_passes_the_middleware_and_must_name_the_method_the_udp_call_ran() {
    let (server, log) = auth_server(true).await;
    let udp = UdpClient::connect(server.udp.expect("udp"), UdpClientConfig::default())
        .await
        .expect("udp client");
    let grow = encoded(&authorized(GrowRequest { size: 5_000 }));
    let deadline = Some(Instant::now() + BOUND);
    // The hold keeps the call below the client's watermark until the test ends.
    let (udp_call, _hold) = truncated(bounded("udp call", udp.call(&GROW, &grow, deadline)).await);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);

    let conn = tcp_connection(server.tcp).await;
    // No credentials: the layer refuses it before the router could answer from the cache.
    let mut anonymous = grow.clone();
    anonymous.metadata_mut().remove(AUTH_KEY);
    let status = failure(
        "an anonymous re-issue",
        bounded("re-issue", conn.reissue(GROW.clone(), anonymous, udp_call)).await,
    );
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Credentials, but another method than the UDP call ran.
    let echo = encoded(&authorized(EchoRequest::default()));
    let status = failure(
        "a re-issue naming another method",
        bounded("re-issue", conn.reissue(ECHO.clone(), echo, udp_call)).await,
    );
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Credentials and the right method: the cached answer.
    let response = bounded(
        "re-issue",
        conn.reissue(GROW.clone(), grow.clone(), udp_call),
    )
    .await
    .expect("the cached answer");
    let reply = EchoReply::decode(response.get_ref().clone()).expect("EchoReply");
    assert_eq!(reply.payload.len(), 5_000);
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "never run again"
    );
    assert_eq!(server.handlers.echoes.load(Ordering::SeqCst), 0);

    let seen = log.lock().expect("lock").clone();
    let reissues: Vec<&Seen> = seen.iter().filter(|s| s.reissue).collect();
    assert_eq!(seen.len(), 4, "the UDP call and three re-issues: {seen:?}");
    assert_eq!(reissues.len(), 3, "{seen:?}");
    assert!(
        reissues
            .iter()
            .all(|s| s.transport == Some(sockrpc::transport::TransportKind::Tcp)),
        "{seen:?}"
    );
    assert_eq!(
        reissues.iter().filter(|s| !s.admitted).count(),
        1,
        "{seen:?}"
    );
    server.stop().await;

    // A server that serves no UDP has no cache to answer from.
    let (server, _log) = auth_server(false).await;
    let conn = tcp_connection(server.tcp).await;
    let status = failure(
        "a re-issue to a server without UDP",
        bounded(
            "re-issue",
            conn.reissue(GROW.clone(), grow.clone(), udp_call),
        )
        .await,
    );
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 0);
    server.stop().await;
}

/// The same through a `Channel` with `Endpoint::udp`: a truncated reply is fetched over TCP with
/// the caller's metadata, so a legitimate re-issue passes the auth layer, and the handler ran
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_reply_is_fetched_through_the_auth_layer_with_the_callers_credentials() {
    let (server, log) = auth_server(true).await;
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .udp(server.udp.expect("udp"))
        .timeout(BOUND);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = EchoClient::new(channel.clone());
    let reply = bounded("call", client.grow(authorized(GrowRequest { size: 5_000 })))
        .await
        .expect("fetched over TCP")
        .into_inner();
    assert_eq!(reply.payload.len(), 5_000);
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    assert!(channel.udp_stats().expect("udp").truncations >= 1);
    let seen = log.lock().expect("lock").clone();
    assert!(
        seen.iter().any(|s| s.reissue && s.admitted),
        "the re-issue passed the layer: {seen:?}"
    );
    assert!(seen.iter().all(|s| s.admitted), "{seen:?}");

    // Without credentials the UDP call itself is refused by the same layer.
    let status = bounded("call", client.grow(GrowRequest { size: 5_000 }))
        .await
        .expect_err("no credentials");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    server.stop().await;
}

/// A layer that rebuilds every call from its parts, as a layer that rewrites the path or the
/// request may: the `Call`'s re-issue mark does not survive that, but the re-issue must still
/// be answered from the cache, never run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reissue_rebuilt_by_a_layer_is_still_answered_from_the_cache() {
    let handlers = Counting::default();
    let rebuild = tower::layer::layer_fn(|inner| {
        tower::util::MapRequest::new(inner, |call: Call| {
            let (path, request) = call.into_parts();
            Call::new(path, request)
        })
    });
    let builder = Server::builder()
        .layer(rebuild)
        .add_service(EchoServer::new(handlers.clone()));
    let server = Running::start(builder, handlers, true).await;
    let udp = UdpClient::connect(server.udp.expect("udp"), UdpClientConfig::default())
        .await
        .expect("udp client");
    let grow = encoded(&authorized(GrowRequest { size: 5_000 }));
    let deadline = Some(Instant::now() + BOUND);
    // The hold keeps the call below the client's watermark until the test ends.
    let (udp_call, _hold) = truncated(bounded("udp call", udp.call(&GROW, &grow, deadline)).await);
    let conn = tcp_connection(server.tcp).await;
    let response = bounded("re-issue", conn.reissue(GROW.clone(), grow, udp_call))
        .await
        .expect("the cached answer");
    assert_eq!(
        EchoReply::decode(response.get_ref().clone())
            .expect("EchoReply")
            .payload
            .len(),
        5_000
    );
    assert_eq!(
        server.handlers.grows.load(Ordering::SeqCst),
        1,
        "the rebuilt re-issue did not run the call again"
    );
    // A made-up UDP identity is no licence to run a non-idempotent call either.
    let made_up = encoded(&authorized(GrowRequest { size: 5_000 }));
    let status = failure(
        "a re-issue of a call that never ran",
        bounded(
            "re-issue",
            conn.reissue(GROW.clone(), made_up, (udp_call.0, udp_call.1 + 1000)),
        )
        .await,
    );
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(server.handlers.grows.load(Ordering::SeqCst), 1);
    server.stop().await;
}

/// The UDP identity of a truncated call, and the hold that keeps its answer on the server.
fn truncated(outcome: UdpOutcome) -> ((u64, u32), sockrpc::service::udp::ReissueHold) {
    match outcome {
        UdpOutcome::Truncated {
            instance,
            call_id,
            hold,
        } => ((instance, call_id), hold),
        other => panic!("expected a truncated reply, got {other:?}"),
    }
}
