//! Pieces (`FLAG_MORE`) where a hostile or merely unlucky client puts them: for a call never
//! opened, across the call's own CANCEL, with other calls' whole frames between them; and an
//! assembly left open with other calls' frames between its pieces, or with a piece's body
//! dripped, which the frame timeout still closes. (Empty or short pieces before the last are
//! refused: `pieces.rs`.)

use crate::raw::{
    connect, echo_message, frame, goaway, header, open, send, server_frames, ServerFrame,
    ECHO_PATH, END, END_STREAM, MESSAGE, PREFACE, WINDOW,
};
use crate::support::{bounded, start_echo, EchoImpl, BOUND};
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const MORE: u8 = 0x02;
const CANCEL: u8 = 5;
const DEADLINE_EXCEEDED: u32 = 4;

/// An echo request's MESSAGE body for `id`.
fn request(id: u64, payload: &[u8]) -> Vec<u8> {
    EchoRequest {
        payload: payload.to_vec().into(),
        id,
    }
    .encode_to_vec()
}

/// Reads until `done` holds of the frames so far (bounded), asserting the server keeps the
/// connection open meanwhile.
async fn read_until(
    stream: &mut TcpStream,
    mut got: Vec<u8>,
    done: impl Fn(&[ServerFrame]) -> bool,
) -> Vec<u8> {
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: each read takes at least one byte.
    for _ in 0..10_000 {
        if done(&server_frames(&got)) {
            return got;
        }
        let n = bounded("read", stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "the server closed: {:?}", server_frames(&got));
        got.extend_from_slice(&buf[..n]);
    }
    panic!("not answered: {:?}", server_frames(&got));
}

fn reply_of(frames: &[ServerFrame], call_id: u32) -> Option<EchoReply> {
    let answer = frames
        .iter()
        .find(|f| f.call_id == call_id && f.kind == MESSAGE)?;
    Some(EchoReply::decode(&answer.body[..]).expect("reply"))
}

#[tokio::test]
async fn pieces_of_unknown_or_cancelled_calls_leave_the_connection_working() {
    let server = start_echo(EchoImpl::default());
    let mut stream = connect(server.addr).await;
    let cancelled = request(1, &[7u8; 150 * 1024]);
    let kept = request(3, &[9u8; 300 * 1024]);
    let mut wire = PREFACE.to_vec();
    // A split message for a call never opened.
    wire.extend(frame(MESSAGE, MORE, 9, &[1u8; 100 * 1024]));
    wire.extend(frame(MESSAGE, END_STREAM, 9, &[1u8; 10]));
    // Call 1's message crossed by its own CANCEL (the client gave up while it went out).
    wire.extend(open(1, ECHO_PATH, &[]));
    wire.extend(frame(MESSAGE, MORE, 1, &cancelled[..64 * 1024]));
    wire.extend(frame(CANCEL, 0, 1, &[]));
    wire.extend(frame(MESSAGE, END_STREAM, 1, &cancelled[64 * 1024..]));
    // Call 3's message: a piece, another call's whole frames, the rest.
    wire.extend(open(3, ECHO_PATH, &[]));
    wire.extend(frame(MESSAGE, MORE, 3, &kept[..64 * 1024]));
    wire.extend(open(5, ECHO_PATH, &[]));
    wire.extend(echo_message(5, 55, b"between"));
    wire.extend(frame(MESSAGE, MORE, 3, &kept[64 * 1024..200 * 1024]));
    wire.extend(frame(MESSAGE, END_STREAM, 3, &kept[200 * 1024..]));
    send(&mut stream, &[&wire]).await;
    let got = read_until(&mut stream, Vec::new(), |frames| {
        [3, 5]
            .iter()
            .all(|&id| frames.iter().any(|f| f.call_id == id && f.kind == END))
    })
    .await;
    let frames = server_frames(&got);
    assert!(goaway(&frames).is_none(), "{frames:?}");
    let five = reply_of(&frames, 5).expect("call 5 answered");
    assert_eq!((five.id, &five.payload[..]), (55, &b"between"[..]));
    let three = reply_of(&frames, 3).expect("call 3 answered");
    assert_eq!(three.id, 3);
    assert!(three.payload.len() == 300 * 1024 && three.payload.iter().all(|&b| b == 9));
    assert!(
        reply_of(&frames, 1).is_none(),
        "a cancelled call is not answered"
    );
    // And the connection takes a call after all that.
    send(
        &mut stream,
        &[&open(7, ECHO_PATH, &[]), &echo_message(7, 77, b"after")],
    )
    .await;
    let got = read_until(&mut stream, got, |frames| {
        frames.iter().any(|f| f.call_id == 7 && f.kind == END)
    })
    .await;
    let seven = reply_of(&server_frames(&got), 7).expect("call 7 answered");
    assert_eq!(seven.id, 77);
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn an_assembly_kept_open_by_other_calls_frames_meets_the_frame_timeout() {
    // Whole frames complete between the pieces (a WINDOW for a call the server does not know,
    // which it ignores): before, each restarted the frame clock. (An empty piece, once a
    // second way to do it, is now refused outright: `pieces.rs`.)
    held_open_by(&[], frame(WINDOW, 0, 99, &1u32.to_be_bytes())).await;
}

#[tokio::test]
async fn a_piece_read_straight_into_its_assembly_meets_the_frame_timeout() {
    // The second piece announced (64 KiB: its body is read straight into the assembly,
    // `codec.rs` `State::Into`) and its body dripped 16 bytes at a time: bytes arrive, but
    // the frame does not complete.
    held_open_by(&header(64 * 1024, MESSAGE, MORE, 0, 1), vec![5u8; 16]).await;
}

/// Opens a split message of 100 KiB with its first 64 KiB piece and `then`, then sends `drip`
/// every 50 ms for 3 s and never the rest: the server must close the connection as a frame not
/// completed within its frame timeout (500 ms), while the drip still goes on. On the real
/// clock: a paused one runs ahead of the socket, and a drip that does not arrive proves nothing.
async fn held_open_by(then: &[u8], drip: Vec<u8>) {
    const FRAME: Duration = Duration::from_millis(500);
    let listener =
        sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("address"), &Default::default())
            .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(
        sockrpc::Server::builder()
            .idle_timeout(None)
            .frame_timeout(FRAME)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener(listener),
    );
    let mut stream = connect(addr).await;
    let body = request(1, &[3u8; 100 * 1024]);
    send(
        &mut stream,
        &[
            &PREFACE[..],
            &open(1, ECHO_PATH, &[]),
            &frame(MESSAGE, MORE, 1, &body[..64 * 1024]),
            then,
        ],
    )
    .await;
    let first = tokio::time::Instant::now();
    // The drip every 50 ms: frames, but no progress on the message.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed = false;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The server may have closed already: a failed write ends the drip.
        if tokio::io::AsyncWriteExt::write_all(&mut stream, &drip)
            .await
            .is_err()
        {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    if !closed {
        let _ = tokio::time::timeout(BOUND, async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
    }
    let frames = server_frames(&got);
    let (code, reason) = goaway(&frames).unwrap_or_else(|| panic!("no GOAWAY: {frames:?}"));
    assert_eq!(code, DEADLINE_EXCEEDED, "{reason}");
    assert!(reason.contains("frame not completed"), "{reason}");
    assert!(tokio::time::Instant::now() >= first + FRAME);
    assert!(
        tokio::time::Instant::now() < first + 6 * FRAME,
        "closed late: only the open message's own pieces count as progress"
    );
    server.abort();
}
