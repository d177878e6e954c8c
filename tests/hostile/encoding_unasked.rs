//! Encoding fields (`FLAG_ENCODING`) and compressed messages go only to a client whose OPEN
//! carried encoding fields of its own (`docs/COMPRESSION.md`): a client of an earlier version
//! would misread either. `Status::set_encoding` and `Response::set_encoding` are public (the
//! generated services need them), so a hand-written handler or layer could set them on any
//! answer, and the server's transport sent them as set: an error's END, an answer's HEADERS and
//! a stream's error END carried `FLAG_ENCODING` to a client that never spoke of encodings, and a
//! message flagged compressed went to it too. The transport now holds the answer to what the
//! call's OPEN allowed: the fields are dropped (the status, its message and its metadata go
//! as they were), and a compressed message ends the call `INTERNAL` instead of going out. The
//! same answers to a client whose OPEN carried fields go as set (the control).
//!
//! The server here is the transport's own `serve` under a raw `Dispatch` (no generated service
//! in the way), and the client writes its frames by hand and reads the flags of what comes.

use crate::compressed_running::ends;
use crate::raw::{
    block, frame, open_body, server_frames, ServerFrame, END, END_STREAM, MESSAGE, OPEN, PREFACE,
};
use crate::server_probe::HEADERS;
use crate::support::{bounded, start_serving};
use bytes::Bytes;
use sockrpc::compression::{compress, EncodingFields, EncodingSet};
use sockrpc::service::Incoming;
use sockrpc::transport::dispatch::{Dispatch, DispatchFuture, IncomingCall};
use sockrpc::transport::server::serve;
use sockrpc::transport::ServerConfig;
use sockrpc::{Body, CompressionEncoding, MetadataMap, Response, Status};
use std::collections::VecDeque;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// OPEN's, HEADERS' and END's flag: encoding fields end the body. MESSAGE's: compressed.
pub(crate) const FLAG_ENCODING: u8 = 0x08;
/// Encoding fields: length 3, accept gzip, send gzip.
const GZIP_FIELDS: [u8; 4] = [3, 0, 1, 1];
const INVALID_ARGUMENT: u32 = 3;
pub(crate) const INTERNAL: u32 = 13;
const ERROR: &[u8] = b"/t.Unasked/Error";
const HEADED: &[u8] = b"/t.Unasked/Headed";
const STREAM_ERROR: &[u8] = b"/t.Unasked/StreamError";
const COMPRESSED: &[u8] = b"/t.Unasked/Compressed";
const COMPRESSED_STREAM: &[u8] = b"/t.Unasked/CompressedStream";
/// Every method, in the order the calls are made (call ids 1, 3, 5, …).
const PATHS: [&[u8]; 5] = [ERROR, HEADED, STREAM_ERROR, COMPRESSED, COMPRESSED_STREAM];

/// What the handlers set: accept gzip, send gzip.
fn gzip_fields() -> Option<EncodingFields> {
    Some(EncodingFields::new(
        EncodingSet::EMPTY.with(CompressionEncoding::Gzip),
        Some(CompressionEncoding::Gzip),
    ))
}

/// The error every failing method answers: its encoding fields set, and metadata.
fn error_status() -> Status {
    let mut status = Status::invalid_argument("refused by hand");
    status
        .metadata_mut()
        .insert_str("x-why", "because")
        .expect("a valid entry");
    status.set_encoding(gzip_fields());
    status
}

/// A gzip-compressed message.
pub(crate) fn packed() -> Bytes {
    compress(CompressionEncoding::Gzip, b"compressed by hand").expect("gzip")
}

/// Messages as a proxy would forward them, flagged compressed.
pub(crate) struct Forwarded(pub(crate) VecDeque<Bytes>, pub(crate) MetadataMap);

impl Incoming for Forwarded {
    fn poll_message(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        Poll::Ready(
            self.0
                .pop_front()
                .map(|_| Err(Status::internal("read as plain"))),
        )
    }

