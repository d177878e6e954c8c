//! Deadlines a hostile client names in its OPEN (`timeout_us`, relative, in microseconds) or in
//! a `grpc-timeout`-like metadata entry, at the edges of what fits: `u64::MAX` µs (585,000
//! years), just past `i64::MAX`, one microsecond, and an entry of eight nines of hours. The
//! server adds the timeout to its clock when the OPEN is read (`server/open.rs`) and arms a
//! timer for it (`server/call.rs`); an addition that overflowed, or a timer that could not take
//! the instant, would panic the connection's task and every call on it. Each call must be
//! answered as if it had no deadline (or `DEADLINE_EXCEEDED` for the microsecond), on the same
//! connection, with a well-behaved client served throughout (`edges.rs` and `wire.rs` cover
//! odd frames and malformed OPENs; none named a deadline until now).

use crate::raw::{
    block, connect, frame, goaway, send, server_frames, ServerFrame, ECHO_PATH, END, END_STREAM,
    MESSAGE, OPEN, PREFACE,
};
use crate::support::{bounded, fresh_call, start_echo, EchoImpl, Witness};
use prost::Message as _;
use sockrpc_tests::echo::{EchoReply, EchoRequest, SleepRequest};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const SLEEP_PATH: &[u8] = b"/sockrpc.test.Echo/Sleep";
/// `FLAG_MESSAGE`: the request is folded into the OPEN.
const FOLDED: u8 = 0x20;
const DEADLINE_EXCEEDED: u32 = 4;

/// An OPEN body with `timeout_us`, `path` and `metadata`.
fn open_body(timeout_us: u64, path: &[u8], metadata: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = timeout_us.to_be_bytes().to_vec();
    out.extend_from_slice(&(path.len() as u16).to_be_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(&block(metadata));
    out
}

/// A unary OPEN with its request folded in.
fn folded(
    call_id: u32,
    timeout_us: u64,
    path: &[u8],
    meta: &[(&[u8], &[u8])],
    msg: &[u8],
) -> Vec<u8> {
    let mut body = open_body(timeout_us, path, meta);
    body.extend_from_slice(msg);
    frame(OPEN, FOLDED | END_STREAM, call_id, &body)
}

fn echo(id: u64) -> Vec<u8> {
    EchoRequest {
        payload: id.to_be_bytes().to_vec().into(),
        id,
    }
    .encode_to_vec()
}

fn sleep(millis: u64) -> Vec<u8> {
    SleepRequest {
        millis,
        token: String::new(),
    }
    .encode_to_vec()
}

/// Reads until every call of `ids` has its answer: (code, the echoed id if any) per call.
/// `got` holds what the server sent so far on this connection, its preface first.
async fn answers(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    ids: &[u32],
) -> Vec<(u32, Option<u64>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let frames: Vec<ServerFrame> = bounded("every answer", async {
        loop {
            let frames = server_frames(got);
            if let Some(reason) = goaway(&frames) {
                panic!("GOAWAY instead of answers: {reason:?}");
            }
            let ended = |id: u32| {
                frames.iter().any(|f| {
                    f.call_id == id && (f.kind == END || (f.kind == MESSAGE && f.flags & 0x10 != 0))
                })
            };
            if ids.iter().all(|&id| ended(id)) {
                return frames;
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection: {frames:?}");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    ids.iter()
        .map(|&id| {
            let reply = frames
                .iter()
                .find(|f| f.call_id == id && f.kind == MESSAGE)
                .map(|f| EchoReply::decode(&f.body[..]).expect("a reply").id);
            let code = frames
                .iter()
                .find(|f| f.call_id == id && f.kind == END)
                .map_or(0, |f| {
                    u32::from_be_bytes([f.body[0], f.body[1], f.body[2], f.body[3]])
                });
            (code, reply)
        })
        .collect()
}

/// Absurd deadlines, folded and not, in the OPEN and in metadata: each call is answered as
/// if it had none, the microsecond one ends `DEADLINE_EXCEEDED`, and the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_deadlines_are_served_on_the_same_connection() {
    let server = start_echo(EchoImpl::default());
    let witness = Witness::start(server.addr).await;
    let mut stream = connect(server.addr).await;
    let huge = u64::MAX;
    let past_i64 = i64::MAX as u64 + 1;
    let nines: &[(&[u8], &[u8])] = &[(b"grpc-timeout", b"99999999H")];
    // Call 3: an OPEN that waits for its MESSAGE (`open.rs` keeps its deadline meanwhile).
    let waiting = frame(OPEN, 0, 3, &open_body(huge, SLEEP_PATH, &[]));
    let message = frame(MESSAGE, END_STREAM, 3, &sleep(10));
    send(
        &mut stream,
        &[
            PREFACE,
            &folded(1, huge, ECHO_PATH, &[], &echo(1)),
            &waiting,
            &folded(5, past_i64, SLEEP_PATH, &[], &sleep(20)),
            &folded(7, huge, ECHO_PATH, nines, &echo(7)),
            &folded(9, 0, ECHO_PATH, nines, &echo(9)),
            &folded(11, 1, SLEEP_PATH, &[], &sleep(60_000)),
        ],
    )
    .await;
    send(&mut stream, &[&message]).await;
    let mut seen = Vec::new();
    let got = answers(&mut stream, &mut seen, &[1, 3, 5, 7, 9, 11]).await;
    assert_eq!(got[0], (0, Some(1)), "echo, timeout u64::MAX µs");
    assert_eq!(
        got[1].0, 0,
        "sleep waiting for its message, timeout u64::MAX µs"
    );
    assert_eq!(got[2].0, 0, "sleep, timeout past i64::MAX µs");
    assert_eq!(
        got[3],
        (0, Some(7)),
        "echo, timeout u64::MAX µs and grpc-timeout 99999999H"
    );
    assert_eq!(
        got[4],
        (0, Some(9)),
        "echo, no timeout and grpc-timeout 99999999H"
    );
    assert_eq!(got[5].0, DEADLINE_EXCEEDED, "sleep of 60 s, timeout 1 µs");
    // The connection still serves, and so does the server.
    send(&mut stream, &[&folded(13, huge, ECHO_PATH, &[], &echo(13))]).await;
    assert_eq!(
        answers(&mut stream, &mut seen, &[13]).await[0],
        (0, Some(13))
    );
    drop(stream);
    fresh_call(server.addr, 2).await;
    witness.finish().await;
    server.stop().await;
}
