//! tonic's `Response::extensions()`: values that travel with an answer inside one process. A
//! handler's reach the server's tower layers (from a unary answer and a streamed one); a
//! client-side layer's reach the caller of the generated client. None of them is sent.

use crate::support::{bounded, channel, serve_layered, uri};
use futures_util::stream;
use sockrpc::{Body, BoxStream, Channel, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, InputStream, Output, OutputStream};
use tower::ServiceBuilder;

#[derive(Clone, Debug, PartialEq)]
struct Note(&'static str);

/// Notes which handler answered in the response's extensions.
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        let mut response = Response::new(Output::default());
        response.extensions_mut().insert(Note("unary"));
        Ok(response)
    }
}

impl TestStream for Svc {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        let mut response: Response<BoxStream<OutputStream>> =
            Response::new(Box::pin(stream::iter([Ok(OutputStream {})])));
        response.extensions_mut().insert(Note("stream"));
        Ok(response)
    }
}

/// A server layer that copies the handler's `Note` into a metadata entry the client can see.
fn note_to_metadata(mut response: Response<Body>) -> Response<Body> {
    let note = response.extensions().get::<Note>().map_or("none", |n| n.0);
    let _ = response.metadata_mut().insert_str("x-note", note);
    response
}

#[tokio::test]
async fn a_handlers_extensions_reach_the_servers_layers() {
    let builder = Server::builder().layer(tower::util::MapResponseLayer::new(note_to_metadata));
    let server = serve_layered(
        builder
            .add_service(TestServer::new(Svc))
            .add_service(TestStreamServer::new(Svc)),
    );
    let channel = channel(server.addr).await;
    let unary = bounded(
        "unary",
        TestClient::new(channel.clone()).unary_call(Input {}),
    )
    .await
    .expect("served");
    assert_eq!(unary.metadata().get_str("x-note"), Some("unary"));
    // In-process only: the extension itself did not cross the wire.
    assert!(unary.extensions().get::<Note>().is_none());
    let streamed = bounded(
        "stream",
        TestStreamClient::new(channel).stream_call(InputStream {}),
    )
    .await
    .expect("served");
    assert_eq!(streamed.metadata().get_str("x-note"), Some("stream"));
    server.stop().await;
}

#[tokio::test]
async fn a_client_layers_extensions_reach_the_caller() {
    let server = crate::support::serve(Server::builder().add_service(TestServer::new(Svc)));
    let stack = ServiceBuilder::new()
        .map_response(|mut response: Response<Body>| {
            response.extensions_mut().insert(Note("client layer"));
            response
        })
        .service(Channel::lazy(uri(server.addr)).expect("endpoint"));
    let mut client = TestClient::new(stack);
    let response = bounded("unary", client.unary_call(Input {}))
        .await
        .expect("served");
    assert_eq!(
        response.extensions().get::<Note>(),
        Some(&Note("client layer"))
    );
    server.stop().await;
}
