//! A `Streamer` that echoes: a unary call's request, and each message of a bidirectional
//! stream as it comes. The tests that need a stream to carry bytes both ways, and nothing else,
//! serve this one.

use crate::stream::streamer_server::Streamer;
use crate::stream::{Chunk, ProduceRequest, Summary};
use futures_util::StreamExt;
use sockrpc::{Request, Response, Status, Streaming};

/// Echoes unary calls and each message of a bidirectional stream (`PingPong`); the other
/// methods are `UNIMPLEMENTED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mirror;

/// The answer stream of the streaming methods.
pub type Chunks = futures_util::stream::BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for Mirror {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type ProduceStream = Chunks;

    async fn produce(&self, _: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("Mirror only echoes"))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("Mirror only echoes"))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Chunks>, Status> {
        let echoes = futures_util::stream::unfold(request.into_inner(), |mut requests| async {
            match requests.message().await {
                Ok(Some(chunk)) => Some((Ok(chunk), requests)),
                Ok(None) => None,
                Err(status) => Some((Err(status), requests)),
            }
        });
        Ok(Response::new(echoes.boxed()))
    }

    type GatherStream = Chunks;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("Mirror only echoes"))
    }
}
