//! tonic's `serve_with_shutdown`, as every one of its tests ends: a graceful shutdown lets
//! the calls in flight finish (a unary call and a server stream that are still running when
//! it begins), refuses new ones `UNAVAILABLE`, and `serve` returns `Ok`.

use crate::support::{bounded, channel, serve, uri, wait_until};
use sockrpc::{BoxStream, Channel, Code, Request, Response, Server, Status};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, InputStream, Output, OutputStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Handlers that wait for the test's permits: a unary call takes one before it answers, a
/// stream one before each of its three messages after the first.
#[derive(Clone)]
struct Gated {
    gate: Arc<Semaphore>,
    started: Arc<AtomicUsize>,
}

impl Test for Gated {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let permit = self.gate.acquire().await;
        drop(permit);
        Ok(Response::new(Output {
            message: "finished".into(),
        }))
    }
}

impl TestStream for Gated {
    type StreamCallStream = BoxStream<OutputStream>;

    async fn stream_call(
        &self,
        _: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let gate = Arc::clone(&self.gate);
        let messages = futures_util::stream::unfold(0, move |n| {
            let gate = Arc::clone(&gate);
            async move {
                if n == 3 {
                    return None;
                }
                if n > 0 {
                    let permit = gate.acquire().await;
                    drop(permit);
                }
                Some((Ok(OutputStream {}), n + 1))
            }
        });
        Ok(Response::new(Box::pin(messages)))
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let gated = Gated {
        gate: Arc::new(Semaphore::new(0)),
        started: Arc::new(AtomicUsize::new(0)),
    };
    let server = serve(
        Server::builder()
            .grace_period(std::time::Duration::from_secs(30))
            .add_service(TestServer::new(gated.clone()))
            .add_service(TestStreamServer::new(gated.clone())),
    );
    let addr = server.addr;
    let channel = channel(addr).await;
    // A unary call and a stream, both running.
    let mut unary_client = TestClient::new(channel.clone());
    let unary = tokio::spawn(async move { unary_client.unary_call(Input {}).await });
    let mut stream_client = TestStreamClient::new(channel.clone());
    let mut messages = bounded("open", stream_client.stream_call(InputStream {}))
        .await
        .expect("opens")
        .into_inner();
    bounded("first message", messages.message())
        .await
        .expect("no error")
        .expect("a message");
    wait_until("both handlers run", || {
        gated.started.load(Ordering::SeqCst) == 2
    })
    .await;

    // Shut down; wait until the listener is closed, so the shutdown has begun.
    let stopping = tokio::spawn(server.stop());
    wait_until("the listener closes", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    // A new call, on a new channel, is refused.
    let refused = bounded("connect", Channel::connect(uri(addr))).await;
    let err = refused.expect_err("the server no longer accepts");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // Let the handlers finish: every call in flight completes.
    gated.gate.add_permits(16);
    let answer = bounded("unary", unary)
        .await
        .expect("task")
        .expect("the unary call in flight finishes");
    assert_eq!(answer.into_inner().message, "finished");
    let mut rest = 0;
    while let Some(message) = bounded("message", messages.message())
        .await
        .expect("the stream in flight finishes")
    {
        assert_eq!(message, OutputStream {});
        rest += 1;
    }
    assert_eq!(rest, 2);
    // `stop` checks that serving returned Ok.
    bounded("server stops", stopping).await.expect("stop");
}
