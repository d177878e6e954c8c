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

/// Inside an `impl Streamer for X`, the named methods (`unary`, `produce`, `collect`,
/// `ping_pong`, `gather`) as [`Mirror`]'s, with their associated stream types: for a test
/// service that does something of its own in one or two methods only.
#[macro_export]
macro_rules! mirror_methods {
    ($($method:ident),* $(,)?) => { $( $crate::mirror_methods!(@one $method); )* };
    (@one unary) => {
        async fn unary(
            &self,
            request: sockrpc::Request<$crate::stream::Chunk>,
        ) -> Result<sockrpc::Response<$crate::stream::Chunk>, sockrpc::Status> {
            $crate::stream::streamer_server::Streamer::unary(&$crate::mirror::Mirror, request).await
        }
    };
    (@one produce) => {
        type ProduceStream = $crate::mirror::Chunks;
        async fn produce(
            &self,
            request: sockrpc::Request<$crate::stream::ProduceRequest>,
        ) -> Result<sockrpc::Response<$crate::mirror::Chunks>, sockrpc::Status> {
            $crate::stream::streamer_server::Streamer::produce(&$crate::mirror::Mirror, request)
                .await
        }
    };
    (@one collect) => {
        async fn collect(
            &self,
            request: sockrpc::Request<sockrpc::Streaming<$crate::stream::Chunk>>,
        ) -> Result<sockrpc::Response<$crate::stream::Summary>, sockrpc::Status> {
            $crate::stream::streamer_server::Streamer::collect(&$crate::mirror::Mirror, request)
                .await
        }
    };
    (@one ping_pong) => {
        type PingPongStream = $crate::mirror::Chunks;
        async fn ping_pong(
            &self,
            request: sockrpc::Request<sockrpc::Streaming<$crate::stream::Chunk>>,
        ) -> Result<sockrpc::Response<$crate::mirror::Chunks>, sockrpc::Status> {
            $crate::stream::streamer_server::Streamer::ping_pong(&$crate::mirror::Mirror, request)
                .await
        }
    };
    (@one gather) => {
        type GatherStream = $crate::mirror::Chunks;
        async fn gather(
            &self,
            request: sockrpc::Request<sockrpc::Streaming<$crate::stream::Chunk>>,
        ) -> Result<sockrpc::Response<$crate::mirror::Chunks>, sockrpc::Status> {
            $crate::stream::streamer_server::Streamer::gather(&$crate::mirror::Mirror, request)
                .await
        }
    };
}
