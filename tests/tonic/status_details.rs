//! tonic's `Status::details()` is `&[u8]`, and code written against it decodes the details
//! in place (`google.rpc.Status` through `prost::Message::decode(status.details())`, which
//! takes a `Buf`: a `&[u8]` is one, a `&Bytes` is not) or matches them as a slice. Both
//! compile here, and the details a handler set arrive whole across a real connection.

use crate::support::bounded;
use prost::Message;
use sockrpc::prost_types::Any;
use sockrpc::transport::{Channel, Server};
use sockrpc::{Code, Request, Response, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use sockrpc_tests::serve::Running;

const TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

fn details() -> Any {
    Any {
        type_url: TYPE_URL.into(),
        value: vec![0, 1, 2, 0xff],
    }
}

/// Fails every call with an encoded `Any` as the details.
struct Detailed;

impl Test for Detailed {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let details = details().encode_to_vec();
        Err(Status::with_details(
            Code::FailedPrecondition,
            "see details",
            details,
        ))
    }
}

#[tokio::test]
async fn details_decode_in_place_as_tonic_code_reads_them() {
    let server = Running::start(Server::builder().add_service(TestServer::new(Detailed)));
    let endpoint = Channel::from_shared(format!("tcp://{}", server.addr)).expect("uri");
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = TestClient::new(channel);
    let err = bounded("unary", client.unary_call(Request::new(Input {})))
        .await
        .expect_err("the handler fails");
    server.stop().await;

    assert_eq!(err.code(), Code::FailedPrecondition);
    let decoded = Any::decode(err.details()).expect("the details are an encoded Any");
    assert_eq!(decoded, details());
    let first_tag = match err.details() {
        [tag, ..] => *tag,
        [] => panic!("no details"),
    };
    assert_eq!(first_tag, 0x0a, "field 1 (type_url), length-delimited");
    // The shared buffer is there for code that keeps the details without a copy.
    assert_eq!(err.details_bytes().as_ref(), err.details());
}
