//! Issue 2, must show 5 and 6: hostile bytes from raw `TcpStream`s close only their own
//! connection (with a GOAWAY reason where one is sent), never panic the server, never make it
//! allocate what a peer merely announces, while a well-behaved generated client keeps being
//! served; and a client whose server is gone fails with `Unavailable`, never hangs.

use prost::Message as _;
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

/// How long the server may take to close a hostile connection, or a client to fail a call.
const BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Raw wire helpers, written from docs/PROTOCOL.md rather than with the framework's encoder, so a
// bug there cannot hide one here.

const PREFACE: &[u8; 8] = b"SOCKRPC\x01";
const OPEN: u8 = 1;
const MESSAGE: u8 = 3;
const END: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 8;
const END_STREAM: u8 = 1;
const ECHO_PATH: &[u8] = b"/sockrpc.test.Echo/Echo";
const INTERNAL: u32 = 13;

fn header(length: u32, kind: u8, flags: u8, reserved: u16, call_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&reserved.to_be_bytes());
    out.extend_from_slice(&call_id.to_be_bytes());
    out
}

fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(body.len() as u32, kind, flags, 0, call_id);
    out.extend_from_slice(body);
    out
}

/// An OPEN body: no deadline, `path`, then a metadata block of raw `(key, value)` pairs.
fn open_body(path: &[u8], metadata: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(path.len() as u16).to_be_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&(metadata.len() as u16).to_be_bytes());
    for (key, value) in metadata {
        out.push(key.len() as u8);
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn open(call_id: u32, path: &[u8], metadata: &[(&[u8], &[u8])]) -> Vec<u8> {
    frame(OPEN, 0, call_id, &open_body(path, metadata))
}

fn echo_message(call_id: u32, id: u64, payload: &[u8]) -> Vec<u8> {
    let body = EchoRequest {
        payload: payload.to_vec().into(),
        id,
    }
    .encode_to_vec();
    frame(MESSAGE, END_STREAM, call_id, &body)
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A fixed-seed xorshift64*, so "random" input is the same on every run.
fn xorshift_bytes(mut seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_be_bytes());
    }
    out.truncate(len);
    out
}

/// A frame the server sent.
#[derive(Debug)]
struct ServerFrame {
    kind: u8,
    call_id: u32,
    body: Vec<u8>,
}

/// Splits what the server sent into its preface and frames; panics on anything malformed.
fn server_frames(bytes: &[u8]) -> Vec<ServerFrame> {
    if bytes.is_empty() {
        return Vec::new();
    }
    assert!(
        bytes.len() >= 8 && &bytes[..8] == PREFACE,
        "server did not start with its preface: {bytes:?}"
    );
    let mut rest = &bytes[8..];
    let mut out = Vec::new();
    while rest.len() >= 12 {
        let length = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = rest[4];
        let call_id = u32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if rest.len() < 12 + length {
            break;
        }
        out.push(ServerFrame {
            kind,
            call_id,
            body: rest[12..12 + length].to_vec(),
        });
        rest = &rest[12 + length..];
    }
    out
}

/// The GOAWAY among `frames`, as (code, message).
fn goaway(frames: &[ServerFrame]) -> Option<(u32, String)> {
    frames.iter().find(|f| f.kind == GOAWAY).map(|f| {
        let b = &f.body;
        assert!(b.len() >= 10, "short GOAWAY body {b:?}");
        let code = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let len = usize::from(u16::from_be_bytes([b[8], b[9]]));
        (code, String::from_utf8_lossy(&b[10..10 + len]).into_owned())
    })
}

/// How a connection ended.
#[derive(Debug)]
enum Closed {
    /// Orderly close (read returned 0).
    Eof,
    /// The connection failed, e.g. reset because the server closed with our bytes unread.
    Error,
}

