//! tonic's `routes.rs` and `routes_builder.rs`: several services behind one server, built
//! apart as a `Router` (tonic's `Routes`/`RoutesBuilder`) and mounted with `add_routes` beside
//! services added directly; one channel calls them all, unary and streaming; a service or a
//! method nobody serves is `UNIMPLEMENTED`.

use crate::support::{bounded, channel, serve, Test1Svc};
use futures_util::{stream, StreamExt};
use sockrpc::{BoxStream, Code, Request, Response, Router, Server, Status};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::Test1Server;
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, Input1, InputStream, Output, OutputStream};

struct Svc1;

impl Test for Svc1 {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: "svc1".into(),
        }))
    }
}

struct Svc3;

impl TestStream for Svc3 {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        Ok(Response::new(Box::pin(stream::iter([
            Ok(OutputStream {}),
            Ok(OutputStream {}),
        ]))))
    }
}

#[tokio::test]
async fn multiple_service_using_routes() {
    let routes = Router::new()
        .add_service(TestServer::new(Svc1))
        .add_service(Test1Server::new(Test1Svc::default()));
    // Routes built apart, and a service added directly before them: all three are served.
    let server = serve(
        Server::builder()
            .add_service(TestStreamServer::new(Svc3))
            .add_routes(routes),
    );
    let channel = channel(server.addr).await;
    let mut client1 = TestClient::new(channel.clone());
    let mut client2 = Test1Client::new(channel.clone());
    let mut client3 = TestStreamClient::new(channel);

    let resp1 = bounded("svc1", client1.unary_call(Input {}))
        .await
        .expect("Test")
        .into_inner();
    assert_eq!(resp1.message, "svc1");

    let resp2 = bounded(
        "svc2",
        client2.unary_call(Input1 {
            buf: b"hello".to_vec().into(),
        }),
    )
    .await
    .expect("Test1")
    .into_inner();
    assert_eq!(&resp2.buf[..], b"hello");

    let mut stream2 = bounded(
        "svc2 stream",
        client2.stream_call(Input1 {
            buf: b"world".to_vec().into(),
        }),
    )
    .await
    .expect("Test1 stream")
    .into_inner();
    let first = bounded("first", stream2.next())
        .await
        .expect("one item")
        .expect("a message");
    assert_eq!(&first.buf[..], b"world");
    assert!(bounded("end", stream2.next()).await.is_none());

    let mut stream3 = bounded("svc3", client3.stream_call(InputStream {}))
        .await
        .expect("TestStream")
        .into_inner();
    let mut count = 0;
    while let Some(message) = bounded("svc3 message", stream3.message())
        .await
        .expect("no error")
    {
        assert_eq!(message, OutputStream {});
        count += 1;
    }
    assert_eq!(count, 2);
    server.stop().await;
}

#[tokio::test]
async fn routes_merged_keep_both_sides() {
    let left = Router::new().add_service(TestServer::new(Svc1));
    let right = Router::new().add_service(TestStreamServer::new(Svc3));
    let merged = left.merge(right);
    let mut names: Vec<&str> = merged.services().collect();
    names.sort_unstable();
    assert_eq!(names, ["test.Test", "test.TestStream"]);
    let server = serve(Server::builder().router(merged));
    let mut client = TestClient::new(channel(server.addr).await);
    bounded("call", client.unary_call(Input {}))
        .await
        .expect("served");
    server.stop().await;
}

#[tokio::test]
async fn unrouted_services_are_unimplemented() {
    // Only Test is mounted: Test1 and TestStream are not.
    let server = serve(Server::builder().add_service(TestServer::new(Svc1)));
    let channel = channel(server.addr).await;
    let mut client2 = Test1Client::new(channel.clone());
    let err = bounded("unary", client2.unary_call(Input1::default()))
        .await
        .expect_err("not served");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("test.Test1"), "{err:?}");
    let mut client3 = TestStreamClient::new(channel.clone());
    let result = bounded("stream", async {
        let mut stream = client3.stream_call(InputStream {}).await?.into_inner();
        stream.message().await
    })
    .await;
    let err = result.expect_err("not served");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    // The served one is unaffected.
    let mut client1 = TestClient::new(channel);
    bounded("call", client1.unary_call(Input {}))
        .await
        .expect("served");
    server.stop().await;
}

/// Answers `unary_call` with its name.
struct Named(&'static str);

impl Test for Named {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: self.0.into(),
        }))
    }
}

/// A service mounted twice under one name is served by the one added last, as `add_service`
/// says (a generated reflection server added before `add_reflection` is replaced by it).
#[tokio::test]
async fn a_service_added_twice_is_served_by_the_last() {
    let server = serve(
        Server::builder()
            .add_service(TestServer::new(Named("first")))
            .add_service(TestServer::new(Named("last"))),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("served")
        .into_inner();
    assert_eq!(answer.message, "last");
    server.stop().await;
}
