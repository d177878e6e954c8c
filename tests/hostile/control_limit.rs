//! An OPEN, HEADERS or END too long for the receiver's frame limit (a peer whose metadata
//! limit is ~65 KiB above ours, not an attack) fails its call alone, as an oversized MESSAGE
//! does: its body is skipped unread and the connection goes on, as HTTP/2 makes a header list
//! too large a stream error. Until session 36 it was a protocol error that closed the
//! connection with every call on it. And the metadata limits each side announces in SETTINGS
//! (`CAP_METADATA_LIMIT`): a client never sends request metadata past its server's, a server
//! answers `INTERNAL` rather than send response metadata past its client's (as grpc-go does).
//! An END too long to read ends its call as any END does: the request stops going out.

use crate::edges::{end_code, until_end};
use crate::raw::{
    connect, echo_message, frame, goaway, header, open, read_until_closed, send, server_frames,
    ECHO_PATH, END, END_STREAM, MESSAGE, OPEN, PREFACE, SETTINGS, WINDOW,
};
use crate::server_probe::{
    client, failed, fake_server, next_frame, next_request, settings, ANSWER, HEADERS,
};
use crate::support::{bounded, fresh_call, start_echo, EchoImpl};
use bytes::Bytes;
use sockrpc::{Code, Limits, MetadataMap, Request};
use sockrpc_tests::echo::EchoRequest;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const RESOURCE_EXHAUSTED: u32 = 8;
/// `CAP_METADATA_LIMIT`: the sender reads a SETTINGS carrying its peer's metadata limit.
const CAP_METADATA_LIMIT: u16 = 0x10;

/// The message of the END for `call_id` among `frames` (docs/PROTOCOL.md, *END*).
fn end_message(frames: &[crate::raw::ServerFrame], call_id: u32) -> String {
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == call_id)
        .expect("END");
    let len = u32::from_be_bytes(end.body[4..8].try_into().expect("length")) as usize;
    String::from_utf8_lossy(&end.body[8..8 + len]).into_owned()
}

