//! A hostile *server* attacking a real generated client: answers for calls the client never
//! opened, lengths past every limit, repeated or enormous metadata, unary calls answered twice
//! or never ended, status codes out of range, absurd SETTINGS, and peers that are not sockrpc
//! servers at all. Users call servers they do not control: whatever a server sends, a call must
//! end by its deadline with a sane status, the client must not panic, and its memory must stay
//! bounded. The fake servers here write frames by hand (`raw.rs`); `server_probe_io.rs` has the
//! attacks on the connection itself (dripping, never reading, PING floods, reconnect storms,
//! UDP).

use crate::raw::{block, frame, header, GOAWAY, MESSAGE, PREFACE, SETTINGS, WINDOW};
use crate::support::{bounded, BOUND};
use sockrpc::{Code, Request, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) const HEADERS: u8 = 2;
pub(crate) const END: u8 = 4;
pub(crate) const PING: u8 = 6;
pub(crate) const PONG: u8 = 7;
/// MESSAGE flags of a whole OK answer: END_STREAM | END_OK.
pub(crate) const ANSWER: u8 = 0x11;
pub(crate) const MIB: u64 = 1 << 20;

/// What a fake server answers a call with, given the call's id.
pub(crate) type Reply = fn(u32) -> Vec<u8>;

/// A frame the client sent: (kind, flags, call id, body).
pub(crate) type ClientFrame = (u8, u8, u32, Vec<u8>);

/// Reads the client's next frame (its preface first, skipped), within [`BOUND`]; `None` when
/// the client closed, failed or took too long. `buf` keeps what was read past the frame.
pub(crate) async fn next_frame(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<ClientFrame> {
    let mut chunk = [0u8; 16 * 1024];
    tokio::time::timeout(BOUND, async {
        loop {
            if buf.len() >= 8 && buf[..8] == PREFACE[..] {
                buf.drain(..8);
            }
            if buf.len() >= 12 && !buf.starts_with(b"SOCKRPC") {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if buf.len() >= 12 + len {
                    let id = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                    let found = (buf[4], buf[5], id, buf[12..12 + len].to_vec());
                    buf.drain(..12 + len);
                    return Some(found);
                }
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Reads until a call's request message (MESSAGE with END_STREAM): its call id and body.
pub(crate) async fn next_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(u32, Vec<u8>)> {
    loop {
        let (kind, flags, id, body) = next_frame(stream, buf).await?;
        if kind == MESSAGE && flags & 1 != 0 {
            return Some((id, body));
        }
    }
}

/// Reads `n` calls' requests and answers each with empty leading metadata (HEADERS): their
/// ids in the order they came, `None` once the client went.
pub(crate) async fn open_streams(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> Option<Vec<u32>> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let (id, _) = next_request(stream, buf).await?;
        stream
            .write_all(&frame(HEADERS, 0, id, &block(&[])))
            .await
            .ok()?;
        ids.push(id);
    }
    Some(ids)
}

/// Opens `n` `Produce` streams through `client` and waits for each one's head (HEADERS): the
/// answer streams, unread.
pub(crate) async fn produce_streams(
    client: &sockrpc_tests::stream::streamer_client::StreamerClient<sockrpc::Channel>,
    n: usize,
) -> Vec<sockrpc::Streaming<sockrpc_tests::stream::Chunk>> {
    let mut opened = Vec::with_capacity(n);
    for _ in 0..n {
        let response = bounded(
            "the answer's head",
            client
                .clone()
                .produce(sockrpc_tests::stream::ProduceRequest::default()),
        )
        .await
        .expect("the server answered with HEADERS");
        opened.push(response.into_inner());
    }
    opened
}

/// A fake server on 127.0.0.1: runs `script` on each connection it accepts (each bounded in
/// time), and counts them.
pub(crate) struct Fake {
    pub(crate) addr: SocketAddr,
    pub(crate) accepted: Arc<AtomicUsize>,
}

pub(crate) async fn fake_server<F, Fut>(script: F) -> Fake
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        // Bounded: 10,000 connections, 30 s.
        let _ = tokio::time::timeout(Duration::from_secs(30), async {
            for _ in 0..10_000 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let run = script(stream);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(BOUND * 3, run).await;
                });
            }
        })
        .await;
    });
    Fake { addr, accepted }
}

