//! A status whose details or trailing metadata are over what the server sends: the status still
//! goes, with its code and the handler's own message, and the message says what was dropped.
//! (The message used to be replaced by "status details too large to send; dropped", losing the
//! handler's words; trailers over the metadata limit went without a word.) tonic fails such a
//! call on the HTTP/2 header list size instead; the client here still learns the handler's code.

use crate::support::{bounded, channel, serve};
use bytes::Bytes;
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};

/// Past the 32 KiB of details an END carries.
const DETAILS: usize = 40 * 1024;
/// Past the server's 16 KiB metadata limit.
const TRAILER: usize = 20 * 1024;

struct Svc;

impl Test for Svc {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        if request.metadata().contains_key("x-big-trailer") {
            let mut status = Status::failed_precondition("account locked");
            status
                .metadata_mut()
                .insert_str("x-reason", &"r".repeat(TRAILER))
                .expect("ascii");
            return Err(status);
        }
        Err(Status::with_details(
            Code::FailedPrecondition,
            "account locked",
            Bytes::from(vec![7u8; DETAILS]),
        ))
    }
}

#[tokio::test]
async fn details_or_trailers_too_large_keep_the_code_and_the_handlers_message() {
    let server = serve(Server::builder().add_service(TestServer::new(Svc)));
    let mut client = TestClient::new(channel(server.addr).await);
    for round in 0..2 {
        // Twice each: the connection carries on after it.
        let err = bounded("details", client.unary_call(Request::new(Input {})))
            .await
            .expect_err("the handler fails");
        assert_eq!(err.code(), Code::FailedPrecondition, "round {round}");
        assert!(err.details().is_empty());
        assert!(
            err.message()
                .starts_with("account locked [status details of 40960 bytes"),
            "{}",
            err.message()
        );
        let mut request = Request::new(Input {});
        request
            .metadata_mut()
            .insert_str("x-big-trailer", "1")
            .expect("ascii");
        let err = bounded("trailers", client.unary_call(request))
            .await
            .expect_err("the handler fails");
        assert_eq!(err.code(), Code::FailedPrecondition, "round {round}");
        assert!(!err.metadata().contains_key("x-reason"));
        assert!(
            err.message()
                .starts_with("account locked [trailing metadata dropped: "),
            "{}",
            err.message()
        );
    }
    server.stop().await;
}
