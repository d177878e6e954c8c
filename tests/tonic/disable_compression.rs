//! tonic's `Response::disable_compression` (`compressing_response.rs`:
//! `disabling_compression_on_single_response`,
//! `disabling_compression_on_response_but_keeping_compression_on_stream`,
//! `disabling_compression_on_response_from_client_stream`): a handler's answer marked so goes
//! plain from a server that compresses answers, while the answer's `grpc-encoding` still names
//! the encoding; a streaming answer's messages stay compressed. A proxy reads the COMPRESSED
//! flag off the wire, and each case runs unmarked first, so the mark is what makes it plain.

use crate::support::{bounded, payload, Sniffer};
use futures_util::stream::{self, StreamExt};
use sockrpc::{
    BoxStream, Channel, CompressionEncoding, Endpoint, Request, Response, Server, Status, Streaming,
};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};

const SIZE: usize = 2048;

/// Answers every shape, marking each answer with `disable_compression` when `disable`.
#[derive(Clone, Copy)]
struct Marking {
    disable: bool,
}

impl Marking {
    fn mark<T>(&self, mut response: Response<T>) -> Response<T> {
        if self.disable {
            response.disable_compression();
        }
        response
    }
}

impl Streamer for Marking {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(self.mark(Response::new(request.into_inner())))
    }

    type ProduceStream = BoxStream<Chunk>;

    async fn produce(
        &self,
        _: Request<ProduceRequest>,
    ) -> Result<Response<BoxStream<Chunk>>, Status> {
        let chunks = (0..2).map(|seq| {
            Ok(Chunk {
                seq,
                payload: payload(SIZE),
            })
        });
        Ok(self.mark(Response::new(stream::iter(chunks).boxed())))
    }

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let summary = sockrpc_tests::summary::summarize(request.into_inner(), |_| {}).await?;
        Ok(self.mark(Response::new(summary)))
    }

    type PingPongStream = BoxStream<Chunk>;

    async fn ping_pong(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<BoxStream<Chunk>>, Status> {
        Err(Status::unimplemented("not used here"))
    }

    type GatherStream = BoxStream<Chunk>;

    async fn gather(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<BoxStream<Chunk>>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

/// Whether each answer message of each shape went compressed, and what the answers' metadata
/// named: (unary, server stream's two messages, client stream's answer).
async fn run(disable: bool) -> (Vec<bool>, Vec<Option<String>>) {
    let service = StreamerServer::new(Marking { disable })
        .send_compressed(CompressionEncoding::Gzip)
        // The client stream's small summary is compressed too when unmarked.
        .compression_min_size(0);
    let server = sockrpc_tests::serve::Running::start(Server::builder().add_service(service));
    let sniffer = Sniffer::start(server.addr).await;
    let endpoint = Endpoint::new("127.0.0.1", sniffer.addr.port()).pool_size(1);
    let channel = bounded("connect", Channel::connect(endpoint))
        .await
        .expect("connect");
    let mut client = StreamerClient::new(channel).accept_compressed(CompressionEncoding::Gzip);
    let mut named = Vec::new();

    let chunk = Chunk {
        seq: 1,
        payload: payload(SIZE),
    };
    let answer = bounded("unary", client.unary(chunk.clone()))
        .await
        .expect("unary");
    named.push(
        answer
            .metadata()
            .get_str("grpc-encoding")
            .map(str::to_owned),
    );
    assert_eq!(answer.into_inner(), chunk);
    let mut compressed: Vec<bool> = sniffer
        .take()
        .answers
        .iter()
        .map(|s| s.compressed)
        .collect();

    let answer = bounded("produce", client.produce(ProduceRequest::default()))
        .await
        .expect("produce");
    named.push(
        answer
            .metadata()
            .get_str("grpc-encoding")
            .map(str::to_owned),
    );
    let mut messages = answer.into_inner();
    let mut count = 0;
    while bounded("message", messages.message())
        .await
        .expect("message")
        .is_some()
    {
        count += 1;
        assert!(count <= 2, "more messages than sent");
    }
    assert_eq!(count, 2);
    compressed.extend(sniffer.take().answers.iter().map(|s| s.compressed));

    let answer = bounded("collect", client.collect(stream::iter([chunk])))
        .await
        .expect("collect");
    named.push(
        answer
            .metadata()
            .get_str("grpc-encoding")
            .map(str::to_owned),
    );
    assert_eq!(answer.into_inner().count, 1);
    compressed.extend(sniffer.take().answers.iter().map(|s| s.compressed));

    server.stop().await;
    (compressed, named)
}

#[tokio::test]
async fn a_marked_answer_goes_plain_and_a_marked_stream_stays_compressed() {
    let gzip = Some("gzip".to_owned());
    let (compressed, named) = run(false).await;
    assert_eq!(
        compressed,
        [true, true, true, true],
        "unmarked: all compressed"
    );
    assert_eq!(named, [gzip.clone(), gzip.clone(), gzip.clone()]);

    let (compressed, named) = run(true).await;
    assert_eq!(
        compressed,
        [false, true, true, false],
        "marked: the unary and client-stream answers plain, the stream's messages not"
    );
    assert_eq!(
        named,
        [gzip.clone(), gzip.clone(), gzip],
        "the encoding is still named"
    );
}