    fn poll_message_flagged(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        Poll::Ready(self.0.pop_front().map(|wire| Ok((wire, true))))
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.0.is_empty().then_some(&self.1)
    }
}

/// Hand-written handlers that set encoding fields on whatever they answer, whoever asks.
#[derive(Clone)]
struct Unasked;

impl Dispatch for Unasked {
    type Body = Body;

    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<Body> {
        let path = call.path.as_bytes().to_vec();
        Box::pin(async move {
            let mut response = match &path[..] {
                ERROR => return Err(error_status()),
                HEADED => Response::new(Body::once(Bytes::from_static(b"plain"))),
                STREAM_ERROR => {
                    let messages = [Ok(Bytes::from_static(b"first")), Err(error_status())];
                    Response::new(Body::from_stream(futures_util::stream::iter(messages)))
                }
                COMPRESSED => Response::new(Body::once_wire(packed(), true)),
                COMPRESSED_STREAM => Response::new(Body::incoming(Forwarded(
                    VecDeque::from([packed()]),
                    MetadataMap::new(),
                ))),
                _ => return Err(Status::unimplemented("no such method")),
            };
            response.set_encoding(gzip_fields());
            Ok(response)
        })
    }
}

/// A unary call to `path`, its OPEN carrying encoding fields (`named`) or none.
pub(crate) fn call(call_id: u32, path: &[u8], named: bool) -> Vec<u8> {
    let mut open = open_body(path, &[]);
    let flags = if named {
        open.extend_from_slice(&GZIP_FIELDS);
        FLAG_ENCODING
    } else {
        0
    };
    [
        frame(OPEN, flags, call_id, &open),
        frame(MESSAGE, END_STREAM, call_id, b""),
    ]
    .concat()
}

