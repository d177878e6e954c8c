//! The services under test: an echo whose `Fail` and `Sleep` can panic on demand, and a streamer
//! whose response stream can panic midway, each counting what its handlers saw.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::{Code, Request, Response, Status, Streaming};
use sockrpc_tests::echo::echo_server::Echo;
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_server::Streamer;
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `Fail` with this message panics on its first poll (inline, on the connection's task);
/// `Sleep` with this token panics after its sleep (in a task of its own).
pub(crate) const PANIC: &str = "panic";

/// What the handlers saw, shared by every clone of a service.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// `Sleep` handlers that started.
    pub(crate) sleeping: AtomicUsize,
    /// Request messages `Collect` handlers read.
    pub(crate) collected: AtomicUsize,
}

impl Seen {
    pub(crate) fn sleeping(&self) -> usize {
        self.sleeping.load(Ordering::SeqCst)
    }

    pub(crate) fn collected(&self) -> usize {
        self.collected.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HardEcho {
    pub(crate) seen: Arc<Seen>,
}

impl Echo for HardEcho {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EchoReply {
            payload: request.payload,
            id: request.id,
        }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.seen.sleeping.fetch_add(1, Ordering::SeqCst);
        let SleepRequest { millis, token } = request.into_inner();
        if millis > 0 {
            tokio::time::sleep(Duration::from_millis(millis.min(60_000))).await;
        }
        if token == PANIC {
            panic!("deliberate panic in a handler, after an await");
        }
        // A large token is not echoed: the caller only needs to know the call ran.
        Ok(Response::new(EchoReply {
            payload: Bytes::new(),
            id: token.len() as u64,
        }))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        if request.message == PANIC {
            panic!("deliberate panic in a handler, on its first poll");
        }
        let code = u32::try_from(request.code).unwrap_or(2);
        Err(Status::new(Code::from_u32(code), request.message))
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        let size = request.into_inner().size.min(1 << 20) as usize;
        Ok(Response::new(EchoReply {
            payload: vec![0; size].into(),
            id: 0,
        }))
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HardStreamer {
    pub(crate) seen: Arc<Seen>,
}

type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for HardStreamer {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(Chunk {
            seq: request.into_inner().seq,
            payload: Bytes::new(),
        }))
    }

    type ProduceStream = ChunkStream;

    /// Streams `count` chunks; with `fail_after` set, the stream panics when it reaches that
    /// many instead.
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        let ProduceRequest {
            count,
            size,
            fail_after,
            ..
        } = request.into_inner();
        let payload = Bytes::from(vec![0xA5; size.min(1 << 16) as usize]);
        let chunks = stream::iter(0..count).map(move |seq| {
            if fail_after == Some(seq) {
                panic!("deliberate panic in a response stream, after {seq} messages");
            }
            Ok(Chunk {
                seq,
                payload: payload.clone(),
            })
        });
        Ok(Response::new(chunks.boxed()))
    }

    async fn collect(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Summary>, Status> {
        let summary = sockrpc_tests::summary::summarize(request.into_inner(), |_| {
            self.seen.collected.fetch_add(1, Ordering::SeqCst);
        })
        .await?;
        Ok(Response::new(summary))
    }

    type PingPongStream = ChunkStream;

    async fn ping_pong(
        &self,
        _request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    type GatherStream = ChunkStream;

    async fn gather(
        &self,
        _request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}
