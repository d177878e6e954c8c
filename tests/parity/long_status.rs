//! tonic's `http2_max_header_list_size.rs`: a status message of 20,000 bytes reaches the
//! client whole once the limit on it is raised (tonic raises the client's HTTP/2 header list
//! size; sockrpc's limit is the server's `max_status_message_size`, 16 KiB by default, at
//! most 30 KiB), with the answer's other fields intact. Under the default a longer message is
//! cut and marked (`tests/tonic/limits.rs`).

use crate::support::{bounded, channel, serve};
use sockrpc::{Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};

/// tonic's length: past the 16 KiB default.
const N: usize = 20_000;

fn long_message() -> String {
    "a".repeat(N)
}

struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Err(Status::internal(long_message()))
    }
}

#[tokio::test]
async fn a_long_status_message_arrives_whole_under_a_raised_limit() {
    let server = serve(
        Server::builder()
            .max_status_message_size(N * 3 / 2)
            .add_service(TestServer::new(Svc)),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    for _ in 0..2 {
        // Twice: the connection carries on after it.
        let err = bounded("unary", client.unary_call(Request::new(Input {})))
            .await
            .expect_err("the handler fails");
        assert_eq!(err.code(), Code::Internal);
        assert_eq!(err.message(), long_message());
    }
    server.stop().await;
}