/// An END from the server: code, message, details, trailers (a metadata block).
pub(crate) fn end(
    call_id: u32,
    code: u32,
    message: &[u8],
    details: &[u8],
    trailers: &[u8],
) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    body.extend_from_slice(&(details.len() as u32).to_be_bytes());
    body.extend_from_slice(details);
    body.extend_from_slice(trailers);
    frame(END, 0, call_id, &body)
}

/// The server's SETTINGS: its call limit and capability bits.
pub(crate) fn settings(max_calls: u16, capabilities: u16) -> Vec<u8> {
    let mut body = max_calls.to_be_bytes().to_vec();
    body.extend_from_slice(&capabilities.to_be_bytes());
    frame(WINDOW, SETTINGS, 0, &body)
}

pub(crate) fn goaway(last_call_id: u32, code: u32, message: &[u8]) -> Vec<u8> {
    let mut body = last_call_id.to_be_bytes().to_vec();
    body.extend_from_slice(&code.to_be_bytes());
    body.extend_from_slice(&(message.len() as u16).to_be_bytes());
    body.extend_from_slice(message);
    frame(GOAWAY, 0, 0, &body)
}

/// This process's resident size now, in bytes.
pub(crate) fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// For a test that reads this process's peak memory: whether to run its body here (see
/// [`sockrpc_tests::child::alone`]: under `cargo test` the other tests of the binary would
/// swell the peak, so the test runs again in a process of its own and this returns false).
pub(crate) fn measured_alone(module_path: &str, test: &str) -> bool {
    let name = sockrpc_tests::child::test_name(module_path, test);
    sockrpc_tests::child::alone(&name, ", peak after ")
}

/// This process's peak resident size (VmHWM), in bytes: a brief spike counts too. A test that
/// reads it runs in a process of its own ([`measured_alone`]), so the peak is that test's.
pub(crate) fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

pub(crate) fn assert_grew_less(what: &str, before: u64, bound: u64) {
    let after = peak_rss();
    let grew = after.saturating_sub(before);
    eprintln!(
        "{what}: RSS {} MiB, peak after {} MiB",
        before / MIB,
        after / MIB
    );
    assert!(
        grew < bound,
        "{what}: the client's memory grew by {} MiB (bound {} MiB)",
        grew / MIB,
        bound / MIB
    );
}

pub(crate) async fn client(addr: SocketAddr) -> EchoClient<sockrpc::Channel> {
    bounded("connect", EchoClient::connect(format!("tcp://{addr}")))
        .await
        .expect("connect to the fake server")
}

/// A client that connects on its first call: toward a server that hangs up at once, an eager
/// connect fails with the server's reason before any call is made.
pub(crate) fn lazy_client(addr: SocketAddr) -> EchoClient<sockrpc::Channel> {
    EchoClient::new(sockrpc::Channel::lazy(format!("tcp://{addr}")).expect("endpoint"))
}

pub(crate) fn echo_request(id: u64, timeout: Duration) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        payload: format!("call {id}").into_bytes().into(),
        id,
    });
    request.set_timeout(timeout);
    request
}

/// One call with `timeout`: its outcome, and how long it took (within [`BOUND`]).
pub(crate) async fn call(
    client: &mut EchoClient<sockrpc::Channel>,
    id: u64,
    timeout: Duration,
) -> (Result<EchoReply, Status>, Duration) {
    let started = Instant::now();
    let result = bounded("the call", client.echo(echo_request(id, timeout))).await;
    (result.map(|r| r.into_inner()), started.elapsed())
}

