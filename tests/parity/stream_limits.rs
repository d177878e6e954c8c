//! tonic's `max_message_size.rs` sends one message each way; its send limits
//! (`max_encoding_message_size`) hold on streams too, where one message over the limit comes
//! between messages within it. That message must fail the call, never be skipped: a receiver
//! that saw the messages on either side of it and an `OK` would have lost one without a word.
//! Here a client-streaming, a bidi and a server-streaming call each carry a message over their
//! sender's limit between two within it.

use crate::support::{bounded, channel, serve};
use futures_util::stream;
use sockrpc::{BoxStream, Code, Request, Response, Server, Status, Streaming};
use sockrpc_tests::parity::test1_client::Test1Client;
use sockrpc_tests::parity::test1_server::{Test1, Test1Server};
use sockrpc_tests::parity::{Input1, Output1};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const LIMIT: usize = 1024;

fn sizes() -> Vec<usize> {
    vec![16, 4 * LIMIT, 16]
}

/// Counts the requests it reads; streams answers of [`sizes`]; echoes on `chat`.
#[derive(Clone, Default)]
struct Counting {
    read: Arc<AtomicUsize>,
}

impl Test1 for Counting {
    async fn unary_call(&self, _: Request<Input1>) -> Result<Response<Output1>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type StreamCallStream = BoxStream<Output1>;

    async fn stream_call(
        &self,
        _: Request<Input1>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let answers = sizes().into_iter().map(|size| {
            Ok(Output1 {
                buf: vec![7; size].into(),
            })
        });
        Ok(Response::new(Box::pin(stream::iter(answers))))
    }

    async fn collect(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<Output1>, Status> {
        let mut inputs = request.into_inner();
        while inputs.message().await?.is_some() {
            self.read.fetch_add(1, Ordering::SeqCst);
        }
        Ok(Response::new(Output1::default()))
    }

    type ChatStream = BoxStream<Output1>;

    async fn chat(
        &self,
        request: Request<Streaming<Input1>>,
    ) -> Result<Response<BoxStream<Output1>>, Status> {
        let read = self.read.clone();
        let inputs = request.into_inner();
        Ok(Response::new(Box::pin(futures_util::StreamExt::map(
            inputs,
            move |input| {
                read.fetch_add(1, Ordering::SeqCst);
                input.map(|input| Output1 { buf: input.buf })
            },
        ))))
    }
}

fn requests() -> impl futures_util::Stream<Item = Input1> + Send + 'static {
    stream::iter(sizes().into_iter().map(|size| Input1 {
        buf: vec![1; size].into(),
    }))
}

#[tokio::test]
async fn a_request_over_the_clients_send_limit_fails_a_client_stream() {
    let svc = Counting::default();
    let server = serve(Server::builder().add_service(Test1Server::new(svc.clone())));
    let mut client = Test1Client::new(channel(server.addr).await).max_encoding_message_size(LIMIT);
    let result = bounded("collect", client.collect(requests())).await;
    let err = result.expect_err("a request over the limit fails the call");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        svc.read.load(Ordering::SeqCst) < 3,
        "the handler read past the refused message"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_over_the_clients_send_limit_fails_a_bidi_stream() {
    let svc = Counting::default();
    let server = serve(Server::builder().add_service(Test1Server::new(svc.clone())));
    let mut client = Test1Client::new(channel(server.addr).await).max_encoding_message_size(LIMIT);
    // The call may fail as it opens (the messages were all ready to go) or midway.
    let mut sizes_seen = Vec::new();
    let end = match bounded("chat", client.chat(requests())).await {
        Err(status) => Some(status),
        Ok(response) => {
            let mut echoes = response.into_inner();
            bounded("echoes", async {
                loop {
                    match echoes.message().await {
                        Ok(Some(echo)) => sizes_seen.push(echo.buf.len()),
                        Ok(None) => return None,
                        Err(status) => return Some(status),
                    }
                }
            })
            .await
        }
    };
    let err = end.unwrap_or_else(|| panic!("ended clean after echoes of {sizes_seen:?}"));
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        sizes_seen.len() < 2,
        "echoed past the refused message: {sizes_seen:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_answer_over_the_servers_send_limit_fails_a_server_stream() {
    let server = serve(
        Server::builder()
            .add_service(Test1Server::new(Counting::default()).max_encoding_message_size(LIMIT)),
    );
    let mut client = Test1Client::new(channel(server.addr).await);
    let mut answers = bounded("open", client.stream_call(Input1::default()))
        .await
        .expect("opens")
        .into_inner();
    let first = bounded("first", answers.message())
        .await
        .expect("within the limit")
        .expect("a message");
    assert_eq!(first.buf.len(), 16);
    let err = bounded("second", answers.message())
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(
        bounded("after", answers.message()).await.expect("ended"),
        None
    );
    server.stop().await;
}
