//! tonic's `status.rs::status_from_server_stream_with_inferred_status`: a server layer that
//! answers a server-streaming call itself, without calling the service, decides the call's
//! status. tonic's layer answers with HTTP 502 and no `grpc-status`, which tonic reads as
//! `UNAVAILABLE`; a sockrpc layer has no HTTP status to answer with, so it fails the call with
//! the status itself (a `Status` boxed as its `BoxError`). The client's call fails with that
//! status and its message; the handler never runs and the connection serves on.

use crate::support::{bounded, channel, serve_layered};
use futures_util::stream;
use sockrpc::{BoxError, BoxStream, Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{InputStream, OutputStream};
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// One message, as tonic's handler streams; counts the calls that reached it.
#[derive(Clone, Default)]
struct Svc {
    calls: Arc<AtomicUsize>,
}

impl TestStream for Svc {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(Box::pin(stream::once(async {
            Ok(OutputStream {})
        }))))
    }
}

/// Answers every call with `UNAVAILABLE` while `refusing` is set; otherwise passes it on.
#[derive(Clone)]
struct Gateway {
    refusing: Arc<AtomicBool>,
}

impl<S> Layer<S> for Gateway {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> GatewayService<S> {
        GatewayService {
            inner,
            refusing: Arc::clone(&self.refusing),
        }
    }
}

#[derive(Clone)]
struct GatewayService<S> {
    inner: S,
    refusing: Arc<AtomicBool>,
}

impl<S, R> Service<R> for GatewayService<S>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = futures_util::future::Either<
        Ready<Result<S::Response, BoxError>>,
        futures_util::future::MapErr<S::Future, fn(S::Error) -> BoxError>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        use futures_util::TryFutureExt;
        if self.refusing.load(Ordering::SeqCst) {
            let status: BoxError = Box::new(Status::unavailable("bad gateway"));
            futures_util::future::Either::Left(ready(Err(status)))
        } else {
            let into: fn(S::Error) -> BoxError = Into::into;
            futures_util::future::Either::Right(self.inner.call(request).map_err(into))
        }
    }
}

#[tokio::test]
async fn a_layer_answering_for_a_stream_ends_it_with_its_status() {
    let svc = Svc::default();
    let refusing = Arc::new(AtomicBool::new(true));
    let server = serve_layered(
        Server::builder()
            .layer(Gateway {
                refusing: Arc::clone(&refusing),
            })
            .add_service(TestStreamServer::new(svc.clone())),
    );
    let mut client = TestStreamClient::new(channel(server.addr).await);
    // The layer's status ends the call at the open, as a handler's own status before its
    // stream would, and as tonic answers a layer's `Status` (trailers only). tonic's test gets
    // the status from the first `message()` instead: its layer answers HTTP 502 with headers,
    // and the status is inferred from them once the body is read.
    let err = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect_err("the layer's status");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(err.message(), "bad gateway");
    assert_eq!(svc.calls.load(Ordering::SeqCst), 0, "the handler never ran");
    // The connection serves on: with the layer passing calls, the handler's message arrives.
    refusing.store(false, Ordering::SeqCst);
    let mut stream = bounded("open", client.stream_call(InputStream {}))
        .await
        .expect("passed on")
        .into_inner();
    assert_eq!(
        bounded("message", stream.message())
            .await
            .expect("a message"),
        Some(OutputStream {})
    );
    assert_eq!(bounded("end", stream.message()).await.expect("ok"), None);
    assert_eq!(svc.calls.load(Ordering::SeqCst), 1);
    server.stop().await;
}
