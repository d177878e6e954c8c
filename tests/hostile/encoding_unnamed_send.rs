//! A message flagged compressed goes out only under an answer that names the encoding it is
//! sent with (`EncodingFields::send`). Toward a client whose OPEN carried encoding fields, the
//! transport sent a handler's compressed answer whatever the answer's fields said: with no
//! fields, or fields that name no send encoding, the client had no encoding to read it with and
//! failed it `INTERNAL` on its side. The server now ends such a call `INTERNAL` itself, with a
//! message that says why, and sends no compressed message (as it does toward a client that
//! named none: `encoding_unasked.rs`, whose handlers' fields name gzip and are sent).

use crate::compressed_running::ends;
use crate::encoding_unasked::{call, end_parts, packed, Forwarded, FLAG_ENCODING, INTERNAL};
use crate::raw::{server_frames, ServerFrame, END, MESSAGE, PREFACE};
use crate::support::{bounded, start_serving};
use sockrpc::compression::{EncodingFields, EncodingSet};
use sockrpc::transport::dispatch::{Dispatch, DispatchFuture, IncomingCall};
use sockrpc::transport::server::serve;
use sockrpc::transport::ServerConfig;
use sockrpc::{Body, CompressionEncoding, MetadataMap, Response, Status};
use std::collections::VecDeque;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ONCE_BARE: &[u8] = b"/t.Unnamed/OnceBare";
const STREAM_BARE: &[u8] = b"/t.Unnamed/StreamBare";
const ONCE_ACCEPT_ONLY: &[u8] = b"/t.Unnamed/OnceAcceptOnly";
const STREAM_ACCEPT_ONLY: &[u8] = b"/t.Unnamed/StreamAcceptOnly";
/// Every method, in the order the calls are made (call ids 1, 3, 5, …).
const PATHS: [&[u8]; 4] = [ONCE_BARE, STREAM_BARE, ONCE_ACCEPT_ONLY, STREAM_ACCEPT_ONLY];

/// Handlers that answer a gzip-compressed message, once or streamed, under no encoding fields
/// (`Bare`) or fields that name what they read and nothing they send.
#[derive(Clone)]
struct NoSend;

impl Dispatch for NoSend {
    type Body = Body;

    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<Body> {
        let path = call.path.as_bytes().to_vec();
        Box::pin(async move {
            let once = || Body::once_wire(packed(), true);
            let streamed =
                || Body::incoming(Forwarded(VecDeque::from([packed()]), MetadataMap::new()));
            let (body, fields) = match &path[..] {
                ONCE_BARE => (once(), false),
                STREAM_BARE => (streamed(), false),
                ONCE_ACCEPT_ONLY => (once(), true),
                STREAM_ACCEPT_ONLY => (streamed(), true),
                _ => return Err(Status::unimplemented("no such method")),
            };
            let mut response = Response::new(body);
            if fields {
                let accept = EncodingSet::EMPTY.with(CompressionEncoding::Gzip);
                response.set_encoding(Some(EncodingFields::new(accept, None)));
            }
            Ok(response)
        })
    }
}

#[tokio::test]
async fn a_compressed_answer_naming_no_send_encoding_ends_internal_on_the_server() {
    let server = start_serving(|listener, shutdown| {
        serve(listener, NoSend, ServerConfig::default(), None, shutdown)
    });
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut bytes = PREFACE.to_vec();
    for (n, path) in PATHS.iter().enumerate() {
        // Every OPEN carries encoding fields: the client reads gzip.
        bytes.extend_from_slice(&call(2 * n as u32 + 1, path, true));
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
    let frames = server_frames(&got);
    for (n, path) in PATHS.iter().enumerate() {
        let what = String::from_utf8_lossy(path);
        let call_id = 2 * n as u32 + 1;
        let of = |kind: u8| -> Option<&ServerFrame> {
            frames
                .iter()
                .find(|f| f.call_id == call_id && f.kind == kind)
        };
        let message = of(MESSAGE);
        assert!(
            message.is_none_or(|m| m.flags & FLAG_ENCODING == 0),
            "{what}: a message flagged compressed under no send encoding: {message:?}"
        );
        let (code, message, _, _) = end_parts(of(END).expect("the END"));
        assert_eq!(code, INTERNAL, "{what}: {message}");
        assert!(
            message.contains("names no encoding"),
            "{what}: the message says why: {message}"
        );
    }
}