/// The status of a call that must fail, with its code checked.
pub(crate) fn failed(what: &str, result: Result<EchoReply, Status>, code: Code) -> Status {
    let status = match result {
        Ok(reply) => panic!("{what}: expected {code:?}, got an answer {reply:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "{what}: {status:?}");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_for_calls_never_opened_or_already_ended_are_ignored() {
    if !measured_alone(
        module_path!(),
        "answers_for_calls_never_opened_or_already_ended_are_ignored",
    ) {
        return;
    }
    // 3,000 answers (HEADERS, a 16 KiB MESSAGE, END) for ids the client never opened, about
    // 50 MiB, before the real answer; then, on the next call, answers again for the first.
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let Some((first, body)) = next_request(&mut stream, &mut buf).await else {
            return;
        };
        let noise = vec![0x5a; 16 * 1024];
        for round in 0..30u32 {
            let mut flood = Vec::new();
            for i in 0..100u32 {
                let id = first + 1 + round * 100 + i;
                flood.extend_from_slice(&frame(HEADERS, 0, id, &block(&[(b"k", b"v")])));
                flood.extend_from_slice(&frame(MESSAGE, 1, id, &noise));
                flood.extend_from_slice(&end(id, 5, b"not yours", b"", &block(&[])));
            }
            if stream.write_all(&flood).await.is_err() {
                return;
            }
        }
        let _ = stream
            .write_all(&frame(MESSAGE, ANSWER, first, &body))
            .await;
        let Some((second, body)) = next_request(&mut stream, &mut buf).await else {
            return;
        };
        let mut again = frame(HEADERS, 0, first, &block(&[(b"late", b"1")]));
        again.extend_from_slice(&frame(MESSAGE, ANSWER, first, b"\x08\x07"));
        again.extend_from_slice(&end(first, 13, b"late end", b"", &block(&[])));
        again.extend_from_slice(&frame(MESSAGE, ANSWER, second, &body));
        let _ = stream.write_all(&again).await;
        // Keep the connection open while the client reads.
        tokio::time::sleep(BOUND).await;
    })
    .await;
    let mut client = client(fake.addr).await;
    let before = rss();
    let (first, _) = call(&mut client, 1, BOUND).await;
    assert_eq!(first.expect("the real call is answered").id, 1);
    let (second, _) = call(&mut client, 2, BOUND).await;
    assert_eq!(second.expect("the next call is answered").id, 2);
    assert_grew_less("answers for unknown calls", before, 32 * MIB);
}