/// A frame of `kind` for `call_id` whose body is `length` bytes of junk: skipped unread, so
/// never parsed.
fn junk(kind: u8, flags: u8, call_id: u32, length: usize) -> Vec<u8> {
    let mut out = header(length as u32, kind, flags, 0, call_id);
    out.resize(out.len() + length, 0xAB);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_or_headers_past_the_frame_limit_fails_only_its_call() {
    let server = start_echo(EchoImpl::default());
    let limits = Limits::default();
    let open_len = limits.max_open_frame() + 1;
    let mut stream = connect(server.addr).await;
    // Call 1: an OPEN one byte past the server's OPEN limit, then its request message; a
    // HEADERS past the control-frame limit (a client's HEADERS means nothing to a server);
    // then call 3, whole.
    send(
        &mut stream,
        &[
            PREFACE,
            &junk(OPEN, 0, 1, open_len),
            &echo_message(1, 1, b"dropped"),
            &junk(HEADERS, 0, 1, limits.max_control_frame() + 1),
            &open(3, ECHO_PATH, &[]),
            &echo_message(3, 3, b"answered"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 3).await;
    assert_eq!(end_code(&frames, 3), 0, "{frames:?}");
    assert_eq!(end_code(&frames, 1), RESOURCE_EXHAUSTED, "{frames:?}");
    let why = end_message(&frames, 1);
    assert!(
        why.contains(&format!(
            "Open frame of {open_len} bytes exceeds the server's limit of {}",
            open_len - 1
        )),
        "{why}"
    );
    // Its message was dropped as an ended call's: no answer but the END.
    assert!(
        !frames.iter().any(|f| f.kind == MESSAGE && f.call_id == 1),
        "{frames:?}"
    );
    // Its id is used up: sending it again is a reused id, a protocol error.
    send(&mut stream, &[&open(1, ECHO_PATH, &[])]).await;
    let (rest, _) = read_until_closed(&mut stream, "the reused id").await;
    let (_, reason) = goaway(&server_frames(&[&PREFACE[..], &rest].concat())).expect("GOAWAY");
    assert!(reason.contains("call id 1 reused"), "{reason}");
    fresh_call(server.addr, 4).await;
    server.stop().await;
}

/// A server's SETTINGS that announces `limit` as its metadata limit (8 bytes: max calls,
/// capabilities, the limit).
fn settings_with_limit(capabilities: u16, limit: u32) -> Vec<u8> {
    let mut body = 0u16.to_be_bytes().to_vec();
    body.extend_from_slice(&capabilities.to_be_bytes());
    body.extend_from_slice(&limit.to_be_bytes());
    frame(WINDOW, SETTINGS, 0, &body)
}

/// A request with one `big-bin` entry of `value_len` bytes.
fn request_with(id: u64, value_len: usize) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        payload: Bytes::from_static(b"call"),
        id,
    });
    let mut metadata = MetadataMap::new();
    metadata
        .insert_bin("big-bin", Bytes::from(vec![1u8; value_len]).into())
        .expect("valid");
    *request.metadata_mut() = metadata;
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metadata_past_the_servers_announced_limit_is_never_sent() {
    // A server by hand that announces a 1 KiB metadata limit and counts the OPENs it reads.
    let opens = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&opens);
    let fake = fake_server(move |mut stream| {
        let seen = Arc::clone(&seen);
        async move {
            let hello = [&PREFACE[..], &settings_with_limit(CAP_METADATA_LIMIT, 1024)].concat();
            let _ = stream.write_all(&hello).await;
            let mut buf = Vec::new();
            // Bounded: 100 frames.
            for _ in 0..100 {
                let Some((kind, flags, id, body)) = next_frame(&mut stream, &mut buf).await else {
                    return;
                };
                if kind == OPEN {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                if kind == MESSAGE && flags & END_STREAM != 0 {
                    let _ = stream.write_all(&frame(MESSAGE, ANSWER, id, &body)).await;
                }
            }
        }
    })
    .await;
    let mut client = client(fake.addr).await;
    // The first call's answer comes after the SETTINGS: the limit is known from then on.
    let small = bounded("a small call", client.echo(request_with(1, 100))).await;
    assert_eq!(small.expect("answered").into_inner().id, 1);
    let big = bounded("a call past the limit", client.echo(request_with(2, 2000))).await;
    let status = failed(
        "past the announced limit",
        big.map(|r| r.into_inner()),
        Code::ResourceExhausted,
    );
    assert!(
        status.message().contains("the server announced; not sent"),
        "{status:?}"
    );
    assert!(status.is_refused_before_sending(), "{status:?}");
    let after = bounded("a call after", client.echo(request_with(3, 100))).await;
    assert_eq!(after.expect("answered").into_inner().id, 3);
    assert_eq!(
        opens.load(Ordering::SeqCst),
        2,
        "the refused call reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_or_end_past_the_clients_frame_limit_fail_only_their_call() {
    // A server by hand that answers call 1 with HEADERS, call 2 with an END, each past the
    // client's control-frame limit (under the skippable size), and echoes the rest.
    let fake = fake_server(|mut stream| async move {
        let _ = stream.write_all(PREFACE).await;
        let mut buf = Vec::new();
        let over = Limits::default().max_control_frame() + 1000;
        // Bounded: 10 calls.
        for _ in 0..10 {
            let Some((id, body)) = next_request(&mut stream, &mut buf).await else {
                return;
            };
            let answer = match id {
                1 => junk(HEADERS, 0, id, over),
                2 => junk(END, 0, id, over),
                _ => frame(MESSAGE, ANSWER, id, &body),
            };
            if stream.write_all(&answer).await.is_err() {
                return;
            }
        }
    })
    .await;
    let mut client = client(fake.addr).await;
    let over = Limits::default().max_control_frame() + 1000;
    for (id, what) in [(1, "response headers"), (2, "response trailers")] {
        let result = bounded("the call", client.echo(request_with(id, 10))).await;
        let status = failed(
            what,
            result.map(|r| r.into_inner()),
            Code::ResourceExhausted,
        );
        assert!(
            status.message().contains(&format!("{what} in a"))
                && status.message().contains(&format!("frame of {over} bytes")),
            "{status:?}"
        );
    }
    let after = bounded("a call after", client.echo(request_with(3, 10))).await;
    assert_eq!(after.expect("the connection goes on").into_inner().id, 3);
}

/// The bodies of the SETTINGS frames (WINDOW on call 0 with the SETTINGS flag) in what a peer
/// sent after its preface.
fn settings_bodies(mut bytes: &[u8]) -> Vec<usize> {
    if bytes.starts_with(PREFACE) {
        bytes = &bytes[8..];
    }
    let mut out = Vec::new();
    while bytes.len() >= 12 {
        let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if bytes.len() < 12 + length {
            break;
        }
        let call_id = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if bytes[4] == WINDOW && call_id == 0 && bytes[5] & SETTINGS != 0 {
            out.push(length);
        }
        bytes = &bytes[12 + length..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_that_do_not_read_a_metadata_limit_are_never_sent_one() {
    // An older client (a raw one): its SETTINGS without CAP_METADATA_LIMIT, then a call. The
    // server's only SETTINGS is the 4-byte one an older client reads.
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let old_settings = frame(WINDOW, SETTINGS, 0, &[0, 0, 0, 0x08]);
    send(
        &mut stream,
        &[
            PREFACE,
            &old_settings,
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 1, b"old"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "{frames:?}");
    assert_eq!(settings_bodies(&got), vec![4], "what the server sent");
    drop(stream);
    server.stop().await;
    // An older server (by hand): SETTINGS without the bit; every SETTINGS the client sends it
    // must be 4 bytes, or that server would close the connection.
    let longest = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&longest);
    let fake = fake_server(move |mut stream| {
        let seen = Arc::clone(&seen);
        async move {
            let hello = [&PREFACE[..], &frame(WINDOW, SETTINGS, 0, &[0, 0, 0, 0x08])].concat();
            let _ = stream.write_all(&hello).await;
            let mut buf = Vec::new();
            // Bounded: 100 frames.
            for _ in 0..100 {
                let Some((kind, flags, id, body)) = next_frame(&mut stream, &mut buf).await else {
                    return;
                };
                if kind == WINDOW && id == 0 && flags & SETTINGS != 0 {
                    seen.fetch_max(body.len(), Ordering::SeqCst);
                }
                if kind == MESSAGE && flags & END_STREAM != 0 {
                    let _ = stream.write_all(&frame(MESSAGE, ANSWER, id, &body)).await;
                }
            }
        }
    })
    .await;
    let mut client = client(fake.addr).await;
    for id in 1..=2 {
        let answer = bounded("a call", client.echo(request_with(id, 100))).await;
        assert_eq!(answer.expect("answered").into_inner().id, id);
    }
    assert_eq!(longest.load(Ordering::SeqCst), 4, "the client's SETTINGS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_past_the_clients_frame_limit_stops_the_calls_request_too() {
    // A server by hand (CAP_PIECES) that echoes call 1, and answers call 2, whose 4 MiB request
    // goes out in pieces, with an END past the client's control-frame limit as soon as its OPEN
    // arrives; then, having read nothing more for a while, it counts call 2's piece bytes up to
    // the piece that ends its message. Any END ends the call on both sides: what of the
    // request has not gone out never will, its split message ended by an empty last piece.
    // Before, an END too long to read (or with trailers past the limit) failed the call, but
    // its 4 MiB went on going out in full.
    const LARGE: usize = 4 << 20;
    const CAP_PIECES: u16 = 0x8;
    const MORE: u8 = 0x02;
    let piece_bytes = Arc::new(AtomicUsize::new(0));
    let last_piece = Arc::new(AtomicUsize::new(usize::MAX));
    let (bytes_seen, last_seen) = (Arc::clone(&piece_bytes), Arc::clone(&last_piece));
    let fake = fake_server(move |mut stream| {
        let (bytes_seen, last_seen) = (Arc::clone(&bytes_seen), Arc::clone(&last_seen));
        async move {
            let hello = [&PREFACE[..], &settings(0, CAP_PIECES)].concat();
            let _ = stream.write_all(&hello).await;
            let over = Limits::default().max_control_frame() + 1000;
            let mut buf = Vec::new();
            // Bounded: 1,000 frames (call 2's request is 64 pieces).
            for _ in 0..1000 {
                let Some((kind, flags, id, body)) = next_frame(&mut stream, &mut buf).await else {
                    return;
                };
                match (kind, id) {
                    (OPEN, 2) => {
                        let _ = stream.write_all(&junk(END, 0, 2, over)).await;
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    }
                    (MESSAGE, 2) => {
                        bytes_seen.fetch_add(body.len(), Ordering::SeqCst);
                        if flags & MORE == 0 {
                            last_seen.store(body.len(), Ordering::SeqCst);
                        }
                    }
                    (MESSAGE, _) if flags & END_STREAM != 0 => {
                        let _ = stream.write_all(&frame(MESSAGE, ANSWER, id, &body)).await;
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    let endpoint = sockrpc::Endpoint::new("127.0.0.1", fake.addr.port())
        .pool_size(1)
        .socket_config(sockrpc::SocketConfig::default().send_buffer_size(Some(64 * 1024)));
    let channel = bounded("connect", sockrpc::Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = sockrpc_tests::echo::echo_client::EchoClient::new(channel);
    // The first answer comes after the SETTINGS: large messages go in pieces from then on.
    let first = bounded("a first call", client.echo(request_with(1, 10))).await;
    assert_eq!(first.expect("answered").into_inner().id, 1);
    let large = Request::new(EchoRequest {
        payload: Bytes::from(vec![7u8; LARGE - 1024]),
        id: 2,
    });
    let result = bounded("the large call", client.echo(large)).await;
    failed(
        "an END past the limit",
        result.map(|r| r.into_inner()),
        Code::ResourceExhausted,
    );
    let after = bounded("a call after", client.echo(request_with(3, 10))).await;
    assert_eq!(after.expect("the connection goes on").into_inner().id, 3);
    bounded("call 2's message ends", async {
        while last_piece.load(Ordering::SeqCst) == usize::MAX {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let (sent, last) = (
        piece_bytes.load(Ordering::SeqCst),
        last_piece.load(Ordering::SeqCst),
    );
    assert!(
        last == 0 && sent < LARGE / 2,
        "after the END, call 2's request went on: {sent} bytes, its last piece {last} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_response_metadata_counts_nothing_against_the_clients_limit() {
    // A client by hand that announces a metadata limit of 1 byte: an answer with no headers
    // and no trailers fits it. The server counted an empty block as its 2-byte count and
    // answered `INTERNAL` ("response headers of 2 bytes exceed the limit of 1 …"); an empty
    // map counts 0 on both sides now, as an empty header list does in HTTP/2.
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    send(
        &mut stream,
        &[
            PREFACE,
            &settings_with_limit(CAP_METADATA_LIMIT, 1),
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 1, b"empty metadata"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "{}", end_message(&frames, 1));
    drop(stream);
    server.stop().await;
}
