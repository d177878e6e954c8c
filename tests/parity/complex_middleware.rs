//! tonic's `complex_tower_middleware.rs`: a server layer with its own service, future and
//! response body types, whose error is a `BoxError`, goes on `Server::builder().layer(..)`.
//! tonic's test only compiles; this one also serves a call through it and checks the layer's
//! body carried the answer (its bytes are counted as they pass).
//!
//! tonic's layer wraps an `http_body::Body`; a sockrpc layer wraps the stream of message bytes
//! a `Response<Body>` holds, so `MyBody` is a `Stream` of `Result<Bytes, Status>`.

use crate::support::{bounded, channel, serve_layered};
use bytes::Bytes;
use futures_util::Stream;
use sockrpc::{BoxError, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::{Input, Output};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

struct Svc;

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output {
            message: "through the layer".into(),
        }))
    }
}

/// Counts the response bytes that pass through [`MyBody`].
#[derive(Clone, Default)]
struct MyServiceLayer {
    bytes: Arc<AtomicUsize>,
}

impl<S> Layer<S> for MyServiceLayer {
    type Service = MyService<S>;

    fn layer(&self, inner: S) -> MyService<S> {
        MyService {
            inner,
            bytes: Arc::clone(&self.bytes),
        }
    }
}

#[derive(Clone)]
struct MyService<S> {
    inner: S,
    bytes: Arc<AtomicUsize>,
}

impl<S, R, B> Service<R> for MyService<S>
where
    S: Service<R, Response = Response<B>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<MyBody<B>>;
    type Error = BoxError;
    type Future = MyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> MyFuture<S::Future> {
        MyFuture {
            inner: Box::pin(self.inner.call(request)),
            bytes: Arc::clone(&self.bytes),
        }
    }
}

struct MyFuture<F> {
    inner: Pin<Box<F>>,
    bytes: Arc<AtomicUsize>,
}

impl<F, E, B> Future for MyFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<MyBody<B>>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let bytes = Arc::clone(&self.bytes);
        self.inner.as_mut().poll(cx).map(|result| {
            result
                .map(|response| {
                    response.map(|inner| MyBody {
                        inner: Box::pin(inner),
                        bytes,
                    })
                })
                .map_err(Into::into)
        })
    }
}

struct MyBody<B> {
    inner: Pin<Box<B>>,
    bytes: Arc<AtomicUsize>,
}

impl<B> Stream for MyBody<B>
where
    B: Stream<Item = Result<Bytes, Status>>,
{
    type Item = Result<Bytes, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(message))) = &next {
            self.bytes.fetch_add(message.len(), Ordering::SeqCst);
        }
        next
    }
}

#[tokio::test]
async fn complex_tower_layers_work() {
    let layer = MyServiceLayer::default();
    let server = serve_layered(
        Server::builder()
            .layer(layer.clone())
            .add_service(TestServer::new(Svc)),
    );
    let mut client = TestClient::new(channel(server.addr).await);
    let answer = bounded("unary", client.unary_call(Input {}))
        .await
        .expect("served through the layer");
    assert_eq!(answer.get_ref().message, "through the layer");
    // The encoded `Output`: a tag, a length and the 17 bytes of text.
    assert_eq!(layer.bytes.load(Ordering::SeqCst), 19);
    server.stop().await;
}
