//! Messages in pieces (`FLAG_MORE`) from a hostile client: pieces of two messages interleaved,
//! or with flags only a last piece may carry, or compressed on some pieces and not on others,
//! or short pieces dripped to hold an assembly open, close the connection with a reason; pieces that add up past the message limit fail their
//! own call only, and what the server held for them is let go.

use crate::raw::{
    case, connect, echo_message, frame, open, send, server_frames, ServerFrame, END, END_STREAM,
    MESSAGE, PREFACE,
};
use crate::support::{attack, bounded, start_echo, EchoImpl};
use sockrpc_tests::echo::EchoReply;
use tokio::io::AsyncReadExt;

const MORE: u8 = 0x02;
/// `sockrpc_protocol::frame::MIN_PIECE`: a piece before the last is at least this long.
const MIN_PIECE: usize = 16 * 1024;
const ECHO: &[u8] = b"/sockrpc.test.Echo/Echo";
const RESOURCE_EXHAUSTED: u32 = 8;

#[tokio::test]
async fn pieces_of_two_messages_interleaved_close_the_connection() {
    let bytes = [
        &PREFACE[..],
        &open(1, ECHO, &[]),
        &frame(MESSAGE, MORE, 1, &[0u8; MIN_PIECE]),
        &open(3, ECHO, &[]),
        &frame(MESSAGE, MORE, 3, &[0u8; MIN_PIECE]),
    ]
    .concat();
    attack(vec![case(
        "pieces interleaved",
        bytes,
        Some("before call 1's split message ended"),
    )])
    .await;
}

#[tokio::test]
async fn pieces_with_flags_of_a_last_piece_or_mixed_compression_close_the_connection() {
    const COMPRESSED: u8 = 0x08;
    let opened = |pieces: &[Vec<u8>]| {
        let mut bytes = [&PREFACE[..], &open(1, ECHO, &[])].concat();
        for piece in pieces {
            bytes.extend_from_slice(piece);
        }
        bytes
    };
    let flags = "flags other than MORE and COMPRESSED on a piece before its last";
    let mixed = "COMPRESSED differs from the message's first piece";
    attack(vec![
        case(
            "END_STREAM before the last piece",
            opened(&[frame(MESSAGE, MORE | END_STREAM, 1, &[0u8; MIN_PIECE])]),
            Some(flags),
        ),
        case(
            "an unknown bit on a piece",
            opened(&[frame(MESSAGE, MORE | 0x40, 1, &[0u8; MIN_PIECE])]),
            Some(flags),
        ),
        case(
            "END_STREAM on a later piece",
            opened(&[
                frame(MESSAGE, MORE, 1, &[0u8; MIN_PIECE]),
                frame(MESSAGE, MORE | 0x10, 1, &[0u8; MIN_PIECE]),
            ]),
            Some(flags),
        ),
        case(
            "a compressed piece after a plain one",
            opened(&[
                frame(MESSAGE, MORE, 1, &[0u8; MIN_PIECE]),
                frame(MESSAGE, MORE | COMPRESSED, 1, &[0u8; MIN_PIECE]),
            ]),
            Some(mixed),
        ),
        case(
            "a plain last piece after compressed ones",
            opened(&[
                frame(MESSAGE, MORE | COMPRESSED, 1, &[0u8; MIN_PIECE]),
                frame(MESSAGE, END_STREAM, 1, &[0u8; MIN_PIECE]),
            ]),
            Some(mixed),
        ),
    ])
    .await;
}

#[tokio::test]
async fn short_pieces_before_the_last_close_the_connection() {
    // Each piece restarts the frame clock: 1-byte pieces, one per frame timeout, held an
    // assembly (and its connection) open for up to 4 Mi frame timeouts. Every sockrpc sender
    // cuts 64 KiB pieces; under 16 KiB (but the last) is refused at once.
    let opened = |pieces: &[Vec<u8>]| {
        let mut bytes = [&PREFACE[..], &open(1, ECHO, &[])].concat();
        for piece in pieces {
            bytes.extend_from_slice(piece);
        }
        bytes
    };
    let short = "a piece before its last shorter than 16 KiB";
    attack(vec![
        case(
            "a 1-byte drip after a full piece",
            opened(&[
                frame(MESSAGE, MORE, 1, &[0u8; 64 * 1024]),
                frame(MESSAGE, MORE, 1, &[0u8; 1]),
                frame(MESSAGE, MORE, 1, &[0u8; 1]),
            ]),
            Some(short),
        ),
        case(
            "an empty piece before the last",
            opened(&[frame(MESSAGE, MORE, 1, &[])]),
            Some(short),
        ),
        case(
            "a first piece one byte short",
            opened(&[frame(MESSAGE, MORE, 1, &[0u8; MIN_PIECE - 1])]),
            Some(short),
        ),
    ])
    .await;
}

#[tokio::test]
async fn pieces_past_the_message_limit_fail_only_their_call() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    // 65 pieces of 64 KiB: past the 4 MiB limit with the 65th; then the last piece, and
    // another call on the same connection.
    let piece = frame(MESSAGE, MORE, 1, &vec![0u8; 64 * 1024]);
    send(&mut stream, &[&PREFACE[..], &open(1, ECHO, &[])]).await;
    for _ in 0..65 {
        send(&mut stream, &[&piece]).await;
    }
    send(
        &mut stream,
        &[
            &frame(MESSAGE, 1, 1, &[0u8; 10]),
            &open(3, ECHO, &[]),
            &echo_message(3, 5, b"after"),
        ],
    )
    .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let answered = |frames: &[ServerFrame]| {
        frames.iter().any(|f| f.call_id == 1 && f.kind == END)
            && frames.iter().any(|f| f.call_id == 3 && f.kind == MESSAGE)
    };
    // Bounded: each read takes at least one byte of a few hundred.
    for _ in 0..1_000 {
        if answered(&server_frames(&got)) {
            break;
        }
        let n = bounded("read", stream.read(&mut buf)).await.expect("read");
        assert!(
            n > 0,
            "the server closed the connection: {:?}",
            server_frames(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let frames = server_frames(&got);
    assert!(answered(&frames), "{frames:?}");
    let end = frames
        .iter()
        .find(|f| f.call_id == 1 && f.kind == END)
        .expect("call 1 ended");
    let code = u32::from_be_bytes([end.body[0], end.body[1], end.body[2], end.body[3]]);
    assert_eq!(
        code,
        RESOURCE_EXHAUSTED,
        "{:?}",
        String::from_utf8_lossy(&end.body)
    );
    let answer = frames
        .iter()
        .find(|f| f.call_id == 3 && f.kind == MESSAGE)
        .expect("call 3 answered");
    let reply: EchoReply = prost::Message::decode(&answer.body[..]).expect("reply");
    assert_eq!((reply.id, &reply.payload[..]), (5, &b"after"[..]));
    drop(stream);
    server.stop().await;
}