/// Reads until the server closes the connection; fails the test if that takes longer than
/// [`BOUND`] or the server sends more than 1 MiB.
async fn read_until_closed(stream: &mut TcpStream, what: &str) -> (Vec<u8>, Closed) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let outcome = tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Closed::Eof,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    assert!(got.len() < 1 << 20, "{what}: server sent over 1 MiB");
                }
                Err(_) => return Closed::Error,
            }
        }
    })
    .await;
    match outcome {
        Ok(closed) => (got, closed),
        Err(_) => panic!(
            "{what}: server did not close the connection within {BOUND:?} (it sent {:?})",
            server_frames(&got)
        ),
    }
}

/// Reads whatever arrives for `period`, asserting the connection stays open meanwhile.
async fn read_while_open(stream: &mut TcpStream, period: Duration, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + period;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return got,
            Ok(Ok(0)) => panic!("{what}: server closed the connection early"),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(err)) => panic!("{what}: connection failed early: {err}"),
        }
    }
}

/// One bad input, the substring its GOAWAY reason must contain (when the server is expected to
/// have read all of it, so the reason is not lost to a reset).
struct Case {
    name: String,
    bytes: Vec<u8>,
    reason: Option<&'static str>,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, reason: Option<&'static str>) -> Case {
    Case {
        name: name.into(),
        bytes,
        reason,
    }
}

/// Sends `case` on a fresh connection and checks the server closes it in time with its reason.
async fn expect_closed(addr: SocketAddr, case: &Case) {
    let name = &case.name;
    let mut stream = tokio::time::timeout(BOUND, TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("{name}: connect timed out"))
        .unwrap_or_else(|err| panic!("{name}: connect failed: {err}"));
    // The server may close before reading everything; a failed write is then expected.
    let _ = stream.write_all(&case.bytes).await;
    let (got, closed) = read_until_closed(&mut stream, name).await;
    if let Some(reason) = case.reason {
        assert!(
            matches!(closed, Closed::Eof),
            "{name}: expected an orderly close, got {closed:?}"
        );
        let frames = server_frames(&got);
        let (code, message) =
            goaway(&frames).unwrap_or_else(|| panic!("{name}: no GOAWAY before close: {frames:?}"));
        assert_eq!(code, INTERNAL, "{name}: GOAWAY code ({message})");
        assert!(
            message.contains(reason),
            "{name}: GOAWAY reason {message:?} lacks {reason:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The server under attack, and the well-behaved client that must not notice.

/// Panics on tokio worker threads (where the server's connection tasks and handlers run) since
/// the binary started; every test asserts it stays 0. Assertion failures in the tests themselves
/// happen on the test threads and are not counted.
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
    });
}

fn assert_no_worker_panics() {
    assert_eq!(
        WORKER_PANICS.load(Ordering::SeqCst),
        0,
        "a server task panicked (see stderr)"
    );
}

#[derive(Default)]
struct EchoImpl {
    /// Notified when a `Sleep` handler starts.
    sleeping: Arc<Notify>,
}

impl Echo for EchoImpl {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeping.notify_one();
        let millis = request.into_inner().millis.min(60_000);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        let code = u32::try_from(request.code).unwrap_or(2);
        Err(Status::new(Code::from_u32(code), request.message))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(1 << 20) as usize;
        Ok(Response::new(EchoReply {
            payload: vec![0; size].into(),
            id: 0,
        }))
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
        assert_no_worker_panics();
    }
}

