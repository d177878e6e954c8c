//! Answers of handlers that wait, to a client that never reads: the server holds at most its
//! write buffer's high-water mark and about one answer more (`server/room.rs`).
//!
//! `unread_answers.rs` covers answers made at once, while the server reads: it stops taking
//! frames once its write buffer passes the mark. Here every handler waits (50 ms) before its
//! answer of 1 MiB, so the server has read and started all 200 calls while its buffer was still
//! empty; each answer was then appended whatever the buffer held, and a client that never read
//! made the server hold all 200 (calls in flight × answer size; the default limit of calls in
//! flight, 4,096, with 4 MiB answers is 16 GiB). Measured as the peak resident size (VmHWM) of a
//! server in a child process (`memory.rs`'s), and every answer must still arrive once the client
//! reads.

use crate::memory::{
    assert_growth, child_serving, parent_runtime, peak_of, warm_baseline, CHILD_ENV, MIB,
};
use crate::raw::{connect, frame, open, END_STREAM, MESSAGE, PREFACE};
use crate::support::{bounded, fresh_call, Witness};
use crate::unread_answers::read_all_ends;
use prost::Message as _;
use sockrpc::{Request, Response, Status};
use sockrpc_tests::child::{test_name, ChildServer};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub(crate) const GROW_PATH: &[u8] = b"/sockrpc.test.Echo/Grow";
/// Calls sent at once, each answered [`ANSWER`] bytes after [`WAIT`]: 200 MiB in all.
const CALLS: u32 = 200;
const ANSWER: u64 = 1 << 20;
const WAIT: Duration = Duration::from_millis(50);
/// What the server may hold for this client: its 8 MiB high-water mark, one more answer, the
/// allocator's slack (as `unread_answers.rs`). Holding every answer would be 200 MiB.
const HELD: u64 = 48 * MIB;

/// An echo whose `Grow` waits a little before it answers, as a handler that asks a database.
pub(crate) struct SlowGrow;

impl Echo for SlowGrow {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(ANSWER) as usize;
        tokio::time::sleep(WAIT).await;
        Ok(Response::new(EchoReply {
            payload: vec![1; size].into(),
            id: 0,
        }))
    }
}

#[test]
fn answers_of_waiting_handlers_a_client_does_not_read_stay_bounded() {
    const TEST: &str = "answers_of_waiting_handlers_a_client_does_not_read_stay_bounded";
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_serving(|listener, shutdown| {
            sockrpc::Server::builder()
                .add_service(EchoServer::new(SlowGrow))
                .serve_with_listener_and_shutdown(listener, shutdown)
        });
    }
    let child = ChildServer::spawn(&test_name(module_path!(), TEST), CHILD_ENV);
    parent_runtime().block_on(async {
        let (_, virt_before) = warm_baseline(&child).await;
        let before = (peak_of(child.pid()).0, virt_before);
        let witness = Witness::start(child.addr).await;
        let mut calls = PREFACE.to_vec();
        let grow = GrowRequest { size: ANSWER }.encode_to_vec();
        for call_id in 1..=CALLS {
            calls.extend_from_slice(&open(call_id, GROW_PATH, &[]));
            calls.extend_from_slice(&frame(MESSAGE, END_STREAM, call_id, &grow));
        }
        let mut stream = connect(child.addr).await;
        bounded("write the calls", stream.write_all(&calls))
            .await
            .expect("write");
        // Long enough for every handler to have finished; stops early once the peak shows the
        // server holding them all.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if peak_of(child.pid()).0.saturating_sub(before.0) >= HELD {
                break;
            }
        }
        // The server goes on serving other connections meanwhile.
        fresh_call(child.addr, 300).await;
        let after = peak_of(child.pid());
        assert_growth(
            "200 unread 1 MiB answers of handlers that waited (peak RSS)",
            before,
            after,
            HELD,
            2 * HELD,
        );
        // Nothing was lost: once the client reads, every call is answered, in a bounded time
        // (generous: a debug build on a shared machine writes 200 MiB).
        let limit = u64::from(CALLS) * (ANSWER + 1024) + 1024;
        let codes = tokio::time::timeout(
            Duration::from_secs(60),
            read_all_ends(&mut stream, CALLS, limit),
        )
        .await
        .expect("every answer arrives once the client reads");
        assert!(codes.iter().all(|&c| c == 0), "END codes: {codes:?}");
        witness.finish().await;
        drop(stream);
        fresh_call(child.addr, 301).await;
    });
    child.finish();
}
