//! Streams as tonic's `streams.rs` and gRPC interop's `empty_unary`, `empty_stream`,
//! `client_streaming`, `ping_pong` and `cancel_after_first_response` exercise them: empty
//! messages (zero bytes on the wire) in every shape, streams with no message at all, many
//! streams at once on one channel, and a client that drops a stream midway, which ends the
//! server's side.

use crate::support::{bounded, channel, serve, wait_until};
use futures_util::{stream, StreamExt};
use sockrpc::{BoxStream, MetadataMap, Request, Response, Server, Status, Streaming};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::{Test1, Test1Server};
use sockrpc_tests::parity::test_client::TestClient;
use sockrpc_tests::parity::test_server::{Test, TestServer};
use sockrpc_tests::parity::test_stream_client::TestStreamClient;
use sockrpc_tests::parity::test_stream_server::{TestStream, TestStreamServer};
use sockrpc_tests::parity::{Input, Input1, InputStream, Output, Output1, OutputStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Counts the server streams dropped before their end.
#[derive(Clone, Default)]
struct Svc {
    dropped: Arc<AtomicUsize>,
}

/// Counts itself into `dropped` when dropped before `finished` was set.
struct DropProbe {
    dropped: Arc<AtomicUsize>,
    finished: bool,
}

impl DropProbe {
    /// The stream reached its end: dropping it now is no cancellation.
    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn count_of(metadata: &MetadataMap) -> usize {
    metadata
        .get_str("x-count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Test for Svc {
    async fn unary_call(&self, _: Request<Input>) -> Result<Response<Output>, Status> {
        Ok(Response::new(Output::default()))
    }
}

impl TestStream for Svc {
    type StreamCallStream = BoxStream<OutputStream>;

    /// `x-count` empty messages; the stream notes when it is dropped before its end.
    async fn stream_call(
        &self,
        request: Request<InputStream>,
    ) -> Result<Response<BoxStream<OutputStream>>, Status> {
        let count = count_of(request.metadata());
        let probe = DropProbe {
            dropped: Arc::clone(&self.dropped),
            finished: false,
        };
        let messages = stream::unfold((0, probe), move |(n, mut probe)| async move {
            if n == count {
                probe.finish();
                return None;
            }
            Some((Ok(OutputStream {}), (n + 1, probe)))
        });
        Ok(Response::new(Box::pin(messages)))
    }
}

impl Test1 for Svc {
    async fn unary_call(&self, request: Request<Input1>) -> Result<Response<Output1>, Status> {
        Ok(Response::new(Output1 {
            buf: request.into_inner().buf,
        }))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        _: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        // No message at all, status OK.
        Ok(Response::new(Box::pin(stream::empty())))
    }

    /// Answers with every message's bytes one after another; `x-count` says how many came.
    async fn collect(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<Output1>, Status> {
        let mut inputs = request.into_inner();
        let mut buf = Vec::new();
        let mut count = 0usize;
        while let Some(input) = inputs.message().await? {
            buf.extend_from_slice(&input.buf);
            count += 1;
        }
        let mut response = Response::new(Output1 { buf: buf.into() });
        response
            .metadata_mut()
            .insert_str("x-count", &count.to_string())
            .expect("ascii");
        Ok(response)
    }

    type ChatStream = BoxStream<Output1>;

    /// Echoes each message as it comes.
    async fn chat(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let inputs = request.into_inner();
        Ok(Response::new(Box::pin(inputs.map(|input| {
            input.map(|input| Output1 { buf: input.buf })
        }))))
    }
}

fn start(svc: &Svc) -> crate::support::Running {
    serve(
        Server::builder()
            .add_service(TestServer::new(svc.clone()))
            .add_service(TestStreamServer::new(svc.clone()))
            .add_service(Test1Server::new(svc.clone())),
    )
}

fn counted<T>(message: T, count: usize) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert_str("x-count", &count.to_string())
        .expect("ascii");
    request
}

#[tokio::test]
async fn empty_messages_in_every_shape() {
    let svc = Svc::default();
    let server = start(&svc);
    let channel = channel(server.addr).await;
    // Unary: an empty request, an empty answer.
    let mut test = TestClient::new(channel.clone());
    let output = bounded("empty unary", test.unary_call(Input {}))
        .await
        .expect("empty unary")
        .into_inner();
    assert_eq!(output, Output::default());
    // Server streaming: 100 empty messages.
    let mut streams = TestStreamClient::new(channel.clone());
    let mut messages = bounded("open", streams.stream_call(counted(InputStream {}, 100)))
        .await
        .expect("opens")
        .into_inner();
    let mut seen = 0;
    while let Some(message) = bounded("message", messages.message())
        .await
        .expect("no error")
    {
        assert_eq!(message, OutputStream {});
        seen += 1;
        assert!(seen <= 100, "more messages than sent");
    }
    assert_eq!(seen, 100);
    // Client streaming: 50 zero-length messages.
    let mut test1 = Test1Client::new(channel.clone());
    let response = bounded(
        "collect",
        test1.collect(stream::iter((0..50).map(|_| Input1::default()))),
    )
    .await
    .expect("collect");
    assert_eq!(count_of(response.metadata()), 50);
    assert!(response.into_inner().buf.is_empty());
    // Bidi: zero-length messages echoed one by one.
    let (tx, rx) = mpsc::channel::<Input1>(1);
    let mut echoes = bounded("chat", test1.chat(tokio_stream_of(rx)))
        .await
        .expect("chat opens")
        .into_inner();
    for _ in 0..20 {
        bounded("send", tx.send(Input1::default()))
            .await
            .expect("request stream open");
        let echo = bounded("echo", echoes.message())
            .await
            .expect("no error")
            .expect("an echo");
        assert!(echo.buf.is_empty());
    }
    drop(tx);
    assert_eq!(
        bounded("end", echoes.message()).await.expect("no error"),
        None
    );
    server.stop().await;
}

/// A stream of what `rx` receives, ending when its senders are dropped.
fn tokio_stream_of<T: Send + 'static>(
    rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

#[tokio::test]
async fn streams_with_no_message_at_all() {
    let svc = Svc::default();
    let server = start(&svc);
    let mut test1 = Test1Client::new(channel(server.addr).await);
    // gRPC interop's empty_stream: a bidi call whose client sends nothing and half-closes.
    let mut echoes = bounded("chat", test1.chat(stream::empty()))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(bounded("end", echoes.message()).await.expect("OK"), None);
    // Client streaming with no message: the handler still answers.
    let response = bounded("collect", test1.collect(stream::empty()))
        .await
        .expect("answers");
    assert_eq!(count_of(response.metadata()), 0);
    // Server streaming that yields nothing: OK, no message.
    let mut messages = bounded("open", test1.stream_call(Input1::default()))
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(bounded("end", messages.message()).await.expect("OK"), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_many_concurrent_streams() {
    const STREAMS: usize = 500;
    const EACH: usize = 4;
    let svc = Svc::default();
    let server = start(&svc);
    let channel = channel(server.addr).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..STREAMS {
        let mut client = Test1Client::new(channel.clone());
        tasks.spawn(async move {
            let inputs = (0..EACH).map(move |i| Input1 {
                buf: format!("{n}:{i}").into_bytes().into(),
            });
            let mut echoes = client.chat(stream::iter(inputs)).await?.into_inner();
            let mut got = Vec::new();
            while let Some(echo) = echoes.message().await? {
                got.push(String::from_utf8_lossy(&echo.buf).into_owned());
            }
            let expected: Vec<String> = (0..EACH).map(|i| format!("{n}:{i}")).collect();
            assert_eq!(got, expected);
            Ok::<_, Status>(())
        });
    }
    let mut done = 0;
    bounded("every stream", async {
        while let Some(result) = tasks.join_next().await {
            result.expect("task").expect("stream");
            done += 1;
        }
    })
    .await;
    assert_eq!(done, STREAMS);
    server.stop().await;
}

#[tokio::test]
async fn client_dropping_a_stream_cancels_the_server_side() {
    let svc = Svc::default();
    let server = start(&svc);
    let mut streams = TestStreamClient::new(channel(server.addr).await);
    // gRPC interop's cancel_after_first_response, server-streaming: a long stream, dropped
    // after its first message.
    let mut messages = bounded(
        "open",
        streams.stream_call(counted(InputStream {}, 1_000_000)),
    )
    .await
    .expect("opens")
    .into_inner();
    bounded("first", messages.message())
        .await
        .expect("no error")
        .expect("a message");
    drop(messages);
    wait_until("the server's stream is dropped", || {
        svc.dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    // The connection serves on.
    let mut test = TestClient::new(streams.into_inner());
    bounded("after", test.unary_call(Input {}))
        .await
        .expect("serves on");
    server.stop().await;
}