fn start_echo(service: EchoImpl) -> Running {
    count_worker_panics();
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(
        sockrpc::Server::builder()
            .add_service(EchoServer::new(service))
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// One echo call on a fresh connection, checked.
async fn fresh_call(addr: SocketAddr, id: u64) {
    let mut client = bounded("connect", EchoClient::connect(format!("tcp://{addr}")))
        .await
        .expect("a well-behaved client connects");
    let payload = format!("fresh {id}").into_bytes();
    let reply = bounded(
        "echo",
        client.echo(EchoRequest {
            payload: payload.clone().into(),
            id,
        }),
    )
    .await
    .expect("a well-behaved call succeeds")
    .into_inner();
    assert_eq!(reply.id, id);
    assert_eq!(&reply.payload[..], &payload[..]);
}

/// A generated client calling in a loop on one connection while the attack runs.
struct Witness {
    stop: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    task: JoinHandle<Result<u64, String>>,
}

impl Witness {
    async fn start(addr: SocketAddr) -> Witness {
        let mut client = bounded("witness connect", EchoClient::connect(addr.to_string()))
            .await
            .expect("witness connects");
        let stop = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let (stop2, calls2) = (Arc::clone(&stop), Arc::clone(&calls));
        let task = tokio::spawn(async move {
            let mut done = 0u64;
            // Bounded: at most 20,000 calls (about a minute at the pace below).
            for i in 0..20_000u64 {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let payload = xorshift_bytes(i + 1, (i % 512) as usize);
                let reply = tokio::time::timeout(
                    BOUND,
                    client.echo(EchoRequest {
                        payload: payload.clone().into(),
                        id: i,
                    }),
                )
                .await
                .map_err(|_| format!("witness call {i} hung"))?
                .map_err(|status| format!("witness call {i} failed: {status:?}"))?
                .into_inner();
                if reply.id != i || reply.payload[..] != payload[..] {
                    return Err(format!("witness call {i}: wrong reply"));
                }
                done += 1;
                calls2.store(done, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(done)
        });
        // "Before": the witness has succeeded at least once before the attack starts.
        bounded("witness first call", async {
            while calls.load(Ordering::SeqCst) == 0 && !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        Witness { stop, calls, task }
    }

    /// Waits until the witness made a few more calls after the attack, then stops it.
    async fn finish(self) {
        let seen = self.calls.load(Ordering::SeqCst);
        bounded("witness progress after the attack", async {
            while self.calls.load(Ordering::SeqCst) < seen + 3 && !self.task.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        self.stop.store(true, Ordering::SeqCst);
        let done = bounded("witness stop", self.task)
            .await
            .expect("witness task did not panic")
            .expect("the well-behaved client kept succeeding");
        assert!(done > seen, "witness made no calls after the attack");
    }
}

/// Runs `cases` against a fresh server with a witness before, during and after.
async fn attack(cases: Vec<Case>) {
    let server = start_echo(EchoImpl::default());
    fresh_call(server.addr, 1).await;
    let witness = Witness::start(server.addr).await;
    for case in &cases {
        expect_closed(server.addr, case).await;
    }
    witness.finish().await;
    fresh_call(server.addr, 2).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Must show 5: bad input.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_well_formed_call_is_answered_positive_control() {
    // Proves the raw encoder above speaks the protocol, so the hostile cases fail for their
    // intended reason: a hand-made OPEN + MESSAGE gets MESSAGE + END(OK) and the connection
    // stays open until we close our side.
    let server = start_echo(EchoImpl::default());
    let mut stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let request = concat(&[
        PREFACE,
        &open(
            1,
            ECHO_PATH,
            &[(b"x-Trace", b"abc"), (b"k-bin", b"\xff\x00")],
        ),
        &echo_message(1, 77, b"raw"),
    ]);
    stream.write_all(&request).await.expect("write");
    let got = read_while_open(&mut stream, Duration::from_millis(300), "control").await;
    let frames = server_frames(&got);
    let message = frames
        .iter()
        .find(|f| f.kind == MESSAGE && f.call_id == 1)
        .unwrap_or_else(|| panic!("no MESSAGE for call 1: {frames:?}"));
    let reply = EchoReply::decode(&message.body[..]).expect("reply decodes");
    assert_eq!((reply.id, &reply.payload[..]), (77, &b"raw"[..]));
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == 1)
        .unwrap_or_else(|| panic!("no END for call 1: {frames:?}"));
    assert_eq!(&end.body[..4], &0u32.to_be_bytes(), "END code is OK");
    stream.shutdown().await.expect("half-close");
    let (_, closed) = read_until_closed(&mut stream, "control after FIN").await;
    assert!(matches!(closed, Closed::Eof), "{closed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_length_prefixes_are_refused_from_four_bytes() {
    let max = 0xFFFF_FFFFu32.to_be_bytes();
    attack(vec![
        case(
            "0xFFFFFFFF after the preface",
            concat(&[PREFACE, &max]),
            Some("4294967295"),
        ),
        case(
            "0xFFFFFFFF header after the preface",
            concat(&[PREFACE, &header(u32::MAX, MESSAGE, 0, 0, 1)]),
            Some("4294967295"),
        ),
        case(
            "0xFFFFFFFF without a preface",
            header(u32::MAX, MESSAGE, 0, 0, 1),
            Some("bad preface"),
        ),
        case(
            "MESSAGE one byte over the skip limit",
            concat(&[PREFACE, &header(64 * 1024 * 1024 + 1, MESSAGE, 0, 0, 1)]),
            Some("exceeds the limit"),
        ),
        case(
            "OPEN over the control-frame limit",
            concat(&[PREFACE, &header(16 * 1024 + 64 * 1024 + 1, OPEN, 0, 0, 1)]),
            Some("exceeds the limit"),
        ),
        case(
            "PING with a 9-byte body",
            concat(&[PREFACE, &header(9, PING, 0, 0, 0), &[0; 9]]),
            Some("exceeds the limit"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_close_the_connection() {
    let mut cases = Vec::new();
    for seed in 1..=8u64 {
        let noise = xorshift_bytes(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15), 4096);
        cases.push(case(format!("random seed {seed}"), noise.clone(), None));
        cases.push(case(
            format!("preface + random seed {seed}"),
            concat(&[PREFACE, &noise]),
            None,
        ));
    }
    attack(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_preface_or_version_is_refused() {
    attack(vec![
        case(
            "HTTP request line",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Some("bad preface"),
        ),
        case(
            "HTTP/2 client preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Some("bad preface"),
        ),
        case(
            "right magic, version 2",
            b"SOCKRPC\x02".to_vec(),
            Some("unsupported protocol version 2"),
        ),
        case(
            "right magic, version 0, then a frame",
            concat(&[b"SOCKRPC\x00", &open(1, ECHO_PATH, &[])]),
            Some("unsupported protocol version 0"),
        ),
        case(
            "lower-case magic",
            b"sockrpc\x01".to_vec(),
            Some("bad preface"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kinds_reserved_bits_and_bad_call_ids_are_refused() {
    attack(vec![
        case(
            "unknown kind 0x7f",
            concat(&[PREFACE, &header(0, 0x7f, 0, 0, 1)]),
            Some("unknown frame kind 0x7f"),
        ),
        case(
            "unknown kind 0x00",
            concat(&[PREFACE, &header(0, 0, 0, 0, 1)]),
            Some("unknown frame kind 0x00"),
        ),
        case(
            "unknown kind 0xff after a good call",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &echo_message(1, 1, b"x"),
                &header(4, 0xff, 0, 0, 3),
                b"abcd",
            ]),
            Some("unknown frame kind 0xff"),
        ),
        case(
            "reserved field set on PING",
            concat(&[PREFACE, &header(8, PING, 0, 0x0100, 0), &[0; 8]]),
            Some("reserved header field is 0x0100"),
        ),
        case(
            "reserved field set on OPEN",
            concat(&[PREFACE, &{
                let body = open_body(ECHO_PATH, &[]);
                let mut f = header(body.len() as u32, OPEN, 0, 1, 1);
                f.extend_from_slice(&body);
                f
            }]),
            Some("reserved header field is 0x0001"),
        ),
        case(
            "MESSAGE with call id 0",
            concat(&[PREFACE, &frame(MESSAGE, 0, 0, b"x")]),
            Some("wrong call id"),
        ),
        case(
            "PING with call id 5",
            concat(&[PREFACE, &frame(PING, 0, 5, &[0; 8])]),
            Some("wrong call id"),
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_open_frames_are_refused() {
    let mut cases = Vec::new();
    for path in [
        &b""[..],
        b"no-slash",
        b"/only-service",
        b"//Method",
        b"/svc.S/",
        b"/a/b/c",
        b"/sockrpc.test.Echo/\xff\xfe",
    ] {
        cases.push(case(
            format!("OPEN with path {:?}", String::from_utf8_lossy(path)),
            concat(&[PREFACE, &open(1, path, &[])]),
            Some("invalid method path"),
        ));
    }
    for (key, value) in [
        (&b"Bad Key"[..], &b"v"[..]),
        (b"", b"v"),
        (b"k\xff", b"v"),
        (b"caf\xc3\xa9", b"v"),
        (b"x:y", b"v"),
        (b"text", b"line\nbreak"),
        (b"text", b"\x00"),
    ] {
        cases.push(case(
            format!(
                "OPEN with metadata {:?}={:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            ),
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[(b"good", b"ok"), (key, value)]),
            ]),
            Some("invalid metadata key or value"),
        ));
    }
    cases.push(case(
        "OPEN body too short for its timeout",
        concat(&[PREFACE, &frame(OPEN, 0, 1, &[0, 0, 0])]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN path length past the body",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = 0u64.to_be_bytes().to_vec();
                b.extend_from_slice(&500u16.to_be_bytes());
                b.extend_from_slice(b"/a/b");
                b
            }),
        ]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN metadata count past the body",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = open_body(ECHO_PATH, &[]);
                let n = b.len();
                b[n - 2..].copy_from_slice(&9u16.to_be_bytes());
                b
            }),
        ]),
        Some("body ends early"),
    ));
    cases.push(case(
        "OPEN with trailing bytes",
        concat(&[
            PREFACE,
            &frame(OPEN, 0, 1, &{
                let mut b = open_body(ECHO_PATH, &[]);
                b.push(0);
                b
            }),
        ]),
        Some("trailing bytes"),
    ));
    attack(cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_or_backwards_call_ids_are_refused() {
    attack(vec![
        case(
            "call id 1 reused after it completed",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &echo_message(1, 1, b"first"),
                &open(1, ECHO_PATH, &[]),
            ]),
            Some("call id 1 reused"),
        ),
        case(
            "call id 1 reused while open",
            concat(&[PREFACE, &open(1, ECHO_PATH, &[]), &open(1, ECHO_PATH, &[])]),
            Some("call id 1 reused"),
        ),
        case(
            "call ids going backwards",
            concat(&[PREFACE, &open(5, ECHO_PATH, &[]), &open(3, ECHO_PATH, &[])]),
            Some("out of order"),
        ),
    ])
    .await;

    // The call before the reuse was answered in full before the GOAWAY.
    let server = start_echo(EchoImpl::default());
    let mut stream = bounded("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    stream
        .write_all(&concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 9, b"first"),
            &open(1, ECHO_PATH, &[]),
        ]))
        .await
        .expect("write");
    let (got, _) = read_until_closed(&mut stream, "reuse").await;
    let frames = server_frames(&got);
    let kinds: Vec<(u8, u32)> = frames.iter().map(|f| (f.kind, f.call_id)).collect();
    assert_eq!(
        kinds,
        vec![(MESSAGE, 1), (END, 1), (GOAWAY, 0)],
        "{frames:?}"
    );
    assert_eq!(&frames[2].body[..4], &1u32.to_be_bytes(), "last_call_id");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_frames_wait_then_close_after_the_clients_fin() {
    let server = start_echo(EchoImpl::default());
    fresh_call(server.addr, 1).await;
    let witness = Witness::start(server.addr).await;
    let cuts: Vec<(&str, Vec<u8>)> = vec![
        ("preface cut", b"SOCK".to_vec()),
        (
            "header cut",
            concat(&[PREFACE, &header(10, OPEN, 0, 0, 1)[..6]]),
        ),
        ("OPEN body cut", {
            let f = open(1, ECHO_PATH, &[(b"k", b"v")]);
            concat(&[PREFACE, &f[..f.len() - 5]])
        }),
        ("MESSAGE body cut", {
            let m = echo_message(1, 1, &[7; 1000]);
            concat(&[PREFACE, &open(1, ECHO_PATH, &[]), &m[..500]])
        }),
        (
            "MESSAGE announced at 4 MiB, 1 KiB sent",
            concat(&[
                PREFACE,
                &open(1, ECHO_PATH, &[]),
                &header(4 << 20, MESSAGE, END_STREAM, 0, 1),
                &[1; 1024],
            ]),
        ),
    ];
    for (name, bytes) in cuts {
        let mut stream = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        stream.write_all(&bytes).await.expect("write");
        // Partial input is not an error: the server waits for the rest...
        let got = read_while_open(&mut stream, Duration::from_millis(200), name).await;
        assert!(
            server_frames(&got).is_empty(),
            "{name}: server answered a partial frame"
        );
        // ...and closes once the client half-closes.
        stream.shutdown().await.expect("half-close");
        let (got, closed) = read_until_closed(&mut stream, name).await;
        assert!(matches!(closed, Closed::Eof), "{name}: {closed:?}");
        assert!(
            server_frames(&got).iter().all(|f| f.kind == GOAWAY),
            "{name}: server sent a call frame after FIN"
        );
    }
    witness.finish().await;
    fresh_call(server.addr, 2).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Nothing large allocated. Measured on a server in a child process (this same test binary,
// re-run with CHILD_ENV set), so the parallel tests of this binary cannot disturb the numbers,
// and measured as both resident (RSS) and virtual size: an untouched `reserve` of what a peer
// announced shows only in the latter.

const CHILD_ENV: &str = "SOCKRPC_HOSTILE_CHILD_SERVER";
const MIB: u64 = 1024 * 1024;

/// The child: an echo server on a current-thread runtime (no extra threads, so no allocator
/// arenas appear mid-measurement), printing its address, exiting when its parent is gone or after
/// two minutes. A panic anywhere aborts it, which the parent notices.
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
            "SOCKRPC_CHILD_ADDR={}",
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
        let _ = sockrpc::Server::builder()
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, orphaned)
            .await;
    });
    std::process::exit(0);
}

fn parent_pid() -> Option<u32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// (VmRSS, VmSize) of `pid` in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmSize:"))
}

struct Child {
    process: std::process::Child,
    addr: SocketAddr,
}

impl Child {
    /// Starts this binary's `test` as the child server.
    fn spawn(test: &str) -> Child {
        use std::io::BufRead;
        let exe = std::env::current_exe().expect("current exe");
        let mut process = std::process::Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn child server");
        let stdout = process.stdout.take().expect("child stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some((_, addr)) = line.split_once("SOCKRPC_CHILD_ADDR=") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.to_owned());
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("child server printed its address")
            .parse()
            .expect("child address parses");
        Child { process, addr }
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Checks the child is still running (it aborts on panic), then ends it.
    fn finish(mut self) {
        let status = self.process.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "child server exited ({status:?}): it panicked or crashed"
        );
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn parent_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Warms the child up (connections, calls, buffers), lets it settle, and reads its memory.
async fn warm_baseline(child: &Child) -> (u64, u64) {
    for i in 0..20 {
        fresh_call(child.addr, i).await;
        let mut raw = TcpStream::connect(child.addr).await.expect("connect");
        raw.write_all(&concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &header(1 << 20, MESSAGE, END_STREAM, 0, 1),
            &[0; 1024],
        ]))
        .await
        .expect("write");
        drop(raw);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    memory_of(child.pid())
}

fn assert_growth(what: &str, before: (u64, u64), after: (u64, u64), rss: u64, virt: u64) {
    let grew_rss = after.0.saturating_sub(before.0);
    let grew_virt = after.1.saturating_sub(before.1);
    eprintln!(
        "{what}: RSS {} -> {} MiB, VmSize {} -> {} MiB",
        before.0 / MIB,
        after.0 / MIB,
        before.1 / MIB,
        after.1 / MIB
    );
    assert!(
        grew_rss < rss,
        "{what}: server RSS grew by {} MiB (bound {} MiB)",
        grew_rss / MIB,
        rss / MIB
    );
    assert!(
        grew_virt < virt,
        "{what}: server virtual size grew by {} MiB (bound {} MiB)",
        grew_virt / MIB,
        virt / MIB
    );
}

#[test]
fn announced_60_mib_message_is_never_allocated() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = Child::spawn("announced_60_mib_message_is_never_allocated");
    parent_runtime().block_on(async {
        let before = warm_baseline(&child).await;
        let witness = Witness::start(child.addr).await;
        // 60 MiB is under the skip limit (4 MiB x SKIP_FACTOR 16), so the connection stays
        // open waiting for a body that never comes; 256 KiB of it arrive, to be skipped.
        let mut streams = Vec::new();
        for call_id in [1u32, 3] {
            let mut stream = TcpStream::connect(child.addr).await.expect("connect");
            stream
                .write_all(&concat(&[
                    PREFACE,
                    &open(call_id, ECHO_PATH, &[]),
                    &header(60 << 20, MESSAGE, END_STREAM, 0, call_id),
                    &vec![0xAB; 256 * 1024],
                ]))
                .await
                .expect("write");
            streams.push(stream);
        }
        for (i, stream) in streams.iter_mut().enumerate() {
            let got = read_while_open(stream, Duration::from_millis(300), "60 MiB").await;
            assert!(server_frames(&got).is_empty(), "stream {i}: early answer");
        }
        fresh_call(child.addr, 100).await;
        let after = memory_of(child.pid());
        assert_growth(
            "two 60 MiB announcements",
            before,
            after,
            32 * MIB,
            32 * MIB,
        );
        witness.finish().await;
        drop(streams);
        fresh_call(child.addr, 101).await;
    });
    child.finish();
}

#[test]
fn many_connections_announcing_4_mib_stay_bounded() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_server();
    }
    let child = Child::spawn("many_connections_announcing_4_mib_stay_bounded");
    parent_runtime().block_on(async {
        let before = warm_baseline(&child).await;
        let witness = Witness::start(child.addr).await;
        let mut streams = Vec::new();
        for call_id in 1..=200u32 {
            let mut stream = bounded("connect", TcpStream::connect(child.addr))
                .await
                .expect("connect");
            stream
                .write_all(&concat(&[
                    PREFACE,
                    &open(call_id, ECHO_PATH, &[]),
                    // Exactly the message limit: buffered, not skipped, if it ever arrived.
                    &header(4 << 20, MESSAGE, END_STREAM, 0, call_id),
                ]))
                .await
                .expect("write");
            streams.push(stream);
        }
        // Every one of them is still open (the server waits) and the server still serves.
        let last = streams.last_mut().expect("streams");
        let got = read_while_open(last, Duration::from_millis(300), "4 MiB x 200").await;
        assert!(server_frames(&got).is_empty(), "early answer");
        fresh_call(child.addr, 200).await;
        let after = memory_of(child.pid());
        // 200 x 4 MiB = 800 MiB if the announcements were believed.
        assert_growth(
            "200 x 4 MiB announcements",
            before,
            after,
            32 * MIB,
            64 * MIB,
        );
        witness.finish().await;
        drop(streams);
        fresh_call(child.addr, 201).await;
    });
    child.finish();
}

// ---------------------------------------------------------------------------------------------
// Must show 6: the server is gone.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_unavailable() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    };
    let err = bounded(
        "connect to a closed port",
        EchoClient::connect(format!("127.0.0.1:{port}")),
    )
    .await
    .expect_err("nothing listens there");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_between_calls_is_unavailable() {
    let server = start_echo(EchoImpl::default());
    let addr = server.addr;
    let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
        .await
        .expect("connect");
    bounded("echo", client.echo(EchoRequest::default()))
        .await
        .expect("first call");
    server.stop().await;
    for _ in 0..2 {
        let err = bounded("echo after stop", client.echo(EchoRequest::default()))
            .await
            .expect_err("server is gone");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
}

/// A fake server that accepts, reads the whole request (OPEN + MESSAGE), then does `then`.
async fn fake_server(send_preface: bool, tail: &'static [u8]) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let Ok(Ok((mut stream, _))) = tokio::time::timeout(BOUND, listener.accept()).await else {
            return;
        };
        if send_preface {
            let _ = stream.write_all(PREFACE).await;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the preface and two whole frames are in (bounded in bytes and time).
        let _ = tokio::time::timeout(BOUND, async {
            while got.len() < 1 << 20 {
                let frames = server_frames(&got);
                if frames.len() >= 2 {
                    break;
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        let _ = stream.write_all(tail).await;
        drop(stream);
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dropping_the_socket_mid_call_is_unavailable() {
    let partial_end: &'static [u8] = &[0, 0, 0, 20, END, 0, 0, 0, 0, 0, 0, 1, 0, 0];
    for (preface, tail, name) in [
        (true, &b""[..], "preface, then drop"),
        (false, &b""[..], "no preface, drop"),
        (true, partial_end, "preface, half an END, drop"),
    ] {
        let (addr, task) = fake_server(preface, tail).await;
        let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
            .await
            .expect("connect to the fake server");
        let err = bounded(name, client.echo(EchoRequest::default()))
            .await
            .expect_err("the server dropped the call");
        assert_eq!(err.code(), Code::Unavailable, "{name}: {err:?}");
        bounded("fake server", task).await.expect("fake server");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_task_aborted_mid_call_is_unavailable() {
    let service = EchoImpl::default();
    let sleeping = Arc::clone(&service.sleeping);
    let server = start_echo(service);
    let mut client = bounded("connect", EchoClient::connect(server.addr.to_string()))
        .await
        .expect("connect");
    let call = tokio::spawn(async move {
        client
            .sleep(SleepRequest {
                millis: 30_000,
                token: "killed".into(),
            })
            .await
    });
    bounded("handler start", sleeping.notified()).await;
    // "Kill" the server: drop its accept loop and everything it owns, mid-call.
    server.task.abort();
    let result = tokio::time::timeout(BOUND, call)
        .await
        .expect("the in-flight call must fail promptly once the server is gone, not hang")
        .expect("call task did not panic");
    let err = result.expect_err("the server died mid-call");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_no_worker_panics();
}

/// A peer that connects and never sends the preface (slowloris) loses its connection after the
/// handshake timeout; a well-behaved client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .handshake_timeout(Duration::from_millis(200))
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    // A partial preface does not count either.
    let mut partial = TcpStream::connect(addr).await.expect("connect");
    partial.write_all(b"SOCK").await.expect("write");
    let mut client = bounded("connect", EchoClient::connect(addr.to_string()))
        .await
        .expect("connect");
    for stream in [&mut silent, &mut partial] {
        let mut buf = vec![0u8; 1024];
        let closed = tokio::time::timeout(BOUND, async {
            loop {
                match stream.read(&mut buf).await {
                    // The server's own preface arrives first; then the close.
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a silent connection was kept open");
    }
    // The well-behaved client, connected before the timeout, is still served after it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bounded("echo", client.echo(EchoRequest::default()))
        .await
        .expect("served");
    server.abort();
}
