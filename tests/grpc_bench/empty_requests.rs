//! A client streaming empty requests to a handler that does not read them, on a connection
//! other calls share.
//!
//! Request messages count their bytes against the stream's window and their bytes + 64 against
//! the connection's (16 MiB). An empty request therefore took no stream credit: one stream
//! whose handler was not reading took the whole connection window (262,144 empty requests), and
//! every other stream on the connection then waited for credit that only that handler could
//! free: a stall. With gRPC, each message costs its 5-byte prefix of the stream's window.

use crate::support::{bounded, Bench, STEP, WHOLE};
use futures_util::stream::{self, StreamExt};
use sockrpc::protocol::frame::{MESSAGE_CHARGE, STREAM_WINDOW};
use sockrpc::{Request, Response, Server, Status, Streaming};
use sockrpc_interop::pb::benchmark_service_server::BenchmarkService;
use sockrpc_interop::pb::{SimpleRequest, SimpleResponse};
use sockrpc_interop::BenchmarkServer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Empty requests the client offers the stuck stream: past what the connection window takes.
const OFFERED: u64 = 300_000;

/// `BenchmarkServer`, but `StreamingFromClient` never reads its requests (a busy handler).
#[derive(Clone, Default)]
struct Holding(BenchmarkServer);

type Answers = <BenchmarkServer as BenchmarkService>::StreamingCallStream;

impl BenchmarkService for Holding {
    async fn unary_call(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<SimpleResponse>, Status> {
        self.0.unary_call(request).await
    }

    type StreamingCallStream = Answers;

    async fn streaming_call(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Answers>, Status> {
        self.0.streaming_call(request).await
    }

    async fn streaming_from_client(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<SimpleResponse>, Status> {
        let _held = request;
        std::future::pending().await
    }

    type StreamingFromServerStream = Answers;

    async fn streaming_from_server(
        &self,
        request: Request<SimpleRequest>,
    ) -> Result<Response<Answers>, Status> {
        self.0.streaming_from_server(request).await
    }

    type StreamingBothWaysStream = Answers;

    async fn streaming_both_ways(
        &self,
        request: Request<Streaming<SimpleRequest>>,
    ) -> Result<Response<Answers>, Status> {
        self.0.streaming_both_ways(request).await
    }
}

/// A stream of empty requests to a handler that does not read stops at its own window, and a
/// ping-pong stream on the same connection still gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_requests_to_a_stuck_handler_leave_room_for_other_streams() {
    let service = sockrpc_interop::pb::benchmark_service_server::BenchmarkServiceServer::new(
        Holding::default(),
    );
    let bench = Bench::start_with(Server::builder().add_service(service));
    let mut client = bench.client().await;
    tokio::time::timeout(WHOLE, async {
        let offered = Arc::new(AtomicU64::new(0));
        let counted = offered.clone();
        let requests = stream::iter(0..OFFERED).map(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            SimpleRequest::default()
        });
        let mut stuck_client = client.clone();
        let stuck = tokio::spawn(async move { stuck_client.streaming_from_client(requests).await });

        // The client sends until flow control holds it.
        let deadline = Instant::now() + STEP;
        let mut last = offered.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = offered.load(Ordering::SeqCst);
            if (now == last && now > 0) || Instant::now() > deadline {
                last = now;
                break;
            }
            last = now;
        }
        // The window's worth of charges, and the one message the sender pulls before it waits.
        let bound = (STREAM_WINDOW / MESSAGE_CHARGE) as u64 + 16;
        assert!(
            last <= bound,
            "{last} empty requests went to a handler that read none (bound {bound})"
        );

        // Another stream on the same connection is not starved of connection credit.
        let (tx, rx) = tokio::sync::mpsc::channel::<SimpleRequest>(1);
        let pings = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        tx.send(SimpleRequest::default()).await.expect("queued");
        let mut pongs = bounded("open StreamingCall", client.streaming_call(pings))
            .await
            .expect("StreamingCall opens")
            .into_inner();
        bounded("the pong", pongs.message())
            .await
            .expect("a pong")
            .expect("a pong, not the end");
        drop(tx);
        stuck.abort();
    })
    .await
    .expect("test finished in time");
    bench.running.stop().await;
}
