//! A split message must arrive at the server's floor rate as a whole
//! (`ServerConfig::min_message_rate`), not only piece by piece.
//!
//! Each piece restarts the frame clock, and a piece before the last is at least `MIN_PIECE`
//! (16 KiB): so a client sending one such piece just inside each frame timeout held an
//! assembly open, and its memory growing to the 4 MiB limit, for 256 frame timeouts (over
//! two hours at the default 30 s). Now the message is due within a frame timeout plus its
//! length at the floor, since its first piece was seen, or the connection is closed with a
//! GOAWAY saying so; a merely slow upload above the floor is still answered.
//!
//! On tokio's paused clock (server and client in one runtime): after each piece the client
//! PINGs and waits for the PONG, so the server has read the piece before the clock moves on.

use crate::raw::{
    connect, frame, goaway, open, send, server_frames, ServerFrame, ECHO_PATH, END, END_STREAM,
    MESSAGE, PING, PREFACE,
};
use crate::server_probe::PONG;
use crate::support::{bounded, start_serving, EchoImpl, Running};
use crate::unread_answers::GROW_PATH;
use prost::Message as _;
use sockrpc::server::{PingPolicy, ServerConfig};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest, GrowRequest};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

const MORE: u8 = 0x02;
/// `sockrpc_protocol::frame::MIN_PIECE`.
const MIN_PIECE: usize = 16 * 1024;
const DEADLINE_EXCEEDED: u32 = 4;
const FRAME: Duration = Duration::from_secs(1);
/// The floor under test: 64 KiB/s.
const RATE: u64 = 64 * 1024;

/// An echo server with a frame timeout of [`FRAME`], a floor of [`RATE`], and PINGs allowed as
/// often as the client likes (they are the test's sync points).
fn start() -> Running {
    let mut config = ServerConfig::default();
    config.frame_timeout = FRAME;
    config.min_message_rate = RATE;
    config.idle_timeout = None;
    config.keepalive = None;
    let mut pings = PingPolicy::default();
    pings.min_interval = Duration::ZERO;
    pings.permit_without_calls = true;
    pings.max_strikes = u32::MAX;
    config.ping_policy = pings;
    start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .config(config)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    })
}