/// Makes every call of [`PATHS`] on one connection, their OPENs `named` or not; the frames
/// the server sent back.
async fn answers(named: bool) -> Vec<ServerFrame> {
    let server = start_serving(|listener, shutdown| {
        serve(listener, Unasked, ServerConfig::default(), None, shutdown)
    });
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for (n, path) in PATHS.iter().enumerate() {
        bytes.extend_from_slice(&call(2 * n as u32 + 1, path, named));
    }
    stream.write_all(&bytes).await.expect("write the calls");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    bounded("every call answered", async {
        while ends(&got).len() < PATHS.len() {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection: {:?}", ends(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    drop(stream);
    server.stop().await;
    server_frames(&got)
}

/// The frame of `kind` the server sent for `path`'s call.
fn of<'a>(frames: &'a [ServerFrame], path: &[u8], kind: u8) -> Option<&'a ServerFrame> {
    let n = PATHS
        .iter()
        .position(|p| *p == path)
        .expect("a path of PATHS");
    let call_id = 2 * n as u32 + 1;
    frames
        .iter()
        .find(|f| f.call_id == call_id && f.kind == kind)
}

/// An END's code, message, metadata block (as its raw bytes) and what follows it.
pub(crate) fn end_parts(end: &ServerFrame) -> (u32, String, Vec<u8>, Vec<u8>) {
    let body = &end.body;
    let word = |at: usize| u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    let code = word(0);
    let message_len = word(4) as usize;
    let message = String::from_utf8(body[8..8 + message_len].to_vec()).expect("UTF-8");
    let details_at = 8 + message_len;
    let block_at = details_at + 4 + word(details_at) as usize;
    // The metadata block: a count, then each key (u8 length) and value (u16 length).
    let count = u16::from_be_bytes([body[block_at], body[block_at + 1]]);
    let mut at = block_at + 2;
    for _ in 0..count {
        at += 1 + body[at] as usize;
        at += 2 + u16::from_be_bytes([body[at], body[at + 1]]) as usize;
    }
    (
        code,
        message,
        body[block_at..at].to_vec(),
        body[at..].to_vec(),
    )
}

/// The error's END as it must go whatever the OPEN said: code, message and metadata as set.
fn assert_error_end(end: &ServerFrame, what: &str) {
    let (code, message, metadata, _) = end_parts(end);
    assert_eq!(code, INVALID_ARGUMENT, "{what}: {message}");
    assert_eq!(message, "refused by hand", "{what}");
    assert_eq!(metadata, block(&[(b"x-why", b"because")]), "{what}");
}

#[tokio::test]
async fn a_handlers_encoding_fields_and_compression_reach_no_client_that_did_not_ask() {
    let frames = answers(false).await;
    let end = of(&frames, ERROR, END).expect("the error's END");
    assert_error_end(end, "error");
    assert_eq!(
        end.flags & FLAG_ENCODING,
        0,
        "an error's END: FLAG_ENCODING unasked"
    );
    assert!(
        end_parts(end).3.is_empty(),
        "encoding fields after the metadata block"
    );

    // No metadata and no fields left to carry: no HEADERS at all, as for any plain answer.
    let headers = of(&frames, HEADED, HEADERS);
    assert!(
        headers.is_none(),
        "an answer's HEADERS for its fields alone: {headers:?}"
    );
    let message = of(&frames, HEADED, MESSAGE).expect("the answer's message");
    assert_eq!(message.body, b"plain", "the answer goes as it was");

    let headers = of(&frames, STREAM_ERROR, HEADERS).expect("the stream's HEADERS");
    assert_eq!(
        headers.flags & FLAG_ENCODING,
        0,
        "a stream's HEADERS: FLAG_ENCODING unasked"
    );
    let end = of(&frames, STREAM_ERROR, END).expect("the stream's END");
    assert_error_end(end, "stream error");
    assert_eq!(
        end.flags & FLAG_ENCODING,
        0,
        "a stream's END: FLAG_ENCODING unasked"
    );

    for path in [COMPRESSED, COMPRESSED_STREAM] {
        let what = String::from_utf8_lossy(path);
        let message = of(&frames, path, MESSAGE);
        assert!(
            message.is_none(),
            "{what}: a compressed message went out: {message:?}"
        );
        let end = of(&frames, path, END).expect("the END");
        let (code, message, _, _) = end_parts(end);
        assert_eq!(code, INTERNAL, "{what}: {message}");
        assert!(message.contains("named no encoding"), "{what}: {message}");
        assert_eq!(
            end.flags & FLAG_ENCODING,
            0,
            "{what}: FLAG_ENCODING unasked"
        );
    }
}

#[tokio::test]
async fn a_client_that_carried_encoding_fields_gets_them_as_set() {
    let frames = answers(true).await;
    let end = of(&frames, ERROR, END).expect("the error's END");
    assert_error_end(end, "error");
    assert_ne!(
        end.flags & FLAG_ENCODING,
        0,
        "an error's END: FLAG_ENCODING"
    );
    assert_eq!(end_parts(end).3, [3, 0, 1, 1], "the fields the handler set");

    let headers = of(&frames, HEADED, HEADERS).expect("the answer's HEADERS");
    assert_ne!(
        headers.flags & FLAG_ENCODING,
        0,
        "an answer's HEADERS: FLAG_ENCODING"
    );

    let headers = of(&frames, STREAM_ERROR, HEADERS).expect("the stream's HEADERS");
    assert_ne!(
        headers.flags & FLAG_ENCODING,
        0,
        "a stream's HEADERS: FLAG_ENCODING"
    );
    let end = of(&frames, STREAM_ERROR, END).expect("the stream's END");
    assert_error_end(end, "stream error");
    assert_ne!(
        end.flags & FLAG_ENCODING,
        0,
        "a stream's END: FLAG_ENCODING"
    );

    for path in [COMPRESSED, COMPRESSED_STREAM] {
        let what = String::from_utf8_lossy(path);
        let message = of(&frames, path, MESSAGE).expect("the compressed message");
        assert_ne!(
            message.flags & FLAG_ENCODING,
            0,
            "{what}: flagged compressed"
        );
        assert_eq!(message.body, packed(), "{what}");
        let (code, message, _, _) = end_parts(of(&frames, path, END).expect("the END"));
        assert_eq!(code, 0, "{what}: {message}");
    }
}
