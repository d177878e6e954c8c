//! Raw wire helpers, written from docs/PROTOCOL.md rather than with the framework's encoder, so
//! a bug there cannot hide one here.

use crate::support::BOUND;
use prost::Message as _;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) const PREFACE: &[u8; 8] = b"SOCKRPC\x01";
pub(crate) const OPEN: u8 = 1;
pub(crate) const MESSAGE: u8 = 3;
pub(crate) const END: u8 = 4;
pub(crate) const PING: u8 = 6;
pub(crate) const GOAWAY: u8 = 8;
pub(crate) const WINDOW: u8 = 9;
/// The WINDOW flag that makes a call-0 WINDOW the server's SETTINGS.
pub(crate) const SETTINGS: u8 = 0x20;
pub(crate) const END_STREAM: u8 = 1;
pub(crate) const ECHO_PATH: &[u8] = b"/sockrpc.test.Echo/Echo";
pub(crate) const INTERNAL: u32 = 13;

pub(crate) fn header(length: u32, kind: u8, flags: u8, reserved: u16, call_id: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&reserved.to_be_bytes());
    out.extend_from_slice(&call_id.to_be_bytes());
    out
}

pub(crate) fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = header(body.len() as u32, kind, flags, 0, call_id);
    out.extend_from_slice(body);
    out
}

/// An OPEN body: no deadline, `path`, then a metadata block of raw `(key, value)` pairs.
pub(crate) fn open_body(path: &[u8], metadata: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&(path.len() as u16).to_be_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&block(metadata));
    out
}

/// A metadata block of raw `(key, value)` entries: a count, then each key and value with its
/// length.
pub(crate) fn block(entries: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = (entries.len() as u16).to_be_bytes().to_vec();
    for (key, value) in entries {
        out.push(key.len() as u8);
        out.extend_from_slice(key);
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

pub(crate) fn open(call_id: u32, path: &[u8], metadata: &[(&[u8], &[u8])]) -> Vec<u8> {
    frame(OPEN, 0, call_id, &open_body(path, metadata))
}

/// `FLAG_MESSAGE | END_STREAM` on an OPEN: the request folded into it.
pub(crate) const FOLDED: u8 = 0x21;

/// An OPEN for `path`, no metadata, with `message` folded into it ([`FOLDED`]).
pub(crate) fn folded(call_id: u32, path: &[u8], message: &[u8]) -> Vec<u8> {
    let mut body = open_body(path, &[]);
    body.extend_from_slice(message);
    frame(OPEN, FOLDED, call_id, &body)
}

pub(crate) fn echo_message(call_id: u32, id: u64, payload: &[u8]) -> Vec<u8> {
    let body = EchoRequest {
        payload: payload.to_vec().into(),
        id,
    }
    .encode_to_vec();
    frame(MESSAGE, END_STREAM, call_id, &body)
}

pub(crate) fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// A fixed-seed xorshift64*, so "random" input is the same on every run.
pub(crate) fn xorshift_bytes(mut seed: u64, len: usize) -> Vec<u8> {
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
pub(crate) struct ServerFrame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) call_id: u32,
    pub(crate) body: Vec<u8>,
}

/// Splits what the server sent into its preface and frames, leaving out its SETTINGS; panics
/// on anything malformed.
pub(crate) fn server_frames(bytes: &[u8]) -> Vec<ServerFrame> {
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
        if kind == WINDOW && call_id == 0 && rest[5] & SETTINGS != 0 {
            // The server's SETTINGS after its preface: not an answer to anything.
            rest = &rest[12 + length..];
            continue;
        }
        out.push(ServerFrame {
            kind,
            flags: rest[5],
            call_id,
            body: rest[12..12 + length].to_vec(),
        });
        rest = &rest[12 + length..];
    }
    out
}

/// The GOAWAY among `frames`, as (code, message).
pub(crate) fn goaway(frames: &[ServerFrame]) -> Option<(u32, String)> {
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
pub(crate) enum Closed {
    /// Orderly close (read returned 0).
    Eof,
    /// The connection failed, e.g. reset because the server closed with our bytes unread.
    Error,
}

/// A raw connection to `addr`, within [`BOUND`].
pub(crate) async fn connect(addr: SocketAddr) -> TcpStream {
    crate::support::bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect")
}

/// Writes `parts` back to back in one write, within [`BOUND`].
pub(crate) async fn send(stream: &mut TcpStream, parts: &[&[u8]]) {
    crate::support::bounded("write", stream.write_all(&concat(parts)))
        .await
        .expect("write");
}

/// Reads until the server closes the connection; fails the test if that takes longer than
/// [`BOUND`] or the server sends more than 1 MiB.
pub(crate) async fn read_until_closed(stream: &mut TcpStream, what: &str) -> (Vec<u8>, Closed) {
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
pub(crate) async fn read_while_open(
    stream: &mut TcpStream,
    period: Duration,
    what: &str,
) -> Vec<u8> {
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
pub(crate) struct Case {
    name: String,
    bytes: Vec<u8>,
    reason: Option<&'static str>,
}

pub(crate) fn case(name: impl Into<String>, bytes: Vec<u8>, reason: Option<&'static str>) -> Case {
    Case {
        name: name.into(),
        bytes,
        reason,
    }
}

/// Sends `case` on a fresh connection and checks the server closes it in time with its reason.
pub(crate) async fn expect_closed(addr: SocketAddr, case: &Case) {
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
