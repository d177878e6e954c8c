//! Frames of every kind with an empty body (HTTP/2's "empty frames flood", CVE-2019-9518, was
//! zero-length DATA and HEADERS that cost the server work and no stream). Here a zero-length
//! body is legal only where the protocol says it may be: a MESSAGE (an empty message) and a
//! CANCEL (its body is empty). Every other kind needs fields: an empty OPEN, HEADERS, END,
//! PING, PONG, GOAWAY, WINDOW or SETTINGS closes its connection with a GOAWAY naming the
//! frame, after a good call on it; and a CANCEL with a body is refused as too long. Empty
//! MESSAGEs and CANCELs, thousands of them for calls live, ended and never opened, cost no
//! answer and leave the connection serving. A well-behaved client is served throughout.
//! (`wire.rs` has malformed bodies that are not empty; `probe.rs` floods legal non-empty ones.)

use crate::raw::{
    case, concat, connect, echo_message, frame, header, open, send, server_frames, ECHO_PATH, END,
    GOAWAY, MESSAGE, OPEN, PING, PREFACE, SETTINGS, WINDOW,
};
use crate::support::{attack, bounded, start_echo, EchoImpl, Witness};
use prost::Message as _;
use sockrpc_tests::echo::EchoReply;
use tokio::io::AsyncReadExt;

const HEADERS: u8 = 2;
const CANCEL: u8 = 5;
const PONG: u8 = 7;

/// A good call (1) and then `bad`, on a fresh connection.
fn after_a_call(bad: &[u8]) -> Vec<u8> {
    concat(&[
        PREFACE,
        &open(1, ECHO_PATH, &[]),
        &echo_message(1, 1, b"first"),
        bad,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_bodies_of_kinds_that_need_fields_close_the_connection() {
    let empty =
        |kind: u8, flags: u8, call_id: u32| after_a_call(&header(0, kind, flags, 0, call_id));
    attack(vec![
        case(
            "empty OPEN",
            empty(OPEN, 0, 3),
            Some("malformed Open frame"),
        ),
        case(
            "empty HEADERS",
            empty(HEADERS, 0, 1),
            Some("malformed Headers frame"),
        ),
        case("empty END", empty(END, 0, 1), Some("malformed End frame")),
        case(
            "empty PING",
            empty(PING, 0, 0),
            Some("malformed Ping frame"),
        ),
        case(
            "empty PONG",
            empty(PONG, 0, 0),
            Some("malformed Pong frame"),
        ),
        case(
            "empty GOAWAY",
            empty(GOAWAY, 0, 0),
            Some("malformed GoAway frame"),
        ),
        case(
            "empty WINDOW",
            empty(WINDOW, 0, 1),
            Some("malformed Window frame"),
        ),
        case(
            "empty WINDOW on call 0",
            empty(WINDOW, 0, 0),
            Some("malformed Window frame"),
        ),
        case(
            "empty SETTINGS",
            empty(WINDOW, SETTINGS, 0),
            Some("malformed Window frame"),
        ),
        case(
            "CANCEL with a body",
            after_a_call(&frame(CANCEL, 0, 1, &[0; 4])),
            Some("exceeds the limit of 0"),
        ),
    ])
    .await;
}

/// Thousands of empty MESSAGEs and CANCELs for calls that were answered, cancelled or never
/// opened: no answer for any of them, and calls before and after are answered with their
/// own payloads (an empty MESSAGE is an empty request: `EchoRequest::default()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_messages_and_cancels_cost_no_answer() {
    let server = start_echo(EchoImpl::default());
    let witness = Witness::start(server.addr).await;
    let mut stream = connect(server.addr).await;
    // Call 1 answered; call 3 opened and cancelled before its message; call 5's request is
    // an empty MESSAGE.
    send(
        &mut stream,
        &[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 1, b"one"),
            &open(3, ECHO_PATH, &[]),
            &frame(CANCEL, 0, 3, &[]),
            &open(5, ECHO_PATH, &[]),
            &frame(MESSAGE, 1, 5, &[]),
        ],
    )
    .await;
    let mut flood = Vec::new();
    for i in 0..4_000u32 {
        for call_id in [1, 3, 5, 1_000_001 + 2 * i] {
            flood.extend_from_slice(&frame(MESSAGE, 0, call_id, &[]));
            flood.extend_from_slice(&frame(CANCEL, 0, call_id, &[]));
        }
    }
    // 8 rounds of 32,000 frames (12 bytes each): about 3 MB.
    for _ in 0..8 {
        bounded(
            "write a flood",
            tokio::io::AsyncWriteExt::write_all(&mut stream, &flood),
        )
        .await
        .expect("the server keeps reading");
    }
    send(
        &mut stream,
        &[
            &open(9_000_001, ECHO_PATH, &[]),
            &echo_message(9_000_001, 7, b"after"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let frames = bounded("the call after the flood", async {
        loop {
            let frames = server_frames(&got);
            if frames.iter().any(|f| f.kind == GOAWAY) {
                panic!("GOAWAY: {frames:?}");
            }
            if frames
                .iter()
                .any(|f| f.call_id == 9_000_001 && f.kind == END)
            {
                return frames;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let reply = |call_id: u32| {
        frames
            .iter()
            .find(|f| f.call_id == call_id && f.kind == MESSAGE)
            .map(|f| EchoReply::decode(&f.body[..]).expect("a reply"))
    };
    assert_eq!(reply(1).map(|r| r.id), Some(1), "call 1");
    assert!(
        reply(3).is_none(),
        "call 3 was cancelled before its message"
    );
    assert_eq!(
        reply(5),
        Some(EchoReply::default()),
        "call 5's empty request"
    );
    assert_eq!(
        reply(9_000_001).map(|r| (r.id, r.payload.to_vec())),
        Some((7, b"after".to_vec()))
    );
    let others: Vec<(u8, u32)> = frames
        .iter()
        // Connection credit (WINDOW on call 0) is the only frame not for a call.
        .filter(|f| {
            !([1, 3, 5, 9_000_001].contains(&f.call_id) || f.kind == WINDOW && f.call_id == 0)
        })
        .map(|f| (f.kind, f.call_id))
        .collect();
    assert!(
        others.is_empty(),
        "answers to frames that need none: {others:?}"
    );
    assert!(
        got.len() < 8 * 1024,
        "the server sent {} bytes for four calls",
        got.len()
    );
    drop(stream);
    witness.finish().await;
    server.stop().await;
}
