//! A unary request folded into its OPEN (`FLAG_MESSAGE`, docs/PROTOCOL.md): the server says it
//! reads one (SETTINGS right after its preface), reads it like OPEN then MESSAGE, bounds it like
//! one, and refuses it where it makes no sense; the client folds only toward a server that said
//! so, and only messages up to `MAX_FOLDED_MESSAGE`.

use crate::raw::{
    concat, frame, open_body, read_while_open, server_frames, ServerFrame, ECHO_PATH, END,
    END_STREAM, MESSAGE, OPEN, PREFACE, SETTINGS, WINDOW,
};
use crate::support::{bounded, start_echo, EchoImpl, BOUND};
use prost::Message as _;
use sockrpc::protocol::frame::MAX_FOLDED_MESSAGE;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// OPEN's flags for a folded request (docs/PROTOCOL.md, *Flags*).
const FOLD_END: u8 = 0x10;
const FLAG_MESSAGE: u8 = 0x20;
const STREAM: u8 = 0x02;
const END_OK: u8 = 0x10;
const RESOURCE_EXHAUSTED: u32 = 8;

/// A folded OPEN for call `call_id` carrying an `EchoRequest` with `id` and `payload`.
fn folded_echo(call_id: u32, flags: u8, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = open_body(ECHO_PATH, &[]);
    let request = EchoRequest {
        payload: payload.to_vec().into(),
        id,
    };
    body.extend_from_slice(&request.encode_to_vec());
    frame(OPEN, flags, call_id, &body)
}

/// Writes `bytes` on a fresh connection; returns everything the server sent in 300 ms.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write");
    read_while_open(&mut stream, Duration::from_millis(300), "folded").await
}

