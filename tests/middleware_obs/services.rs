//! The services and stacks the observability tests run: an echo leaf that notes the
//! `traceparent` it was called with, a relay that calls the next server, a chunk streamer, and
//! the client and server stacks an application would build.

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use sockrpc::{Channel, Code, Request, Response, Server, Status, Streaming};
use sockrpc_middleware::metrics::MetricsLayer;
use sockrpc_middleware::trace::TraceLayer;
use sockrpc_middleware::trace_context::OtelPropagation;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_server::Streamer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::ServiceBuilder;

/// The end of the chain: echoes, fails with the code asked for, and notes the `traceparent` it
/// was called with.
#[derive(Clone, Default)]
pub(crate) struct Leaf {
    pub(crate) traceparents: Arc<Mutex<Vec<String>>>,
}

impl Echo for Leaf {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        if let Some(traceparent) = request.metadata().get_str("traceparent") {
            let mut seen = self.traceparents.lock().expect("not poisoned");
            seen.push(traceparent.to_owned());
        }
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let FailRequest { code, message, .. } = request.into_inner();
        Err(Status::new(Code::from_u32(code as u32), message))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// A client stack as an application would build it: a span per call that carries its trace
/// context, and metrics.
pub(crate) type Stack = sockrpc_middleware::trace::Trace<
    sockrpc_middleware::metrics::Metrics<Channel>,
    OtelPropagation,
>;

pub(crate) fn client_stack(channel: &Channel) -> Stack {
    ServiceBuilder::new()
        .layer(TraceLayer::for_channel(channel).propagate(OtelPropagation::w3c()))
        .layer(MetricsLayer::client())
        .service(channel.clone())
}

/// The middle of the chain: answers `Echo` by calling the next server with the same request.
#[derive(Clone)]
pub(crate) struct Relay {
    pub(crate) next: EchoClient<Stack>,
}

impl Echo for Relay {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let mut next = self.next.clone();
        next.echo(request.into_inner()).await
    }

    async fn sleep(&self, _: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Streams chunks: `Produce` answers `count` of them, `PingPong` echoes each as it comes;
/// `Unary` echoes its chunk, `Collect` sums what it read.
pub(crate) struct Chunks;

pub(crate) type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for Chunks {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let ProduceRequest { count, size, .. } = request.into_inner();
        let chunks = (0..count).map(move |seq| {
            Ok(Chunk {
                seq,
                payload: Bytes::from(vec![0xA5; size as usize]),
            })
        });
        Ok(Response::new(futures_util::stream::iter(chunks).boxed()))
    }

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let summary = sockrpc_tests::summary::summarize(request.into_inner(), |_| {}).await?;
        Ok(Response::new(summary))
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<ChunkStream>, Status> {
        Ok(Response::new(request.into_inner().boxed()))
    }

    type GatherStream = ChunkStream;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves `router`'s services with the server stack (span outermost, then metrics) on a free
/// port.
pub(crate) async fn spawn_router(router: sockrpc::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(
        Server::builder()
            .layer(TraceLayer::server().propagate(OtelPropagation::w3c()))
            .layer(MetricsLayer::server())
            .router(router)
            .serve_with_listener(listener),
    );
    addr
}

/// Serves `service` with the server stack on a free port.
pub(crate) async fn spawn_server<T: Echo>(service: T) -> SocketAddr {
    spawn_router(sockrpc::Router::new().add_service(EchoServer::new(service))).await
}
