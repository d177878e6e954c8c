//! gRPC's `grpc.testing.BenchmarkService`, as gRPC's reference servers implement it
//! (`benchmark_service.cc`), so that gRPC's benchmark scenarios and load generators written for
//! them run against sockrpc unchanged:
//!
//! - `UnaryCall`: one answer whose payload is `response_size` zero bytes;
//! - `StreamingCall`: ping-pong, one such answer per request, ending when the client half-closes;
//! - `StreamingFromClient`: reads every request, answers once at the end (the last request's
//!   `response_size`);
//! - `StreamingFromServer`: answers the one request again and again, as fast as the client takes
//!   the answers (flow control paces it), until the client cancels;
//! - `StreamingBothWays`: after the first request, answers without waiting for requests while a
//!   task of its own reads whatever the client sends, until the client half-closes.
//!
//! [`BenchmarkServer::live_streams`] counts the response streams still alive, so that a test
//! can see an unbounded stream stop once its client cancels, and
//! [`BenchmarkServer::streamed_answers`] the answers they produced, so that it can see how far a
//! flood runs ahead of a slow reader.

use crate::pb::benchmark_service_server::{BenchmarkService, BenchmarkServiceServer};
use crate::pb::{Payload, PayloadType, SimpleRequest, SimpleResponse};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use sockrpc::{Request, Response, Status, Streaming};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The largest `response_size` the server builds; larger sizes fail with `RESOURCE_EXHAUSTED`
/// instead of allocating whatever a client asks for.
pub const MAX_RESPONSE_SIZE: usize = crate::server::MAX_PAYLOAD;

type AnswerStream = BoxStream<'static, Result<SimpleResponse, Status>>;

/// The `BenchmarkService` implementation. Clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct BenchmarkServer {
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    live: AtomicU64,
    answers: AtomicU64,
}

impl BenchmarkServer {
    /// A server with no stream alive.
    pub fn new() -> BenchmarkServer {
        BenchmarkServer::default()
    }

    /// Response streams (of the streaming methods) that have started and not yet been dropped:
    /// an unbounded `StreamingFromServer` counts until its client cancels it and the server lets
    /// it go.
    pub fn live_streams(&self) -> u64 {
        self.counts.live.load(Ordering::SeqCst)
    }

    /// Answers the streaming methods' response streams have produced (taken by the server's
    /// connection to be sent), over all calls.
    pub fn streamed_answers(&self) -> u64 {
        self.counts.answers.load(Ordering::SeqCst)
    }

    /// The generated tower service for a router: `Server::builder().add_service(..)`.
    pub fn into_service(self) -> BenchmarkServiceServer<BenchmarkServer> {
        BenchmarkServiceServer::new(self)
    }

    fn alive(&self) -> Alive {
        self.counts.live.fetch_add(1, Ordering::SeqCst);
        Alive(self.counts.clone())
    }
}

/// Counted in [`BenchmarkServer::live_streams`] while it lives; counts a stream's answers.
struct Alive(Arc<Counts>);

impl Alive {
    fn answered(&self) {
        self.0.answers.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The answer to `request`: a payload of `response_size` zero bytes (none for 0, as gRPC's).
fn answer(request: &SimpleRequest) -> Result<SimpleResponse, Status> {
    let size = usize::try_from(request.response_size).map_err(|_| {
        Status::invalid_argument(format!("negative response_size {}", request.response_size))
    })?;
    if size > MAX_RESPONSE_SIZE {
        return Err(Status::resource_exhausted(format!(
            "requested a response of {size} bytes; this server builds at most {MAX_RESPONSE_SIZE}"
        )));
    }
    Ok(SimpleResponse {
        payload: (size > 0).then(|| Payload {
            r#type: PayloadType::Compressable as i32,
            body: vec![0; size],
        }),
        ..Default::default()
    })
}

/// `StreamingBothWays`'s answers: `response` whenever polled, while a task of its own reads
/// every request (as the reference's reader thread: reading never waits for answers to go, nor
/// answering for requests to come); ends once the client half-closed, fails if the request
/// stream failed. Dropped, it stops its reader.
struct BothWays {
    reader: tokio::task::JoinHandle<Result<(), Status>>,
    response: SimpleResponse,
    done: bool,
    alive: Alive,
}

impl Stream for BothWays {
    type Item = Result<SimpleResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(read) = Pin::new(&mut self.reader).poll(cx) {
            self.done = true;
            return Poll::Ready(match read {
                Ok(Ok(())) => None,
                Ok(Err(status)) => Some(Err(status)),
                Err(_) => Some(Err(Status::internal("the request reader failed"))),
            });
        }
        self.alive.answered();
        Poll::Ready(Some(Ok(self.response.clone())))
    }
}

impl Drop for BothWays {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl BenchmarkService for BenchmarkServer {
    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        answer(request.get_ref()).map(Response::new)
    }

    type StreamingCallStream = AnswerStream;

    async fn streaming_call(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Self::StreamingCallStream>, Status> {
        let alive = self.alive();
        let answers = request.into_inner().map(move |request| {
            alive.answered();
            request.and_then(|r| answer(&r))
        });
        Ok(Response::new(answers.boxed()))
    }

    async fn streaming_from_client(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let mut requests = request.into_inner();
        let mut last = SimpleRequest::default();
        while let Some(request) = requests.message().await? {
            last = request;
        }
        answer(&last).map(Response::new)
    }

    type StreamingFromServerStream = AnswerStream;

    async fn streaming_from_server(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<Self::StreamingFromServerStream>, Status> {
        let response = answer(request.get_ref())?;
        let alive = self.alive();
        let answers = stream::repeat_with(move || {
            alive.answered();
            Ok(response.clone())
        });
        Ok(Response::new(answers.boxed()))
    }

    type StreamingBothWaysStream = AnswerStream;

    async fn streaming_both_ways(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Self::StreamingBothWaysStream>, Status> {
        let mut requests = request.into_inner();
        // The first request sets the answer; a client that half-closes at once gets none.
        let Some(first) = requests.message().await? else {
            return Ok(Response::new(stream::empty().boxed()));
        };
        let response = answer(&first)?;
        let reader = tokio::spawn(async move {
            while requests.message().await?.is_some() {}
            Ok(())
        });
        let answers = BothWays {
            reader,
            response,
            done: false,
            alive: self.alive(),
        };
        Ok(Response::new(answers.boxed()))
    }
}
