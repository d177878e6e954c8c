//! A handler that returns the answer it got from another server (a proxy) answers with its own
//! server's encoding fields, not the upstream's: a client of a proxy that accepts no compression
//! must never be told the upstream's accepted encodings and send it compressed requests.

use crate::support::{bounded, payload, EchoStreamer, Running};
use futures_util::StreamExt;
use sockrpc::{Channel, CompressionEncoding, Endpoint, Request, Response, Status, Streaming};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};

type ChunkStream = futures_util::stream::BoxStream<'static, Result<Chunk, Status>>;

/// Forwards unary calls and server streams to an upstream server, returning its answers as
/// they came.
#[derive(Clone)]
struct Forwarder {
    upstream: StreamerClient<Channel>,
}

impl Streamer for Forwarder {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        self.upstream.clone().unary(request.into_inner()).await
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let answer = self.upstream.clone().produce(request.into_inner()).await?;
        Ok(answer.map(|stream| stream.boxed()))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type GatherStream = ChunkStream;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

#[tokio::test]
async fn a_forwarded_answer_carries_the_proxys_encodings_not_the_upstreams() {
    let upstream = Running::start(
        StreamerServer::new(EchoStreamer)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip),
    );
    let to_upstream = bounded(
        "connect upstream",
        Channel::connect(Endpoint::new("127.0.0.1", upstream.addr.port())),
    )
    .await
    .expect("connect upstream");
    let forwarder = Forwarder {
        upstream: StreamerClient::new(to_upstream).accept_compressed(CompressionEncoding::Gzip),
    };
    // The proxy accepts no compression.
    let proxy = sockrpc_tests::serve::Running::start(
        sockrpc::Server::builder().add_service(StreamerServer::new(forwarder)),
    );
    let channel = bounded(
        "connect proxy",
        Channel::connect(Endpoint::new("127.0.0.1", proxy.addr.port())),
    )
    .await
    .expect("connect proxy");
    let mut client = StreamerClient::new(channel).send_compressed(CompressionEncoding::Gzip);

    for seq in 0..3 {
        let chunk = Chunk {
            seq,
            payload: payload(4096),
        };
        let answer = bounded("unary through the proxy", client.unary(chunk.clone()))
            .await
            .unwrap_or_else(|status| panic!("unary call {seq}: {status:?}"));
        assert_eq!(answer.into_inner(), chunk);
    }
    for round in 0..3 {
        let request = ProduceRequest {
            count: 2,
            size: 4096,
            ..Default::default()
        };
        let mut answers = bounded("produce through the proxy", client.produce(request))
            .await
            .unwrap_or_else(|status| panic!("produce {round}: {status:?}"))
            .into_inner();
        let mut seen = 0;
        while let Some(chunk) = bounded("a chunk", answers.message()).await.expect("chunk") {
            assert_eq!(chunk.payload.len(), 4096);
            seen += 1;
        }
        assert_eq!(seen, 2);
        // Then a unary call, which the client may now send compressed if it was told wrongly.
        let chunk = Chunk {
            seq: round,
            payload: payload(4096),
        };
        bounded("unary after produce", client.unary(chunk))
            .await
            .unwrap_or_else(|status| panic!("unary after produce {round}: {status:?}"));
    }
    proxy.stop().await;
    upstream.stop().await;
}
