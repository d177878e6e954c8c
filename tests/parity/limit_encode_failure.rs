//! tonic's `Endpoint::concurrency_limit` with a request that fails to encode: tonic's client
//! calls its service once `ready()` has taken a place under the limit, and the encoding runs
//! inside that call (the body), so a failed encoding ends a call that gives its place back.
//! `Client::unary` took the place first too (`poll_ready`, since f16a7b7) but returned the
//! encoding's error without a call, the place still held by that client's channel: with a
//! limit of one, every other clone's call waited for a client that had made no call, for as
//! long as it lived.

use crate::support::{bounded, channel_with, serve};
use bytes::Bytes;
use bytes::BytesMut;
use sockrpc::transport::Server;
use sockrpc::{Code, Request, Response, Status};
use sockrpc::{Codec, ProstCodec};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};

/// Answers every call at once.
struct Quick;

impl Test for Quick {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

/// A codec whose requests never encode (a message its encoder refuses); answers decode.
#[derive(Clone)]
struct Refusing;

impl Codec<Input> for Refusing {
    fn encode(&self, _: &Input, _: &mut BytesMut) -> Result<(), Status> {
        Err(Status::internal("this request does not encode"))
    }

    fn decode(&self, src: Bytes) -> Result<Input, Status> {
        Codec::<Input>::decode(&ProstCodec, src)
    }
}

impl Codec<Output> for Refusing {
    fn encode(&self, item: &Output, dst: &mut BytesMut) -> Result<(), Status> {
        ProstCodec.encode(item, dst)
    }

    fn decode(&self, src: Bytes) -> Result<Output, Status> {
        Codec::<Output>::decode(&ProstCodec, src)
    }
}

#[tokio::test]
async fn a_request_that_fails_to_encode_holds_no_place_under_the_limit() {
    let server = serve(Server::builder().add_service(TestServer::new(Quick)));
    let channel = channel_with(server.addr, |endpoint| endpoint.concurrency_limit(1)).await;
    let mut failing = sockrpc::Client::new(channel.clone());
    for _ in 0..2 {
        let request = Request::new(Input {});
        let status = bounded(
            "the call that does not encode",
            failing.unary::<Input, Output, _>(request, "/test.Test/UnaryCall", Refusing),
        )
        .await
        .expect_err("the request does not encode");
        assert_eq!(status.code(), Code::Internal, "{status:?}");
    }
    // That client is still held (a struct field, say) while another clone calls.
    let mut other = TestClient::new(channel.clone());
    bounded(
        "a call on another clone, under a limit no call holds",
        other.unary_call(Input {}),
    )
    .await
    .expect("answered");
    drop(failing);
    server.stop().await;
}
