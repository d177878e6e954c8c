//! tonic's `serve_with_incoming` and `serve_with_incoming_shutdown`, which most of its tests
//! serve with (`TcpListenerStream::new(listener)`, a stream of one connection): the server
//! serves each connection the stream yields, an error item is a failed accept it logs and
//! goes past, and the shutdown signal ends it. Such connections carry no addresses (the
//! stream's items are bare byte streams): `remote_addr()` is `None` there.

use crate::support::{bounded, channel};
use futures_util::stream;
use sockrpc::{Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::io;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Answers with whether the call knew its caller's address.
struct Svc;

impl Test for Svc {
    async fn unary_call(&self, request: Request<Input>) -> Result<Response<Output>, Status> {
        let message = match request.remote_addr() {
            Some(_) => "addressed",
            None => "unaddressed",
        };
        Ok(Response::new(Output {
            message: message.into(),
        }))
    }
}

#[tokio::test]
async fn serves_a_stream_of_accepted_connections_until_its_signal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // tonic's `TcpListenerStream::new(listener)`: every connection the listener accepts.
    let incoming = stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    for _ in 0..2 {
        // A connection each time: both come from the stream.
        let mut client = TestClient::new(channel(addr).await);
        let answer = bounded("call", client.unary_call(Input {}))
            .await
            .expect("served");
        assert_eq!(answer.into_inner().message, "unaddressed");
    }
    let _ = stop.send(());
    bounded("server stops", server)
        .await
        .expect("server task")
        .expect("served until its signal");
}

#[tokio::test]
async fn an_error_item_is_a_failed_accept_and_serving_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connecting = tokio::spawn(async move { channel(addr).await });
    let (accepted, _) = bounded("accept", listener.accept()).await.expect("accept");
    let items: Vec<io::Result<TcpStream>> = vec![Err(io::Error::other("refused")), Ok(accepted)];
    let server = tokio::spawn(
        Server::builder()
            .add_service(TestServer::new(Svc))
            .serve_with_incoming(stream::iter(items)),
    );
    let channel = bounded("connect", connecting).await.expect("connect task");
    let mut client = TestClient::new(channel);
    let answer = bounded("call", client.unary_call(Input {}))
        .await
        .expect("served past the error");
    assert_eq!(answer.into_inner().message, "unaddressed");
    // The stream has ended; the server still runs, serving what it has, until dropped.
    assert!(!server.is_finished(), "the server stopped with its stream");
    server.abort();
}
