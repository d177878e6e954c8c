//! Small frames read in the same read buffer as a mid-sized one (between a 16 KiB chunk and
//! 64 KiB) must not keep that buffer alive: a stream's queued message counts its own bytes
//! against the connection window (`docs/FLOW-CONTROL.md`), and what it holds must be about
//! that. Before the fix only buffers past 64 KiB had their small frames copied out, so a client
//! that put a 48,000-byte MESSAGE for a call never opened (read, then dropped and credited)
//! before each 4 KiB message of a stream whose handler does not read, made each queued 4 KiB
//! message hold a buffer of about 60 KiB: 3,840 of them, 15 MiB under the 16 MiB window, held
//! over 200 MiB; and a unary request whose handler waits kept one so too. Measured as
//! `memory.rs` does: the resident size of a server in a child process.

use crate::edges::{end_code, until_end};
use crate::memory::{assert_growth, child_serving, parent_runtime, CHILD_ENV};
use crate::raw::{
    concat, connect, echo_message, frame, header, open, open_body, send, ECHO_PATH, END_STREAM,
    MESSAGE, OPEN, PREFACE,
};
use crate::stream_memory::unary;
use crate::stream_reset::{Holding, COLLECT_PATH};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::child::{memory_of, test_name, ChildServer};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_server::StreamerServer;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// The OPEN flag for a streamed request (docs/PROTOCOL.md, *Flags*).
const STREAM: u8 = 0x02;
/// Streams opened: each is sent up to 60 KiB, under its 64 KiB window.
const STREAMS: u32 = 256;

/// One attack: messages of `small` bytes queued on streams, each read right after a `filler`
/// for a call never opened, `per_stream` of them on each stream.
#[derive(Clone, Copy)]
struct Attack {
    small: usize,
    filler: usize,
    per_stream: u32,
}

impl Attack {
    /// What the queues count, in bytes (the 64 a message aside).
    fn queued(&self) -> u64 {
        u64::from(STREAMS * self.per_stream) * self.small as u64
    }
}

/// A connection with `streams` `Collect` streams (whose handler never reads), each sent the
/// messages of `attack`; every frame read once a unary call on the connection is answered.
async fn queued(addr: SocketAddr, streams: u32, attack: Attack) -> TcpStream {
    let mut stream = connect(addr).await;
    let mut opens = PREFACE.to_vec();
    for call_id in 1..=streams {
        opens.extend_from_slice(&frame(OPEN, STREAM, call_id, &open_body(COLLECT_PATH, &[])));
    }
    send(&mut stream, &[&opens]).await;
    let filler = vec![0x5A; attack.filler];
    let small = vec![0xA5; attack.small];
    let mut never_opened = 1_000_000;
    for _ in 0..attack.per_stream {
        let mut round = Vec::new();
        for call_id in 1..=streams {
            never_opened += 1;
            round.extend_from_slice(&concat(&[
                &header(attack.filler as u32, MESSAGE, 0, 0, never_opened),
                &filler,
                &header(attack.small as u32, MESSAGE, 0, 0, call_id),
                &small,
            ]));
        }
        send(&mut stream, &[&round]).await;
    }
    unary(&mut stream, streams + 1, true).await;
    stream
}

/// Runs `attack` on a child server (this binary re-run as `test`) and bounds what it holds.
fn held_by(test: &str, attack: Attack) {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(StreamerServer::new(Holding::default()))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(&test_name(module_path!(), test), CHILD_ENV);
    parent_runtime().block_on(async {
        // Warm up: the same on a few streams, closed again.
        drop(queued(child.addr, 16, attack).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());
        let mut stream = queued(child.addr, STREAMS, attack).await;
        // Twice what the queues count leaves room for the allocator and the handlers; a buffer
        // kept per message was five to twelve times it.
        let queued = attack.queued();
        assert_growth(
            &format!(
                "{} queued messages of {} bytes",
                STREAMS * attack.per_stream,
                attack.small
            ),
            before,
            memory_of(child.pid()),
            2 * queued,
            8 * queued,
        );
        // The connection still serves.
        unary(&mut stream, STREAMS + 3, false).await;
    });
    child.finish();
}

