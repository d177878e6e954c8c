//! A unary call's request MESSAGE that arrives after its call ended (refused for its metadata,
//! cancelled) is dropped without connection credit: its client never counted it against the
//! connection window (`CAP_CONNECTION_WINDOW`, only stream messages are counted). The server
//! credited every message of a call it no longer knew, so each such message gave its client
//! credit it never had outstanding, and the client could run that far past the window.

use crate::edges::until_end;
use crate::raw::{
    connect, echo_message, frame, open, send, ECHO_PATH, MESSAGE, PREFACE, SETTINGS, WINDOW,
};
use crate::support::{start_echo, EchoImpl};

const CANCEL: u8 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_messages_of_ended_unary_calls_are_not_credited() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[PREFACE]).await;
    // 10 MiB of late unary messages: past the half window (8 MiB) at which the server sends
    // the credit it owes, so any credit for them would show as a WINDOW on call 0.
    let late = vec![0u8; 1024 * 1024];
    let big = vec![b'v'; 17 * 1024];
    for i in 0..10u32 {
        let id = 1 + 2 * i;
        // Even: refused for its metadata (past the 16 KiB limit); odd: cancelled.
        let ended = if i % 2 == 0 {
            open(id, ECHO_PATH, &[(&b"big"[..], &big[..])])
        } else {
            [open(id, ECHO_PATH, &[]), frame(CANCEL, 0, id, &[])].concat()
        };
        send(&mut stream, &[&ended, &frame(MESSAGE, 1, id, &late)]).await;
    }
    // A call after them: its answer comes after any WINDOW the late messages caused.
    send(
        &mut stream,
        &[&open(101, ECHO_PATH, &[]), &echo_message(101, 7, b"after")],
    )
    .await;
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 101).await;
    let credit: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == WINDOW && f.call_id == 0 && f.flags & SETTINGS == 0)
        .map(|f| u32::from_be_bytes(f.body[..4].try_into().expect("credit")))
        .collect();
    assert!(
        credit.is_empty(),
        "connection credit for messages the client never counted: {credit:?}"
    );
    drop(stream);
    server.stop().await;
}