/// A server that reads the first call, then sends `reply` (built from the call's id) and keeps
/// the connection open.
pub(crate) async fn answering(reply: Reply) -> Fake {
    fake_server(move |mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let Some((id, _)) = next_request(&mut stream, &mut buf).await else {
            return;
        };
        if stream.write_all(&reply(id)).await.is_err() {
            return;
        }
        // Read (and drop) what the client sends until it closes.
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lengths_past_the_clients_limits_close_the_connection_at_once() {
    if !measured_alone(
        module_path!(),
        "lengths_past_the_clients_limits_close_the_connection_at_once",
    ) {
        return;
    }
    let cases: [(&str, Reply); 5] = [
        ("MESSAGE of 4 GiB", |id| header(u32::MAX, MESSAGE, 0, 0, id)),
        ("MESSAGE past the skippable size", |id| {
            header(64 << 20 | 1, MESSAGE, 0, 0, id)
        }),
        // Shorter ones are skipped, failing their call alone (`control_limit.rs`).
        ("HEADERS past the skippable size", |id| {
            header(64 << 20 | 1, HEADERS, 0, 0, id)
        }),
        ("END past the skippable size", |id| {
            header(64 << 20 | 1, END, 0, 0, id)
        }),
        ("PING of 9 bytes", |_| header(9, PING, 0, 0, 0)),
    ];
    let before = rss();
    fail_at_once_as_protocol_errors(&cases).await;
    assert_grew_less("announced lengths", before, 16 * MIB);
}

/// Each of `cases` answers a call with what it names: the call fails `INTERNAL`, "protocol
/// error", at once (its deadline is far: the client must not wait for it).
pub(crate) async fn fail_at_once_as_protocol_errors(cases: &[(&str, Reply)]) {
    for &(name, reply) in cases {
        let fake = answering(reply).await;
        let mut client = client(fake.addr).await;
        let (result, took) = call(&mut client, 1, Duration::from_secs(30)).await;
        let status = failed(name, result, Code::Internal);
        assert!(
            status.message().contains("protocol error"),
            "{name}: {status:?}"
        );
        assert!(took < BOUND, "{name}: took {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_fails_only_its_call_unbuffered() {
    // 5 MiB (over the 4 MiB limit, under the skippable size): skipped as it arrives, the call
    // fails RESOURCE_EXHAUSTED, and the connection serves the next call.
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let Some((id, _)) = next_request(&mut stream, &mut buf).await else {
            return;
        };
        let mut big = header(5 << 20, MESSAGE, 1, 0, id);
        big.resize(big.len() + (5 << 20), 0);
        if stream.write_all(&big).await.is_err() {
            return;
        }
        let Some((id, body)) = next_request(&mut stream, &mut buf).await else {
            return;
        };
        let _ = stream.write_all(&frame(MESSAGE, ANSWER, id, &body)).await;
        while next_frame(&mut stream, &mut buf).await.is_some() {}
    })
    .await;
    let mut client = client(fake.addr).await;
    let (result, _) = call(&mut client, 1, BOUND).await;
    failed("5 MiB answer", result, Code::ResourceExhausted);
    let (result, _) = call(&mut client, 2, BOUND).await;
    assert_eq!(result.expect("the next call is answered").id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_unary_answers_end_with_a_sane_status() {
    let cases: [(&str, Reply, Code); 6] = [
        (
            "two messages, then END OK",
            |id| {
                [
                    frame(MESSAGE, 0, id, b""),
                    frame(MESSAGE, 1, id, b""),
                    end(id, 0, b"", b"", &block(&[])),
                ]
                .concat()
            },
            Code::Unimplemented,
        ),
        (
            "END OK without a message",
            |id| end(id, 0, b"", b"", &block(&[])),
            Code::Unimplemented,
        ),
        (
            "END code 99, long message and details",
            |id| end(id, 99, &[b'm'; 16 * 1024], &[b'd'; 32 * 1024], &block(&[])),
            Code::Unknown,
        ),
        (
            "END code u32::MAX",
            |id| end(id, u32::MAX, b"max", b"", &block(&[])),
            Code::Unknown,
        ),
        (
            "END body cut short",
            |id| frame(END, 0, id, &[0, 0, 0, 5, 0, 0, 0, 9, b'a']),
            Code::Internal,
        ),
        (
            "END message not UTF-8",
            |id| end(id, 5, &[0xff, 0xfe, 0xc0], b"", &block(&[])),
            Code::NotFound,
        ),
    ];
    for (name, reply, code) in cases {
        let fake = answering(reply).await;
        let mut client = client(fake.addr).await;
        let (result, took) = call(&mut client, 1, Duration::from_secs(30)).await;
        let status = failed(name, result, code);
        assert!(took < BOUND, "{name}: took {took:?}");
        eprintln!("{name}: {status:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_never_ended_fails_at_the_deadline() {
    let fake = answering(|id| frame(MESSAGE, 0, id, b"\x10\x01")).await;
    let mut client = client(fake.addr).await;
    let deadline = Duration::from_millis(300);
    let (result, took) = call(&mut client, 1, deadline).await;
    failed("a MESSAGE with no END", result, Code::DeadlineExceeded);
    assert!(took >= deadline, "ended early: {took:?}");
}