fn end_code(frame: &ServerFrame) -> u32 {
    assert_eq!(frame.kind, END, "not an END: {frame:?}");
    u32::from_be_bytes(frame.body[..4].try_into().expect("4 bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_announces_folded_requests_right_after_its_preface() {
    let server = start_echo(EchoImpl::default());
    let got = exchange(server.addr, PREFACE).await;
    // PREFACE, then WINDOW(call 0, SETTINGS) whose u32 has CAP_FOLDED_REQUEST (bit 0).
    assert!(got.len() >= 8 + 16, "{got:?}");
    assert_eq!(&got[..8], PREFACE);
    assert_eq!(
        &got[8..20],
        &[0, 0, 0, 4, WINDOW, SETTINGS, 0, 0, 0, 0, 0, 0]
    );
    let word = u32::from_be_bytes(got[20..24].try_into().expect("4 bytes"));
    assert_eq!(word & 1, 1, "CAP_FOLDED_REQUEST: {word:#x}");
    // The high 16 bits: the server's limit of calls in flight per connection (default 4,096).
    assert_eq!(word >> 16, 4096, "max calls: {word:#x}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_request_is_answered_like_open_then_message() {
    let server = start_echo(EchoImpl::default());
    let flags = FLAG_MESSAGE | END_STREAM | FOLD_END;
    let got = exchange(
        server.addr,
        &concat(&[
            PREFACE,
            &folded_echo(1, flags, 11, b"one frame"),
            // An empty request message folds too: its body ends with the metadata block.
            &folded_echo(3, flags, 0, b""),
        ]),
    )
    .await;
    let frames = server_frames(&got);
    for (call_id, id, payload) in [(1, 11, &b"one frame"[..]), (3, 0, &b""[..])] {
        let answer: Vec<&ServerFrame> = frames.iter().filter(|f| f.call_id == call_id).collect();
        assert_eq!(answer.len(), 1, "call {call_id}: {frames:?}");
        assert_eq!(
            (answer[0].kind, answer[0].flags),
            (MESSAGE, END_STREAM | END_OK)
        );
        let reply = EchoReply::decode(&answer[0].body[..]).expect("reply");
        assert_eq!((reply.id, &reply.payload[..]), (id, payload));
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_request_over_the_servers_message_limit_fails_only_its_call() {
    let server = sockrpc_tests::serve::Running::start(
        sockrpc::Server::builder()
            .max_decoding_message_size(1024)
            .add_service(EchoServer::new(EchoImpl::default())),
    );
    let flags = FLAG_MESSAGE | END_STREAM | FOLD_END;
    let got = exchange(
        server.addr,
        &concat(&[
            PREFACE,
            &folded_echo(1, flags, 1, &[7; 2048]),
            &folded_echo(3, flags, 2, b"small"),
        ]),
    )
    .await;
    let frames = server_frames(&got);
    let first: Vec<&ServerFrame> = frames.iter().filter(|f| f.call_id == 1).collect();
    assert_eq!(first.len(), 1, "{frames:?}");
    assert_eq!(end_code(first[0]), RESOURCE_EXHAUSTED);
    // The connection lives on: the next call on it is answered.
    let second: Vec<&ServerFrame> = frames.iter().filter(|f| f.call_id == 3).collect();
    assert_eq!(second.len(), 1, "{frames:?}");
    assert_eq!(second[0].kind, MESSAGE);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folded_message_on_a_streaming_or_open_ended_call_closes_the_connection() {
    let server = start_echo(EchoImpl::default());
    for flags in [FLAG_MESSAGE | FOLD_END, FLAG_MESSAGE | END_STREAM | STREAM] {
        let mut stream = bounded("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        let bytes = concat(&[PREFACE, &folded_echo(1, flags, 1, b"x")]);
        stream.write_all(&bytes).await.expect("write");
        let (got, _) = crate::raw::read_until_closed(&mut stream, "malformed fold").await;
        let frames = server_frames(&got);
        let (_, reason) = crate::raw::goaway(&frames).expect("a GOAWAY");
        assert!(
            reason.contains("folded request message"),
            "flags {flags:#04x}: {reason}"
        );
        assert!(frames.iter().all(|f| f.call_id == 0), "{frames:?}");
    }
    server.stop().await;
}

/// What a proxy saw the client send: (kind, flags, call id) of each frame.
type Sent = Arc<Mutex<Vec<(u8, u8, u32)>>>;

/// A proxy in front of `upstream` that records the client's frames and, when `strip_settings`,
/// drops the server's SETTINGS: to the client it is then a server of the first version 1.
async fn recording_proxy(upstream: SocketAddr, strip_settings: bool) -> (SocketAddr, Sent) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let sent = Sent::default();
    let record = Arc::clone(&sent);
    tokio::spawn(async move {
        let Ok(Ok((client, _))) = tokio::time::timeout(BOUND, listener.accept()).await else {
            return;
        };
        let server = TcpStream::connect(upstream).await.expect("upstream");
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let up = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = client_read.read(&mut chunk).await {
                seen.extend_from_slice(&chunk[..n]);
                *record.lock().expect("lock") = frames_of(&seen);
                if server_write.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
            }
        });
        // The server's side, forwarded frame by frame so SETTINGS can be left out.
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut preface_done = false;
        while let Ok(n @ 1..) = server_read.read(&mut chunk).await {
            buf.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            if !preface_done && buf.len() >= 8 {
                out.extend(buf.drain(..8));
                preface_done = true;
            }
            while preface_done && buf.len() >= 12 {
                let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
                if buf.len() < 12 + len {
                    break;
                }
                let frame: Vec<u8> = buf.drain(..12 + len).collect();
                let settings = frame[4] == WINDOW && frame[5] & SETTINGS != 0;
                if !(strip_settings && settings) {
                    out.extend(frame);
                }
            }
            if client_write.write_all(&out).await.is_err() {
                break;
            }
        }
        up.abort();
    });
    (addr, sent)
}

/// (kind, flags, call id) of each whole frame after the client's preface.
fn frames_of(bytes: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut rest = bytes.get(8..).unwrap_or_default();
    let mut out = Vec::new();
    while rest.len() >= 12 {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        if rest.len() < 12 + len {
            break;
        }
        out.push((
            rest[4],
            rest[5],
            u32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")),
        ));
        rest = &rest[12 + len..];
    }
    out
}

/// Makes four calls on one connection through a proxy (the last with a message one byte over
/// `MAX_FOLDED_MESSAGE`); returns each call's frames as the server got them, by call id order.
async fn calls_through(strip_settings: bool) -> Vec<Vec<(u8, u8)>> {
    let server = start_echo(EchoImpl::default());
    let (proxy, sent) = recording_proxy(server.addr, strip_settings).await;
    let mut client = bounded("connect", EchoClient::connect(format!("tcp://{proxy}")))
        .await
        .expect("connect");
    let big = vec![9u8; MAX_FOLDED_MESSAGE + 1];
    for (id, payload) in [(1, &b"a"[..]), (2, b"b"), (3, b"c"), (4, &big[..])] {
        let reply = bounded(
            "echo",
            client.echo(EchoRequest {
                payload: payload.to_vec().into(),
                id,
            }),
        )
        .await
        .expect("echo")
        .into_inner();
        assert_eq!((reply.id, &reply.payload[..]), (id, payload));
    }
    // The calls' frames: not the client's SETTINGS (call 0).
    let frames: Vec<_> = sent
        .lock()
        .expect("lock")
        .iter()
        .filter(|f| f.2 != 0)
        .cloned()
        .collect();
    let mut ids: Vec<u32> = frames.iter().map(|f| f.2).collect();
    ids.dedup();
    assert_eq!(ids.len(), 4, "{frames:?}");
    server.stop().await;
    ids.iter()
        .map(|id| {
            let of_call = frames.iter().filter(|f| f.2 == *id);
            of_call.map(|&(kind, flags, _)| (kind, flags)).collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_folds_once_the_server_said_it_reads_folded_requests() {
    let calls = calls_through(false).await;
    // The first call may leave with the preface, before the server's SETTINGS arrived; the next
    // ones are one OPEN each.
    for call in &calls[1..3] {
        assert_eq!(call.len(), 1, "{calls:?}");
        assert_eq!(call[0].0, OPEN);
        assert_eq!(
            call[0].1 & (FLAG_MESSAGE | END_STREAM),
            FLAG_MESSAGE | END_STREAM
        );
    }
    // Past MAX_FOLDED_MESSAGE the message goes in a MESSAGE of its own.
    let last = &calls[3];
    assert_eq!(last.len(), 2, "{calls:?}");
    assert_eq!((last[0].0, last[0].1 & FLAG_MESSAGE), (OPEN, 0));
    assert_eq!(last[1], (MESSAGE, END_STREAM));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_never_folds_toward_a_server_that_sent_no_settings() {
    for call in calls_through(true).await {
        assert_eq!(call.len(), 2, "{call:?}");
        assert_eq!((call[0].0, call[0].1 & FLAG_MESSAGE), (OPEN, 0));
        assert_eq!(call[1], (MESSAGE, END_STREAM));
    }
}
