//! Calls opened before the server stopped reading are not expired for the server's own pause.
//!
//! A unary call whose OPEN came without its MESSAGE waits at most a frame timeout for it
//! (`server/open.rs`). The server stops reading a client that does not read its answers (its
//! write buffer past the high-water mark, `server/conn.rs`), and the MESSAGE may then be sitting
//! unread in the socket, or unsent behind it: before, the calls were cancelled ("the request
//! message ... did not arrive") a frame timeout after their OPEN, however long the pause, and
//! soon after reading resumed. The frame timeout now counts afresh from each look during the
//! pause, and from when reading resumes. On tokio's paused clock.

use crate::raw::{connect, echo_message, frame, open, send, ECHO_PATH, END, MESSAGE, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl};
use crate::unread_answers::GROW_PATH;
use prost::Message as _;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, GrowRequest};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The server's frame timeout.
const FRAME: Duration = Duration::from_millis(500);
/// How long the client does not read: past four frame timeouts, and 400 ms past the fourth,
/// so that the server's last look during the pause came 400 ms before reading resumes.
const UNREAD: Duration = Duration::from_millis(4 * 500 + 400);
/// How long the client takes to send the requests once its answers came: within a frame
/// timeout of the server's reading again, past one of its last look during the pause.
const LATER: Duration = Duration::from_millis(300);
/// `Grow` calls of 1 MiB answers each: far past the 8 MiB high-water mark and the sockets'
/// buffers.
const GROWS: u32 = 64;
/// The calls opened without their MESSAGE: ids 1 and 2 (the `Grow` calls follow from 3).
const WAITING: [u32; 2] = [1, 2];

/// What the client read from the server: the END codes by call, and the bodies of the
/// MESSAGEs of the waiting calls (the `Grow` answers' are skipped).
#[derive(Default)]
struct Read {
    pending: Vec<u8>,
    /// Body bytes of the current frame still to skip.
    skip: usize,
    preface: bool,
    ends: Vec<(u32, u32)>,
    messages: Vec<(u32, Vec<u8>)>,
}

impl Read {
    /// Reads until `done`, within 256 MiB.
    async fn until(&mut self, stream: &mut TcpStream, done: impl Fn(&Read) -> bool) {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0usize;
        while !done(self) {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "the server closed the connection: ends {:?}",
                self.ends
            );
            total += n;
            assert!(total < 256 << 20, "the server sent too much");
            let mut chunk = &buf[..n];
            let skipped = self.skip.min(chunk.len());
            self.skip -= skipped;
            chunk = &chunk[skipped..];
            self.pending.extend_from_slice(chunk);
            self.frames();
        }
    }

    /// Takes the whole frames in `pending`, skipping the bodies of the ones not kept.
    fn frames(&mut self) {
        if !self.preface && self.pending.len() >= PREFACE.len() {
            assert_eq!(&self.pending[..PREFACE.len()], PREFACE);
            self.pending.drain(..PREFACE.len());
            self.preface = true;
        }
        while self.preface && self.skip == 0 && self.pending.len() >= 12 {
            let len = u32::from_be_bytes(self.pending[..4].try_into().expect("4")) as usize;
            let kind = self.pending[4];
            let call_id = u32::from_be_bytes(self.pending[8..12].try_into().expect("4"));
            let kept = (kind == END || WAITING.contains(&call_id)) && len < 1 << 16;
            if kept {
                if self.pending.len() < 12 + len {
                    return;
                }
                let body = self.pending[12..12 + len].to_vec();
                if kind == END {
                    let code = u32::from_be_bytes(body[..4].try_into().expect("4"));
                    self.ends.push((call_id, code));
                } else if kind == MESSAGE {
                    self.messages.push((call_id, body));
                }
                self.pending.drain(..12 + len);
            } else {
                let have = (self.pending.len() - 12).min(len);
                self.skip = len - have;
                self.pending.drain(..12 + have);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn calls_waiting_for_their_request_outlast_the_servers_pause() {
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .frame_timeout(FRAME)
            .idle_timeout(None)
            .keepalive(None)
            .add_service(EchoServer::new(EchoImpl::default()))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = connect(server.addr).await;
    // Two OPENs without their MESSAGE, then calls whose answers the client does not read.
    let mut calls = PREFACE.to_vec();
    for call_id in WAITING {
        calls.extend_from_slice(&open(call_id, ECHO_PATH, &[]));
    }
    let grow = GrowRequest { size: 1 << 20 }.encode_to_vec();
    for call_id in 3..3 + GROWS {
        calls.extend_from_slice(&open(call_id, GROW_PATH, &[]));
        calls.extend_from_slice(&frame(MESSAGE, 1, call_id, &grow));
    }
    send(&mut stream, &[&calls]).await;
    // The first answers came: the server read the calls, and stopped reading in that pass.
    bounded("the first answers", stream.readable())
        .await
        .expect("readable");
    tokio::time::sleep(UNREAD).await;
    // Every `Grow` answer, and no END for the waiting calls.
    let mut read = Read::default();
    bounded(
        "the answers",
        read.until(&mut stream, |read| read.ends.len() >= GROWS as usize),
    )
    .await;
    assert!(
        read.ends.iter().all(|(id, _)| !WAITING.contains(id)),
        "a waiting call ended while the server did not read: {:?}",
        read.ends
    );
    assert!(
        read.ends.iter().all(|&(_, code)| code == 0),
        "{:?}",
        read.ends
    );
    // The requests come a while after the answers: within a frame timeout of reading again.
    tokio::time::sleep(LATER).await;
    let messages: Vec<Vec<u8>> = WAITING
        .iter()
        .map(|&call_id| echo_message(call_id, u64::from(call_id), b"late"))
        .collect();
    send(&mut stream, &[&messages[0], &messages[1]]).await;
    bounded(
        "the waiting calls' answers",
        read.until(&mut stream, |read| {
            read.ends.len() >= GROWS as usize + WAITING.len()
        }),
    )
    .await;
    let ends = &read.ends[GROWS as usize..];
    assert!(
        ends.iter().all(|&(_, code)| code == 0),
        "the waiting calls were not answered OK (1: CANCELLED): {ends:?}"
    );
    for call_id in WAITING {
        let (_, body) = read
            .messages
            .iter()
            .find(|(id, _)| *id == call_id)
            .unwrap_or_else(|| panic!("no answer MESSAGE for call {call_id}"));
        let reply = EchoReply::decode(&body[..]).expect("the answer decodes");
        assert_eq!(
            (reply.id, &reply.payload[..]),
            (u64::from(call_id), &b"late"[..])
        );
    }
    drop(stream);
    server.stop().await;
}
