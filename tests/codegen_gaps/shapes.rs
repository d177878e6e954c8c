//! The shapes tonic-build's own compile tests guard (`tests/compile`, `ambiguous_methods`,
//! `same_name`, `service_named_service`, `service_named_result`), in one package
//! (`tests/proto/sockrpc/gaps/shapes.proto`): a message named `Message` (prost's trait) in a
//! streaming answer, rpcs named `Drop` and `Clone` (methods of the `Arc` a server holds its
//! service in) unary and streaming, a service and its rpc of one name, services named
//! `Service` and `Result`. tonic only compiles them; here every one also serves a call, so a
//! shape that compiles into the wrong dispatch fails too.

use futures_util::{stream, StreamExt};
use sockrpc::{BoxStream, Request, Response, Server, Status, Streaming};

use crate::{bounded, serve};

#[allow(dead_code, missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/gaps_shapes/gaps.shapes.rs"));
}

use generated::{Answer, Ask, Message, Step};

type Answers = BoxStream<Answer>;

/// Every service of the package, one implementation.
#[derive(Clone, Copy)]
struct Shapes;

fn answers(first: u32) -> Answers {
    stream::iter([first, first + 1].map(|seq| Ok(Answer { seq }))).boxed()
}

fn echoed(requests: Streaming<Answer>) -> Answers {
    requests
        .map(|answer| answer.map(|a| Answer { seq: a.seq * 10 }))
        .boxed()
}

impl generated::stream_server::Stream for Shapes {
    type RunStreamStream = BoxStream<Message>;

    async fn run_stream(
        &self,
        request: Request<Message>,
    ) -> Result<Response<BoxStream<Message>>, Status> {
        let message = request.into_inner();
        Ok(Response::new(
            stream::iter([Ok(message), Ok(message)]).boxed(),
        ))
    }
}

impl generated::arcs_server::Arcs for Shapes {
    async fn drop(&self, _: Request<Ask>) -> Result<Response<Answer>, Status> {
        Ok(Response::new(Answer { seq: 1 }))
    }

    async fn clone_rpc(&self, _: Request<Ask>) -> Result<Response<Answer>, Status> {
        Ok(Response::new(Answer { seq: 2 }))
    }
}

impl generated::streaming_arcs_server::StreamingArcs for Shapes {
    type DropStream = Answers;

    async fn drop(&self, _: Request<Ask>) -> Result<Response<Answers>, Status> {
        Ok(Response::new(answers(10)))
    }

    type CloneStream = Answers;

    async fn clone_rpc(&self, _: Request<Ask>) -> Result<Response<Answers>, Status> {
        Ok(Response::new(answers(20)))
    }
}

impl generated::echo_server::Echo for Shapes {
    type EchoStream = Answers;

    async fn echo(&self, request: Request<Streaming<Answer>>) -> Result<Response<Answers>, Status> {
        Ok(Response::new(echoed(request.into_inner())))
    }
}

impl generated::service_server::Service for Shapes {
    type EchoStream = Answers;

    async fn echo(&self, request: Request<Streaming<Answer>>) -> Result<Response<Answers>, Status> {
        Ok(Response::new(echoed(request.into_inner())))
    }
}

impl generated::result_server::Result for Shapes {
    async fn listen(&self, _: Request<()>) -> Result<Response<Step>, Status> {
        Ok(Response::new(Step { step: 7 }))
    }
}

/// Reads a stream of answers to its end, as their `seq`s.
async fn seqs(mut answers: Streaming<Answer>) -> Vec<u32> {
    let mut seen = Vec::new();
    for _ in 0..10 {
        match bounded("answer", answers.message()).await.expect("answer") {
            Some(answer) => seen.push(answer.seq),
            None => return seen,
        }
    }
    panic!("more answers than sent: {seen:?}");
}

fn requests() -> impl futures_util::Stream<Item = Answer> + Send + 'static {
    stream::iter([Answer { seq: 1 }, Answer { seq: 2 }])
}

#[tokio::test]
async fn tonics_compile_test_shapes_serve() {
    let builder = Server::builder()
        .add_service(generated::stream_server::StreamServer::new(Shapes))
        .add_service(generated::arcs_server::ArcsServer::new(Shapes))
        .add_service(generated::streaming_arcs_server::StreamingArcsServer::new(
            Shapes,
        ))
        .add_service(generated::echo_server::EchoServer::new(Shapes))
        .add_service(generated::service_server::ServiceServer::new(Shapes))
        .add_service(generated::result_server::ResultServer::new(Shapes));
    let (_server, channel) = serve(builder).await;

    let mut client = generated::stream_client::StreamClient::new(channel.clone());
    let mut messages = bounded("run_stream", client.run_stream(Message { ok: true }))
        .await
        .expect("run_stream")
        .into_inner();
    let mut count = 0;
    while let Some(message) = bounded("message", messages.message())
        .await
        .expect("message")
    {
        assert!(message.ok);
        count += 1;
        assert!(count <= 2, "more messages than sent");
    }
    assert_eq!(count, 2);

    let mut client = generated::arcs_client::ArcsClient::new(channel.clone());
    let dropped = bounded("drop", client.drop(Ask {})).await.expect("drop");
    assert_eq!(dropped.into_inner().seq, 1);
    let cloned = bounded("clone", client.clone_rpc(Ask {}))
        .await
        .expect("clone");
    assert_eq!(cloned.into_inner().seq, 2);

    let mut client = generated::streaming_arcs_client::StreamingArcsClient::new(channel.clone());
    let dropped = bounded("drop", client.drop(Ask {})).await.expect("drop");
    assert_eq!(seqs(dropped.into_inner()).await, [10, 11]);
    let cloned = bounded("clone", client.clone_rpc(Ask {}))
        .await
        .expect("clone");
    assert_eq!(seqs(cloned.into_inner()).await, [20, 21]);

    let mut client = generated::echo_client::EchoClient::new(channel.clone());
    let echoed = bounded("echo", client.echo(requests()))
        .await
        .expect("echo");
    assert_eq!(seqs(echoed.into_inner()).await, [10, 20]);

    let mut client = generated::service_client::ServiceClient::new(channel.clone());
    let echoed = bounded("echo", client.echo(requests()))
        .await
        .expect("echo");
    assert_eq!(seqs(echoed.into_inner()).await, [10, 20]);

    let mut client = generated::result_client::ResultClient::new(channel);
    let step = bounded("listen", client.listen(())).await.expect("listen");
    assert_eq!(step.into_inner().step, 7);
}