#[test]
fn queued_messages_do_not_pin_the_buffer_of_a_larger_frame_read_before_them() {
    // 3,840 messages of 4 KiB, 15 MiB: 211 MiB held before the fix (a 60 KiB buffer each,
    // which the reader copied frames out of only past 64 KiB).
    held_by(
        "queued_messages_do_not_pin_the_buffer_of_a_larger_frame_read_before_them",
        Attack {
            small: 4096,
            filler: 48_000,
            per_stream: 15,
        },
    );
}

#[test]
fn queued_messages_do_not_pin_a_buffer_of_two_chunks() {
    // 2,560 messages of 6,000 bytes, 14.6 MiB, each read after a 14,000-byte frame into a buffer
    // of about 30 KiB, under the size past which the reader copies frames out
    // (`reader::GROWN`): held whole by each message unless the queue copies it.
    held_by(
        "queued_messages_do_not_pin_a_buffer_of_two_chunks",
        Attack {
            small: 6000,
            filler: 14_000,
            per_stream: 10,
        },
    );
}

#[test]
fn queued_messages_past_a_quarter_of_two_chunks_do_not_pin_a_larger_buffer() {
    // 1,792 messages of 9,000 bytes, 15.4 MiB, each read after a 46,000-byte frame into a
    // buffer of about 60 KiB: too large for the queue to copy, under a quarter of the buffer,
    // which the reader now copies them out of.
    held_by(
        "queued_messages_past_a_quarter_of_two_chunks_do_not_pin_a_larger_buffer",
        Attack {
            small: 9000,
            filler: 46_000,
            per_stream: 7,
        },
    );
}

/// An echo whose `Echo` holds its request for 30 s before it answers, as a handler that
/// waits on a database holds what it was sent.
pub(crate) struct HoldingEcho;

impl Echo for HoldingEcho {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("sleep"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::aborted("fail"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("grow"))
    }
}

/// Waiting unary calls: each request of 100 bytes read right after a frame of 48,000 bytes for
/// a call never opened.
const WAITING: u32 = 2000;

/// A connection with [`WAITING`] `Echo` calls waiting, each read after a filler; every frame
/// read once a `Fail` call behind them is answered.
async fn waiting(addr: SocketAddr, calls: u32) -> TcpStream {
    let mut stream = connect(addr).await;
    let filler = vec![0x5A; 48_000];
    let mut wire = PREFACE.to_vec();
    for call_id in 1..=calls {
        wire.extend_from_slice(&concat(&[
            &header(filler.len() as u32, MESSAGE, 0, 0, 1_000_000 + call_id),
            &filler,
            &open(call_id, ECHO_PATH, &[]),
            &echo_message(call_id, u64::from(call_id), &[0xA5; 100]),
        ]));
    }
    let fail = calls + 1;
    wire.extend_from_slice(&open(fail, b"/sockrpc.test.Echo/Fail", &[]));
    wire.extend_from_slice(&frame(MESSAGE, END_STREAM, fail, &[]));
    send(&mut stream, &[&wire]).await;
    let frames = until_end(&mut stream, &mut Vec::new(), fail).await;
    assert_eq!(end_code(&frames, fail), 10, "ABORTED, from the handler");
    stream
}

#[test]
fn waiting_requests_do_not_pin_the_buffer_of_a_larger_frame_read_before_them() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(EchoServer::new(HoldingEcho))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(
        &test_name(
            module_path!(),
            "waiting_requests_do_not_pin_the_buffer_of_a_larger_frame_read_before_them",
        ),
        CHILD_ENV,
    );
    parent_runtime().block_on(async {
        // Warm up: the same with a few calls, on a connection closed again (which ends them).
        drop(waiting(child.addr, 50).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = memory_of(child.pid());
        let _stream = waiting(child.addr, WAITING).await;
        // A request holds at most 32 KiB (`reader::GROWN`) or four times its size: 62.5 MiB
        // here at most; 125 MiB before the fix (a 64 KiB buffer each).
        assert_growth(
            "2,000 waiting requests of 100 bytes (RSS now)",
            before,
            memory_of(child.pid()),
            u64::from(WAITING) * 32 * 1024,
            4 * u64::from(WAITING) * 32 * 1024,
        );
    });
    child.finish();
}
