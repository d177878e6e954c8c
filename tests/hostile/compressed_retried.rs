//! A compressed request run twice on the server (a layer that copies the call with
//! `Call::try_clone` and runs it again, as retry and hedging layers do) counts what it
//! decompresses to once against its connection's budget of running requests.
//!
//! The copy shares the original's extensions, and so its `RequestCharge`: each attempt's
//! handler decompressed the same message and added its size to the one charge. A call
//! retried once counted twice what it held, for as long as it ran, so a call whose request
//! decompresses to more than half the budget refused its own second attempt
//! (`RESOURCE_EXHAUSTED`), alone on its connection.

use crate::compressed_running::{compressed_call, ends, DECODED, RESOURCE_EXHAUSTED};
use crate::raw::{server_frames, MESSAGE, PREFACE};
use crate::support::{bounded, start_serving, EchoImpl};
use prost::Message as _;
use sockrpc::{Call, CompressionEncoding, NamedService};
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::EchoReply;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::Service;

/// Runs every call twice: a copy first (`Call::try_clone`), its answer dropped, then the call.
#[derive(Clone)]
struct RunTwice<S> {
    inner: S,
}

impl<S> Service<Call> for RunTwice<S>
where
    S: Service<Call> + Clone + Send + 'static,
    S::Response: Send,
    S::Error: Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let copy = call.try_clone().expect("a unary call copies");
        let first = self.inner.call(copy);
        let mut inner = self.inner.clone();
        Box::pin(async move {
            // The first attempt's answer (and with it its decoded request) is dropped.
            let answered = first.await;
            assert!(answered.is_ok(), "the first attempt failed outright");
            drop(answered);
            inner.call(call).await
        })
    }
}

impl<S: NamedService> NamedService for RunTwice<S> {
    const NAME: &'static str = S::NAME;
}

#[tokio::test]
async fn a_compressed_request_run_twice_counts_what_it_decompresses_to_once() {
    let echo = EchoServer::new(EchoImpl::default()).accept_compressed(CompressionEncoding::Gzip);
    let running = start_serving(|listener, shutdown| {
        sockrpc::Server::builder()
            // One request's decompressed size: the call fits once, not twice.
            .max_running_requests_size(DECODED)
            .add_service(RunTwice { inner: echo })
            .serve_with_listener_and_shutdown(listener, shutdown)
    });
    let mut stream = TcpStream::connect(running.addr).await.expect("connect");
    let bytes = [&PREFACE[..], &compressed_call(1)].concat();
    stream.write_all(&bytes).await.expect("write the call");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    bounded("the call answered", async {
        while ends(&got).is_empty() {
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed the connection");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let ended = ends(&got);
    assert_ne!(
        ended[0].1, RESOURCE_EXHAUSTED,
        "the second attempt was refused: its message counted twice against the budget"
    );
    assert_eq!(ended, [(1, 0)]);
    let reply = server_frames(&got)
        .iter()
        .find(|f| f.call_id == 1 && f.kind == MESSAGE)
        .map(|f| EchoReply::decode(&f.body[..]).expect("reply"))
        .expect("an answer");
    assert_eq!((reply.id, reply.payload.len()), (1, DECODED));
    drop(stream);
    running.stop().await;
}
