//! Frames that are legal but odd — WINDOW credit at `u32::MAX` or for calls that do not exist,
//! CANCEL and END for unknown or finished calls, a MESSAGE for a call never opened, a client's
//! own GOAWAY, HEADERS or PONG — are ignored: the connection goes on serving. Metadata exactly
//! at the limit is accepted and one byte over fails its call alone, and a 65,535-byte method
//! path is answered, not fatal.

use crate::raw::{
    case, concat, connect, echo_message, expect_closed, frame, goaway, open, open_body,
    read_until_closed, send, server_frames, ServerFrame, ECHO_PATH, END, END_STREAM, GOAWAY,
    MESSAGE, OPEN, PREFACE,
};
use crate::support::{bounded, fresh_call, start_echo, EchoImpl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADERS: u8 = 2;
const CANCEL: u8 = 5;
const PONG: u8 = 7;
const WINDOW: u8 = 9;
const UNIMPLEMENTED: u32 = 12;
const RESOURCE_EXHAUSTED: u32 = 8;
/// OPEN flag: the client streams its request.
const STREAM: u8 = 0x02;
/// The default metadata limit (`Limits::max_metadata_size`), less what its one entry counts
/// beyond its bytes (`METADATA_ENTRY_OVERHEAD`, HTTP/2's 32), plus the block's count (2 bytes,
/// not counted): the largest one-entry block.
const METADATA_LIMIT: usize = 16 * 1024 - 32 + 2;

/// Reads until END for `call_id` arrives; fails if the connection closes or it takes too long.
pub(crate) async fn until_end(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    call_id: u32,
) -> Vec<ServerFrame> {
    let mut buf = vec![0u8; 64 * 1024];
    bounded("END", async {
        loop {
            let frames = server_frames(got);
            assert!(goaway(&frames).is_none(), "GOAWAY: {frames:?}");
            if frames.iter().any(|f| f.kind == END && f.call_id == call_id) {
                return frames;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "server closed; got {frames:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
}

pub(crate) fn end_code(frames: &[ServerFrame], call_id: u32) -> u32 {
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == call_id)
        .expect("END");
    u32::from_be_bytes(end.body[..4].try_into().expect("code"))
}

/// A metadata block of `total` bytes (count included): one `-bin` entry filling it.
fn metadata_block_of(total: usize) -> Vec<u8> {
    let key = b"k-bin";
    let value_len = total - 2 - 1 - key.len() - 2;
    let mut block = Vec::with_capacity(total);
    block.extend_from_slice(&1u16.to_be_bytes());
    block.push(key.len() as u8);
    block.extend_from_slice(key);
    block.extend_from_slice(&(value_len as u16).to_be_bytes());
    block.resize(total, 0xEE);
    block
}

/// An OPEN with no deadline, `path` and a raw metadata block.
fn open_raw(call_id: u32, path: &[u8], block: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(10 + path.len() + block.len());
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&(path.len() as u16).to_be_bytes());
    body.extend_from_slice(path);
    body.extend_from_slice(block);
    frame(OPEN, 0, call_id, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_legal_frames_are_ignored() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    // Call 1, answered: the calls below then name a finished call.
    send(
        &mut stream,
        &[PREFACE, &open(1, ECHO_PATH, &[]), &echo_message(1, 1, b"a")],
    )
    .await;
    assert_eq!(end_code(&until_end(&mut stream, &mut got, 1).await, 1), 0);
    let max = u32::MAX.to_be_bytes();
    let client_goaway = concat(&[
        &0u32.to_be_bytes(),
        &0u32.to_be_bytes(),
        &0u16.to_be_bytes(),
    ]);
    send(
        &mut stream,
        &[
            &frame(WINDOW, 0, 0, &max),
            &frame(WINDOW, 0, 1, &max),
            &frame(WINDOW, 0, 99, &max),
            &frame(WINDOW, 0, 99, &max),
            &frame(CANCEL, 0, 1, &[]),
            &frame(CANCEL, 0, 1, &[]),
            &frame(CANCEL, 0, 77, &[]),
            &frame(END, 0, 1, &[0; 14]),
            &frame(END, 0, 1, &[0; 14]),
            &echo_message(1, 2, b"late"),
            &echo_message(50, 3, b"never opened"),
            &frame(HEADERS, 0, 1, &0u16.to_be_bytes()),
            &frame(PONG, 0, 0, &7u64.to_be_bytes()),
            &frame(GOAWAY, 0, 0, &client_goaway),
            // Still served after all of it, with an id above every id named so far.
            &open(100, ECHO_PATH, &[]),
            &echo_message(100, 100, b"still served"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 100).await;
    assert_eq!(end_code(&frames, 100), 0, "{frames:?}");
    let answered: Vec<u32> = frames.iter().map(|f| f.call_id).collect();
    assert!(
        !answered.contains(&50) && !answered.contains(&77) && !answered.contains(&99),
        "frames for calls never opened were answered: {frames:?}"
    );
    // A CANCEL for a call opened and waiting for its MESSAGE forgets it; its id stays used.
    send(
        &mut stream,
        &[
            &open(101, ECHO_PATH, &[]),
            &frame(CANCEL, 0, 101, &[]),
            &echo_message(101, 101, b"after cancel"),
            &open(102, ECHO_PATH, &[]),
            &echo_message(102, 102, b"next"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 102).await;
    assert!(
        !frames.iter().any(|f| f.call_id == 101),
        "a cancelled call was answered: {frames:?}"
    );
    stream.shutdown().await.expect("FIN");
    let (_, _) = read_until_closed(&mut stream, "after FIN").await;
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

/// The END for `call_id` among `frames`: its code and message.
fn end_status(frames: &[ServerFrame], call_id: u32) -> (u32, String) {
    let end = frames
        .iter()
        .find(|f| f.kind == END && f.call_id == call_id)
        .expect("END");
    let len = u32::from_be_bytes(end.body[4..8].try_into().expect("length")) as usize;
    (
        end_code(frames, call_id),
        String::from_utf8_lossy(&end.body[8..8 + len]).into_owned(),
    )
}

/// A metadata block one byte past the limit fails its own call `RESOURCE_EXHAUSTED` (as HTTP/2
/// makes a header list too large a stream error), unary or streaming, and the connection goes
/// on: the streaming call's later MESSAGEs are dropped as an ended call's, and the calls after
/// it are served. Until session 35 it was a protocol error that closed the connection with
/// every call on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_one_byte_over_fails_only_its_call() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    send(
        &mut stream,
        &[
            PREFACE,
            &open_raw(1, ECHO_PATH, &metadata_block_of(METADATA_LIMIT)),
            &echo_message(1, 1, b"at the limit"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "{frames:?}");
    let over = metadata_block_of(METADATA_LIMIT + 1);
    let mut streaming = open_raw(3, ECHO_PATH, &over);
    streaming[5] = STREAM;
    send(
        &mut stream,
        &[
            &open_raw(2, ECHO_PATH, &over),
            &echo_message(2, 2, b"over"),
            &streaming,
            &frame(MESSAGE, 0, 3, &[]),
            &frame(MESSAGE, END_STREAM, 3, &[]),
            &open(4, ECHO_PATH, &[]),
            &echo_message(4, 4, b"after"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 4).await;
    for call in [2, 3] {
        let (code, message) = end_status(&frames, call);
        assert_eq!(code, RESOURCE_EXHAUSTED, "call {call}: {message}");
        assert!(
            message.contains("request metadata of 16385 bytes exceeds the limit of 16384"),
            "call {call}: {message}"
        );
        let flags = frames
            .iter()
            .find(|f| f.kind == END && f.call_id == call)
            .map(|f| f.flags);
        assert_eq!(flags, Some(0), "call {call}: marked not processed");
    }
    assert_eq!(end_code(&frames, 4), 0, "{frames:?}");
    // Malformed stays fatal: a block past the limit whose count runs past the body. The
    // GOAWAY names the refused OPEN as received (its `last_call_id`), so that its client does
    // not send it again as a call never processed.
    let mut short = metadata_block_of(METADATA_LIMIT + 1);
    short[..2].copy_from_slice(&2u16.to_be_bytes());
    let malformed = concat(&[PREFACE, &open_raw(7, ECHO_PATH, &short)]);
    expect_closed(
        server.addr,
        &case(
            "metadata over, then short",
            malformed.clone(),
            Some("body ends early"),
        ),
    )
    .await;
    let mut bad = connect(server.addr).await;
    send(&mut bad, &[&malformed]).await;
    let (sent, _) = read_until_closed(&mut bad, "metadata over, then short").await;
    let frames = server_frames(&sent);
    let last_call_id = frames
        .iter()
        .find(|f| f.kind == GOAWAY)
        .map(|f| u32::from_be_bytes(f.body[..4].try_into().expect("last call id")));
    assert_eq!(last_call_id, Some(7), "{frames:?}");
    // The first connection lives on.
    send(
        &mut stream,
        &[&open(5, ECHO_PATH, &[]), &echo_message(5, 5, b"again")],
    )
    .await;
    assert_eq!(end_code(&until_end(&mut stream, &mut got, 5).await, 5), 0);
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_of_65535_bytes_is_answered() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut path = b"/sockrpc.test.Echo/".to_vec();
    path.resize(usize::from(u16::MAX), b'x');
    let mut got = Vec::new();
    send(
        &mut stream,
        &[
            PREFACE,
            &frame(OPEN, 0, 1, &open_body(&path, &[])),
            &echo_message(1, 1, b"long path"),
            &open(2, ECHO_PATH, &[]),
            &echo_message(2, 2, b"short path"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 2).await;
    assert_eq!(end_code(&frames, 1), UNIMPLEMENTED, "{frames:?}");
    assert_eq!(end_code(&frames, 2), 0, "{frames:?}");
    assert!(
        frames.iter().all(|f| f.body.len() < 64 * 1024),
        "an answer echoed the whole path"
    );
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_half_closed_without_its_message_is_answered_at_once() {
    // OPEN (unary) then the client's END: the message can never come. Answered UNIMPLEMENTED
    // like an OPEN with END_STREAM, well before the 30 s an OPEN may wait for its message; a
    // second END for it and a late MESSAGE are then ignored.
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut got = Vec::new();
    send(
        &mut stream,
        &[
            PREFACE,
            &open(1, ECHO_PATH, &[]),
            &frame(END, 0, 1, &[0; 14]),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), UNIMPLEMENTED, "{frames:?}");
    send(
        &mut stream,
        &[
            &frame(END, 0, 1, &[0; 14]),
            &echo_message(1, 1, b"too late"),
            &open(2, ECHO_PATH, &[]),
            &echo_message(2, 2, b"next"),
        ],
    )
    .await;
    let frames = until_end(&mut stream, &mut got, 2).await;
    assert_eq!(end_code(&frames, 2), 0, "{frames:?}");
    let ends_for_1 = frames.iter().filter(|f| f.call_id == 1).count();
    assert_eq!(ends_for_1, 1, "call 1 answered twice: {frames:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_sent_one_byte_at_a_time_is_answered() {
    // Every frame split at every byte boundary, with gaps (well within the frame timeout).
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    stream.set_nodelay(true).expect("nodelay");
    let bytes = concat(&[
        PREFACE,
        &open(1, ECHO_PATH, &[(b"k", b"v")]),
        &echo_message(1, 9, b"slow"),
    ]);
    for byte in &bytes {
        stream.write_all(&[*byte]).await.expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "{frames:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_cut_off_with_too_many_pings() {
    const RESOURCE_EXHAUSTED: u32 = 8;
    let server = start_echo(EchoImpl::default());
    let mut flood = PREFACE.to_vec();
    for i in 0..10_000u64 {
        flood.extend_from_slice(&frame(6, 0, 0, &i.to_be_bytes()));
    }
    let mut stream = connect(server.addr).await;
    // The server closes after a few PINGs: the rest of the write may fail.
    let _ = stream.write_all(&flood).await;
    let (got, _) = read_until_closed(&mut stream, "PING flood").await;
    let frames = server_frames(&got);
    let (code, reason) = goaway(&frames).unwrap_or_else(|| panic!("no GOAWAY: {frames:?}"));
    assert_eq!(
        (code, reason.as_str()),
        (RESOURCE_EXHAUSTED, "too_many_pings")
    );
    let pongs = frames.iter().filter(|f| f.kind == 7).count();
    assert!(pongs <= 3, "{pongs} PONGs answered before the cut-off");
    fresh_call(server.addr, 1).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_past_the_call_cap_are_refused_and_the_first_still_served() {
    // 5,000 unary OPENs, none followed by its MESSAGE: the first 4,096 (the default cap) wait,
    // every later one is answered RESOURCE_EXHAUSTED at once, and a waiting call is still
    // served when its message comes.
    const RESOURCE_EXHAUSTED: u32 = 8;
    const OPENS: u32 = 5_000;
    const CAP: u32 = 4_096;
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let mut bytes = PREFACE.to_vec();
    for call_id in 1..=OPENS {
        bytes.extend_from_slice(&open(call_id, ECHO_PATH, &[]));
    }
    bytes.extend_from_slice(&echo_message(1, 1, b"first"));
    stream.write_all(&bytes).await.expect("write");
    let mut got = Vec::new();
    let frames = until_end(&mut stream, &mut got, 1).await;
    assert_eq!(end_code(&frames, 1), 0, "call 1");
    let refused: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind == END && f.call_id != 1)
        .map(|f| {
            let code = u32::from_be_bytes(f.body[..4].try_into().expect("code"));
            assert_eq!(code, RESOURCE_EXHAUSTED, "call {}", f.call_id);
            f.call_id
        })
        .collect();
    assert_eq!(refused.len() as u32, OPENS - CAP, "refused calls");
    assert!(
        refused.iter().all(|&id| id > CAP),
        "a call under the cap was refused"
    );
    // Closed by us: a graceful stop would otherwise wait for the 4,095 OPENs still waiting
    // (they may yet get their messages) until they expire.
    drop(stream);
    fresh_call(server.addr, 1).await;
    server.stop().await;
}
