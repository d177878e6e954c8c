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

use crate::memory::{child_serving, CHILD_ENV};
use crate::unread_answers::{sends_calls_then_reads_late, ANSWER};
use sockrpc::{Request, Response, Status};
use sockrpc_tests::child::{test_name, ChildServer};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::time::Duration;

/// How long each `Grow` waits before its answer (200 calls of 1 MiB each, as
/// `unread_answers.rs` sends them).
const WAIT: Duration = Duration::from_millis(50);

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
    sends_calls_then_reads_late(
        &child,
        "200 unread 1 MiB answers of handlers that waited (peak RSS)",
    );
    child.finish();
}
