//! A one-message answer the server's transport refuses for its size is logged with the code
//! the client got. The transport's DEBUG `rpc` span records each call's code and time when it
//! ends ("call finished"). It recorded the handler's `OK` before the answer was encoded, so an
//! answer over `max_encoding_message_size`, which the client gets as `RESOURCE_EXHAUSTED`, was
//! logged `status=OK`. It is recorded once the answer's fate is known now, both for a handler
//! answered on the connection's task and for one that waited in a task of its own.

use crate::support::{bounded, start_serving};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::logs::LogBuffer;

/// The largest answer message the server sends.
const MAX_SEND: usize = 1_000;

/// `Grow` answers `size` bytes, after a wait when `size` is odd (so its handler finishes in a
/// task of its own) and at once when it is even (on the connection's task).
struct Grower;

impl Echo for Grower {
    async fn echo(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("echo"))
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("sleep"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("fail"))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(4 * MAX_SEND as u64) as usize;
        if size % 2 == 1 {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        Ok(Response::new(EchoReply {
            payload: vec![0x5A; size].into(),
            id: 0,
        }))
    }
}

/// The `status` of every "call finished" line logged for `Grow`.
fn finished_codes(log: &LogBuffer) -> Vec<String> {
    log.text()
        .lines()
        .filter(|line| line.contains("call finished") && line.contains("/Grow"))
        .map(|line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix("status="))
                .unwrap_or("(none)")
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_answer_refused_for_its_size_is_logged_with_the_code_the_client_got() {
    // The server's tasks log on this thread: the test runs on a current-thread runtime.
    let log = LogBuffer::new();
    let _installed =
        tracing::subscriber::set_default(log.subscriber(tracing::Level::DEBUG).finish());
    let server = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            .max_encoding_message_size(MAX_SEND)
            .add_service(EchoServer::new(Grower))
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut client = bounded("connect", EchoClient::connect(server.addr.to_string()))
        .await
        .expect("connects");
    // Too large at once, too large after a wait, then one that fits.
    for size in [2 * MAX_SEND, 2 * MAX_SEND + 1] {
        let status = bounded(
            "a call answered too large",
            client.grow(GrowRequest { size: size as u64 }),
        )
        .await
        .expect_err("an answer over the server's send limit is refused");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    }
    let reply = bounded("a call that fits", client.grow(GrowRequest { size: 10 }))
        .await
        .expect("an answer under the limit goes out")
        .into_inner();
    assert_eq!(reply.payload.len(), 10);
    server.stop().await;

    assert_eq!(
        finished_codes(&log),
        ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", "OK"],
        "each call's code as its client got it:\n{}",
        log.text()
    );
}
