//! An OK unary answer folds its END into its MESSAGE (`FLAG_END_OK`) only for a client whose
//! OPEN asked for it (`FLAG_FOLD_END`); any other client gets MESSAGE then END, as before; and
//! a client may not send the server's flag.

use crate::raw::{
    case, concat, echo_message, frame, open, open_body, read_while_open, server_frames, ECHO_PATH,
    END, END_STREAM, MESSAGE, OPEN, PREFACE,
};
use crate::support::{attack, bounded, start_echo, EchoImpl};
use prost::Message as _;
use sockrpc_tests::echo::EchoReply;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// OPEN's `FLAG_FOLD_END`, MESSAGE's `FLAG_END_OK` (docs/PROTOCOL.md).
const FOLD_END: u8 = 0x10;
const END_OK: u8 = 0x10;

/// Sends `request` on a fresh connection; returns what the server sent for call 1 in 300 ms.
async fn answer_to(addr: std::net::SocketAddr, request: &[u8]) -> Vec<crate::raw::ServerFrame> {
    let mut stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.write_all(request).await.expect("write");
    let got = read_while_open(&mut stream, Duration::from_millis(300), "fold").await;
    server_frames(&got)
        .into_iter()
        .filter(|f| f.call_id == 1)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ok_answer_is_one_frame_only_for_a_client_that_asked() {
    let server = start_echo(EchoImpl::default());
    let folded = answer_to(
        server.addr,
        &concat(&[
            PREFACE,
            &frame(OPEN, FOLD_END, 1, &open_body(ECHO_PATH, &[])),
            &echo_message(1, 5, b"fold"),
        ]),
    )
    .await;
    assert_eq!(folded.len(), 1, "one frame: {folded:?}");
    assert_eq!(folded[0].kind, MESSAGE);
    assert_eq!(folded[0].flags, END_STREAM | END_OK, "{folded:?}");
    let reply = EchoReply::decode(&folded[0].body[..]).expect("reply");
    assert_eq!((reply.id, &reply.payload[..]), (5, &b"fold"[..]));

    // A client that did not ask (an older one) gets the END it expects.
    let plain = answer_to(
        server.addr,
        &concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &echo_message(1, 6, b"plain"),
        ]),
    )
    .await;
    let kinds: Vec<(u8, u8)> = plain.iter().map(|f| (f.kind, f.flags)).collect();
    assert_eq!(kinds, vec![(MESSAGE, END_STREAM), (END, 0)], "{plain:?}");

    // A failed call is never folded: the status travels in END.
    let failed = answer_to(
        server.addr,
        &concat(&[
            PREFACE,
            &frame(
                OPEN,
                FOLD_END,
                1,
                &open_body(b"/sockrpc.test.Echo/Nope", &[]),
            ),
            &echo_message(1, 7, b"x"),
        ]),
    )
    .await;
    assert!(
        failed.iter().any(|f| f.kind == END) && failed.iter().all(|f| f.flags & END_OK == 0),
        "{failed:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_sends_end_ok_is_a_protocol_error() {
    attack(vec![case(
        "MESSAGE with END_OK from a client",
        concat(&[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &frame(MESSAGE, END_STREAM | END_OK, 1, b""),
        ]),
        Some("END_OK"),
    )])
    .await;
}
