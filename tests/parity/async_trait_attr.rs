//! Every tonic service implementation carries `#[tonic::async_trait]` on its `impl` block
//! (tonic's generated traits are `async_trait` traits; `tests/emit_async_trait` is the one test
//! about it). Ported as `#[sockrpc::async_trait]`, the attribute is accepted and leaves the
//! impl as written, so implementations of every call shape compile unchanged and serve.

use crate::support::{bounded, channel, serve};
use futures_util::stream;
use sockrpc::{BoxStream, Code, Request, Response, Server, Status, Streaming};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::{Test1, Test1Server};
use sockrpc_tests::parity::{Input1, Output1};

/// Refuses every call, as tonic's `emit_async_trait` service does.
struct Refusing;

#[sockrpc::async_trait]
impl Test1 for Refusing {
    async fn unary_call(&self, _: Request<Input1>) -> Result<Response<Output1>, Status> {
        Err(Status::permission_denied("unary"))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        _: Request<Input1>,
    ) -> Result<Response<Self::StreamCallStream>, Status> {
        Err(Status::permission_denied("server stream"))
    }

    async fn collect(&self, _: Request<Streaming<Input1>>) -> Result<Response<Output1>, Status> {
        Err(Status::permission_denied("client stream"))
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        _: Request<Streaming<Input1>>,
    ) -> Result<Response<Self::ChatStream>, Status> {
        Err(Status::permission_denied("bidi"))
    }
}

fn inputs() -> impl futures_util::Stream<Item = Input1> + Send + 'static {
    stream::iter((0u8..5).map(|i| Input1 {
        buf: vec![i].into(),
    }))
}

#[tokio::test]
async fn an_impl_under_async_trait_serves_every_shape() {
    let server = serve(Server::builder().add_service(Test1Server::new(Refusing)));
    let mut client = Test1Client::new(channel(server.addr).await);
    let input = Input1::default();
    let denied = |result: Result<(), Status>, shape: &str| {
        let err = result.expect_err(shape);
        assert_eq!((err.code(), err.message()), (Code::PermissionDenied, shape));
    };
    let unary = bounded("unary", client.unary_call(input.clone())).await;
    denied(unary.map(|_| ()), "unary");
    let server_stream = bounded("server stream", client.stream_call(input)).await;
    denied(server_stream.map(|_| ()), "server stream");
    let client_stream = bounded("client stream", client.collect(inputs())).await;
    denied(client_stream.map(|_| ()), "client stream");
    let bidi = bounded("bidi", client.chat(inputs())).await;
    denied(bidi.map(|_| ()), "bidi");
    server.stop().await;
}