/// Reads what the server sends into `got` until `done` holds of its frames; `false` if the
/// server closed the connection first.
async fn read_until(
    stream: &mut TcpStream,
    got: &mut Vec<u8>,
    done: impl Fn(&[ServerFrame]) -> bool,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    // Bounded: each read takes at least one byte, and the server sends a few MiB at most.
    for _ in 0..100_000 {
        if done(&server_frames(got)) {
            return true;
        }
        match bounded("read", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    panic!("not answered: {:?}", server_frames(got));
}

/// Sends `piece` (a whole MESSAGE frame) and a PING, and waits for its PONG: the server has
/// then read the piece. `false` if the server closed the connection instead.
async fn piece_then_pong(stream: &mut TcpStream, got: &mut Vec<u8>, piece: &[u8], n: u64) -> bool {
    let payload = n.to_be_bytes();
    let ping = frame(PING, 0, 0, &payload);
    let written = tokio::io::AsyncWriteExt::write_all(stream, &[piece, &ping].concat()).await;
    written.is_ok()
        && read_until(stream, got, |frames| {
            frames
                .iter()
                .any(|f| f.kind == PONG && f.body[..] == payload[..])
        })
        .await
}

/// Whether the server closed the connection or sent something (its GOAWAY) while the client
/// slept: read what is there without waiting for more.
async fn closed_meanwhile(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_millis(1), stream.read(&mut buf)).await {
        Err(_) => false,
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => {
            got.extend_from_slice(&buf[..n]);
            // The GOAWAY, then the close: read to it.
            read_until(stream, got, |_| false).await;
            true
        }
    }
}

#[tokio::test(start_paused = true)]
async fn pieces_dripped_one_per_frame_timeout_meet_the_floor_on_the_whole_message() {
    let server = start();
    let mut stream = connect(server.addr).await;
    send(&mut stream, &[&PREFACE[..], &open(1, ECHO_PATH, &[])]).await;
    let piece = frame(MESSAGE, MORE, 1, &[0u8; MIN_PIECE]);
    let mut got = Vec::new();
    let first = Instant::now();
    // 40 pieces, one every 0.9 frame timeouts: 36 frame timeouts, 640 KiB at 18 KiB/s. Due,
    // at 64 KiB/s, within 1 s + a quarter second per piece: closed at the second or third.
    let mut sent = 0u64;
    let mut closed = false;
    for n in 0..40 {
        if !piece_then_pong(&mut stream, &mut got, &piece, n).await {
            closed = true;
            break;
        }
        sent += 1;
        tokio::time::sleep(FRAME * 9 / 10).await;
        if closed_meanwhile(&mut stream, &mut got).await {
            closed = true;
            break;
        }
    }
    let frames = server_frames(&got);
    assert!(
        closed,
        "an assembly fed one 16 KiB piece per frame timeout was still open after {sent} \
         pieces, {:?} ({} frames from the server, no GOAWAY)",
        first.elapsed(),
        frames.len()
    );
    let (code, reason) = goaway(&frames).unwrap_or_else(|| panic!("no GOAWAY: {frames:?}"));
    assert_eq!(code, DEADLINE_EXCEEDED, "{reason}");
    assert!(reason.contains("message not completed in time"), "{reason}");
    // Due at 1 s + (pieces read) x 0.25 s: never before a frame timeout, and well before
    // the pieces' own frame clocks would ever have closed it.
    let closed_at = first.elapsed();
    assert!(closed_at >= FRAME, "closed after {closed_at:?}");
    assert!(sent <= 4, "closed after {sent} pieces, {closed_at:?}");
    drop(stream);
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_upload_above_the_floor_is_answered() {
    let server = start();
    let mut stream = connect(server.addr).await;
    let body = EchoRequest {
        payload: vec![7u8; 1 << 20].into(),
        id: 9,
    }
    .encode_to_vec();
    send(&mut stream, &[&PREFACE[..], &open(1, ECHO_PATH, &[])]).await;
    let mut got = Vec::new();
    // 1 MiB in 64 KiB pieces, one every 0.9 s (71 KiB/s, over 14 frame timeouts): above the
    // floor, so due within 1 s + 16 s, and answered.
    let pieces: Vec<&[u8]> = body.chunks(64 * 1024).collect();
    for (n, chunk) in pieces.iter().enumerate() {
        let last = n + 1 == pieces.len();
        let flags = if last { END_STREAM } else { MORE };
        let piece = frame(MESSAGE, flags, 1, chunk);
        assert!(
            piece_then_pong(&mut stream, &mut got, &piece, n as u64).await,
            "closed at piece {n}: {:?}",
            server_frames(&got)
        );
        if !last {
            tokio::time::sleep(FRAME * 9 / 10).await;
        }
    }
    let answered = read_until(&mut stream, &mut got, |frames| {
        frames.iter().any(|f| f.call_id == 1 && f.kind == END)
    })
    .await;
    let frames = server_frames(&got);
    assert!(answered, "closed: {frames:?}");
    let reply = frames
        .iter()
        .find(|f| f.call_id == 1 && f.kind == MESSAGE)
        .map(|f| EchoReply::decode(&f.body[..]).expect("reply"))
        .unwrap_or_else(|| panic!("no answer: {frames:?}"));
    assert_eq!((reply.id, reply.payload.len()), (9, 1 << 20));
    drop(stream);
    server.stop().await;
}

/// The floor is folded into the frame deadline; a piece begun (its header read, its length
/// announced) moves the floor later but is no progress of the frame clock. The deadline kept
/// then was the old fold, the floor for the shorter length: when it fired, the message was not
/// late by its new length and the frame clock had not run out either, yet the connection was
/// closed, as "frame not completed in time".
#[tokio::test(start_paused = true)]
async fn a_piece_begun_moves_the_floor_without_closing_on_the_old_one() {
    let server = start();
    let mut stream = connect(server.addr).await;
    let body = EchoRequest {
        payload: vec![5u8; 300 * 1024].into(),
        id: 11,
    }
    .encode_to_vec();
    let chunks = [
        &body[..MIN_PIECE],
        &body[MIN_PIECE..2 * MIN_PIECE],
        &body[2 * MIN_PIECE..2 * MIN_PIECE + 256 * 1024],
        &body[2 * MIN_PIECE + 256 * 1024..],
    ];
    send(&mut stream, &[&PREFACE[..], &open(1, ECHO_PATH, &[])]).await;
    let mut got = Vec::new();
    let first = Instant::now();
    // 16 KiB at 0, 16 KiB at 0.9 s: the frame clock runs to 1.9 s, the floor (32 KiB at
    // 64 KiB/s) to 1.5 s.
    let piece = frame(MESSAGE, MORE, 1, chunks[0]);
    assert!(piece_then_pong(&mut stream, &mut got, &piece, 0).await);
    tokio::time::sleep(FRAME * 9 / 10).await;
    let piece = frame(MESSAGE, MORE, 1, chunks[1]);
    assert!(piece_then_pong(&mut stream, &mut got, &piece, 1).await);
    // At 1.4 s a 256 KiB piece begins: the floor moves to 1 s + 288 KiB at 64 KiB/s = 5.5 s;
    // the frame clock stays at 1.9 s.
    tokio::time::sleep_until(first + Duration::from_millis(1_400)).await;
    let piece = frame(MESSAGE, MORE, 1, chunks[2]);
    send(&mut stream, &[&piece[..2048]]).await;
    tokio::time::sleep_until(first + Duration::from_millis(1_600)).await;
    assert!(
        !closed_meanwhile(&mut stream, &mut got).await,
        "closed at {:?}, before both the frame clock (1.9 s) and the floor (5.5 s): {:?}",
        first.elapsed(),
        goaway(&server_frames(&got))
    );
    // The rest in time: answered.
    let last = frame(MESSAGE, END_STREAM, 1, chunks[3]);
    send(&mut stream, &[&piece[2048..], &last]).await;
    let answered = read_until(&mut stream, &mut got, |frames| {
        frames.iter().any(|f| f.call_id == 1 && f.kind == END)
    })
    .await;
    let frames = server_frames(&got);
    assert!(answered, "closed: {:?}", goaway(&frames));
    let reply = frames
        .iter()
        .find(|f| f.call_id == 1 && f.kind == MESSAGE)
        .map(|f| EchoReply::decode(&f.body[..]).expect("reply"))
        .unwrap_or_else(|| panic!("no answer: {frames:?}"));
    assert_eq!((reply.id, reply.payload.len()), (11, 300 * 1024));
    drop(stream);
    server.stop().await;
}

/// While the server does not read (its write buffer is past the high-water mark), the time
/// is the server's, not the client's: a split message's floor must not count it. It was
/// counted afresh only when the floor came due during the pause; a pause that ended before
/// was charged to the client whole.
#[tokio::test(start_paused = true)]
async fn time_the_server_stopped_reading_does_not_count_against_the_floor() {
    let server = start();
    let mut stream = connect(server.addr).await;
    let body = EchoRequest {
        payload: vec![3u8; 40 * 1024].into(),
        id: 12,
    }
    .encode_to_vec();
    send(&mut stream, &[&PREFACE[..], &open(1, ECHO_PATH, &[])]).await;
    let mut got = Vec::new();
    let first = Instant::now();
    // 16 KiB at 0: the floor (1 s + 16 KiB at 64 KiB/s) is at 1.25 s.
    let piece = frame(MESSAGE, MORE, 1, &body[..MIN_PIECE]);
    assert!(piece_then_pong(&mut stream, &mut got, &piece, 0).await);
    // 24 calls answered with 1 MiB each, not read: the server's write buffer passes its
    // high-water mark and it stops reading, the next 16 KiB piece (sent now) unread.
    let grow = GrowRequest { size: 1 << 20 }.encode_to_vec();
    let mut calls = Vec::new();
    for call_id in 2..26 {
        calls.extend_from_slice(&open(call_id, GROW_PATH, &[]));
        calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
    }
    let piece = frame(MESSAGE, MORE, 1, &body[MIN_PIECE..2 * MIN_PIECE]);
    let ping = frame(PING, 0, 0, &1u64.to_be_bytes());
    send(&mut stream, &[&calls, &piece, &ping]).await;
    // At 0.9 s the client reads: the server goes on, and reads the piece. It stopped reading
    // for 0.9 s, so the message (32 KiB) is due at 0.9 s + 1 s + 0.5 s, not at 1.5 s.
    tokio::time::sleep_until(first + Duration::from_millis(900)).await;
    assert!(
        read_until(&mut stream, &mut got, |frames| {
            frames
                .iter()
                .any(|f| f.kind == PONG && f.body[..] == 1u64.to_be_bytes())
        })
        .await
    );
    // Nothing follows the PONG yet: keep only the preface, not the 24 MiB of answers.
    got = PREFACE.to_vec();
    tokio::time::sleep_until(first + Duration::from_millis(1_600)).await;
    assert!(
        !closed_meanwhile(&mut stream, &mut got).await,
        "closed at {:?}: {:?}",
        first.elapsed(),
        goaway(&server_frames(&got))
    );
    let last = frame(MESSAGE, END_STREAM, 1, &body[2 * MIN_PIECE..]);
    send(&mut stream, &[&last]).await;
    let answered = read_until(&mut stream, &mut got, |frames| {
        frames.iter().any(|f| f.call_id == 1 && f.kind == END)
    })
    .await;
    assert!(answered, "closed: {:?}", goaway(&server_frames(&got)));
    drop(stream);
    server.stop().await;
}
