//! A unary call's deadline covers the whole call: sending a large request to a server that
//! reads it slowly, and receiving a large answer that arrives slowly (in one frame or in
//! pieces). The server is written by hand on its own thread (blocking sockets, real clock), so
//! that each transfer takes far longer than the deadline; the call must fail
//! `DEADLINE_EXCEEDED` near its deadline, never succeed after the transfer ends.

use super::ClientConnection;
use bytes::{BufMut, Bytes, BytesMut};
use sockrpc_protocol::frame::{self, CAP_PIECES, FLAG_END_OK, FLAG_END_STREAM, FLAG_MORE, PREFACE};
use sockrpc_protocol::{Code, Limits, MethodPath, Request};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// 4 MiB less room for the frame headers: the default message limit.
const SIZE: usize = 4 * 1024 * 1024 - 1024;
/// The call's deadline.
const DEADLINE: Duration = Duration::from_millis(2);
/// Longer than the deadline by far, shorter than any slow transfer below (each ≥ 1.2 s).
const LATE: Duration = Duration::from_millis(600);
/// No server thread runs longer.
const SERVER_FOR: Duration = Duration::from_secs(4);

/// What the hand-written server is slow at.
#[derive(Clone, Copy)]
enum Slow {
    /// Reads the request 16 KiB per 5 ms.
    Reading,
    /// Reads the request at once, then sends a 4 MiB answer in one frame, 16 KiB per 5 ms.
    AnswerFrame,
    /// As `AnswerFrame`, in 64 KiB pieces (`FLAG_MORE`), one per 20 ms.
    AnswerPieces,
}

fn slow_server(slow: Slow) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        let started = std::time::Instant::now();
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&PREFACE);
        frame::encode_settings(&mut hello, CAP_PIECES, 100);
        if socket.write_all(&hello).is_err() {
            return;
        }
        if let Slow::Reading = slow {
            let mut chunk = vec![0u8; 16 * 1024];
            while started.elapsed() < SERVER_FOR {
                if !matches!(socket.read(&mut chunk), Ok(n) if n > 0) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            return;
        }
        // Drain the request (and anything after) on a thread of its own.
        let read = Arc::new(AtomicUsize::new(0));
        let Ok(mut reader) = socket.try_clone() else {
            return;
        };
        let counted = Arc::clone(&read);
        std::thread::spawn(move || {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n @ 1..) = reader.read(&mut sink) {
                counted.fetch_add(n, Ordering::Relaxed);
            }
        });
        while read.load(Ordering::Relaxed) < SIZE && started.elapsed() < SERVER_FOR {
            std::thread::sleep(Duration::from_millis(1));
        }
        let body = vec![7u8; SIZE];
        let mut answer = BytesMut::new();
        let (chunk, pause) = match slow {
            Slow::AnswerPieces => {
                let mut pieces = body.chunks(frame::PIECE).peekable();
                while let Some(piece) = pieces.next() {
                    let flags = if pieces.peek().is_some() {
                        FLAG_MORE
                    } else {
                        FLAG_END_STREAM | FLAG_END_OK
                    };
                    frame::encode_message_head_flags(&mut answer, 1, flags, piece.len());
                    answer.put_slice(piece);
                }
                (frame::HEADER_LEN + frame::PIECE, Duration::from_millis(20))
            }
            _ => {
                frame::encode_message_end_ok(&mut answer, 1, false, &body);
                (16 * 1024, Duration::from_millis(5))
            }
        };
        for part in answer.chunks(chunk) {
            if started.elapsed() > SERVER_FOR || socket.write_all(part).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    addr
}

/// Runs one 4 MiB unary call with a 2 ms deadline against `slow`; its result's code and how
/// long after its start it returned.
async fn call_against(slow: Slow) -> (Result<(), Code>, Duration) {
    let addr = slow_server(slow);
    let socket = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let conn = ClientConnection::spawn_tcp(socket, Limits::default());
    tokio::time::timeout(Duration::from_secs(10), conn.ready())
        .await
        .expect("handshake in time")
        .expect("handshake");
    let mut request = Request::new(Bytes::from(vec![1u8; SIZE]));
    request.set_timeout(DEADLINE);
    let start = tokio::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        conn.unary(MethodPath::from_static("/t.S/Big"), request),
    )
    .await
    .expect("the call ends");
    let took = start.elapsed();
    (result.map(drop).map_err(|status| status.code()), took)
}

fn check(slow: Slow, (result, took): (Result<(), Code>, Duration)) {
    let what = match slow {
        Slow::Reading => "request read slowly",
        Slow::AnswerFrame => "answer sent slowly in one frame",
        Slow::AnswerPieces => "answer sent slowly in pieces",
    };
    eprintln!("{what}: {result:?} after {took:?} (deadline {DEADLINE:?})");
    assert_eq!(result, Err(Code::DeadlineExceeded), "{what}");
    assert!(
        took < LATE,
        "{what}: returned {took:?} after a {DEADLINE:?} deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_covers_sending_a_large_request() {
    check(Slow::Reading, call_against(Slow::Reading).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_covers_a_large_answer_in_one_frame() {
    check(Slow::AnswerFrame, call_against(Slow::AnswerFrame).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_covers_a_large_answer_in_pieces() {
    check(Slow::AnswerPieces, call_against(Slow::AnswerPieces).await);
}

#[tokio::test]
async fn deadline_covers_a_large_answer_in_one_frame_single_thread() {
    check(Slow::AnswerFrame, call_against(Slow::AnswerFrame).await);
}
