//! tonic's `Streaming::trailers().await`: it reads the rest of a stream (the messages not yet
//! read are dropped) and hands out the trailing metadata; a stream that ends with a status
//! fails it with that status. `trailers_now()` is the look that does not wait: nothing until
//! the stream has ended.

use crate::support::{bounded, channel, serve};
use futures_util::stream;
use sockrpc::{BoxStream, Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::{Test1, Test1Server};
use sockrpc_tests::parity::{Input1, Output1};

/// Streams as many messages as the request's `buf` is long, then ends with trailers, or
/// with `DATA_LOSS` when `buf` starts with `0xff`.
struct Svc;

impl Test1 for Svc {
    async fn unary_call(&self, _: Request<Input1>) -> Result<Response<Output1>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        request: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let buf = request.into_inner().buf;
        let fail = buf.first() == Some(&0xff);
        let messages = (0..buf.len()).map(|_| Ok(Output1::default()));
        let end = fail.then(|| Err(Status::data_loss("cut short")));
        let mut response: Response<BoxStream<Output1>> =
            Response::new(Box::pin(stream::iter(messages.chain(end))));
        response
            .trailers_mut()
            .insert_str("x-count", buf.len().to_string().as_str())
            .expect("ascii");
        Ok(response)
    }

    async fn collect(
        &self,
        _: Request<sockrpc::Streaming<Input1>>,
    ) -> Result<Response<Output1>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        _: Request<sockrpc::Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

#[tokio::test]
async fn trailers_read_the_rest_of_the_stream_first() {
    let server = serve(Server::builder().add_service(Test1Server::new(Svc)));
    let mut client = Test1Client::new(channel(server.addr).await);
    let mut stream = bounded(
        "open",
        client.stream_call(Input1 {
            buf: vec![1; 5].into(),
        }),
    )
    .await
    .expect("opens")
    .into_inner();
    bounded("first", stream.message())
        .await
        .expect("ok")
        .expect("a message");
    assert!(stream.trailers_now().is_none(), "no trailers mid-stream");
    // Four messages are still to come: `trailers` reads past them.
    let trailers = bounded("trailers", stream.trailers())
        .await
        .expect("a clean end")
        .expect("trailers");
    assert_eq!(trailers.get_str("x-count"), Some("5"));
    assert_eq!(
        stream.trailers_now().and_then(|t| t.get_str("x-count")),
        Some("5")
    );
    assert_eq!(
        bounded("after", stream.message()).await.expect("ended"),
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn trailers_of_a_stream_that_ends_with_a_status_fail_with_it() {
    let server = serve(Server::builder().add_service(Test1Server::new(Svc)));
    let mut client = Test1Client::new(channel(server.addr).await);
    let mut stream = bounded(
        "open",
        client.stream_call(Input1 {
            buf: vec![0xff; 3].into(),
        }),
    )
    .await
    .expect("opens")
    .into_inner();
    let err = bounded("trailers", stream.trailers())
        .await
        .expect_err("the stream's status");
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert_eq!(err.message(), "cut short");
    server.stop().await;
}
