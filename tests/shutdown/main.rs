//! Closing a channel (grpc-go's `ClientConn.Close`, grpc-java's `shutdown`, `shutdownNow`,
//! `awaitTermination`): plain, pooled and balanced channels, on real loopback sockets.
//!
//! Every server sits behind a counting TCP proxy ([`Proxy`]), which sees what the server sees:
//! connections opened, and connections still open; a channel that reconnected after its close
//! would show up there as a new accept.

use futures_util::{stream, StreamExt};
use sockrpc::service::discovery;
use sockrpc::{Channel, Code, Endpoint, Request, Response, Server, Status, Streaming};
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

mod balanced;
mod pooled;
mod races;
mod retry;
mod room;
mod single;
mod udp;

/// Bound on every single step.
const STEP: Duration = Duration::from_secs(10);

/// How long a closed channel is watched for a reconnect (its backoff is 10 ms).
const QUIET: Duration = Duration::from_millis(1_500);

/// The number of a unary call the server fails `UNAVAILABLE` at once.
const FAIL: u64 = 666;

/// What the server's handlers saw.
#[derive(Clone, Default)]
struct Gate {
    /// Unary calls that reached the handler.
    entered: Arc<AtomicUsize>,
    /// Unary handlers dropped before they answered (cancelled).
    cancelled: Arc<AtomicUsize>,
    /// Bidi streams whose response stream was dropped (ended or cancelled).
    streams_gone: Arc<AtomicUsize>,
    /// Unary calls failed `UNAVAILABLE` at once (numbered [`FAIL`]).
    failed: Arc<AtomicUsize>,
    /// Released: blocked unary handlers answer.
    release: Arc<watch::Sender<bool>>,
}

/// Counts one up when dropped armed.
struct Armed(Arc<AtomicUsize>, bool);

impl Drop for Armed {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type ChunkStream = sockrpc::BoxStream<Chunk>;

impl Streamer for Gate {
    /// Blocks until the gate is released; a chunk numbered [`FAIL`] fails at once instead.
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        if request.get_ref().seq == FAIL {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(Status::unavailable("asked to fail"));
        }
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut guard = Armed(Arc::clone(&self.cancelled), true);
        let mut released = self.release.subscribe();
        let _ = released.wait_for(|r| *r).await;
        guard.1 = false;
        Ok(Response::new(request.into_inner()))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        _: Request<ProduceRequest>,
    ) -> Result<Response<Self::ProduceStream>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used"))
    }

    type PingPongStream = ChunkStream;

    /// Echoes each chunk.
    async fn ping_pong(
        &self,
        request: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::PingPongStream>, Status> {
        let state = (
            request.into_inner(),
            Armed(Arc::clone(&self.streams_gone), true),
        );
        let answers = stream::unfold(state, |(mut requests, guard)| async move {
            match requests.message().await {
                Ok(Some(chunk)) => Some((Ok(chunk), (requests, guard))),
                Ok(None) => None,
                Err(status) => Some((Err(status), (requests, guard))),
            }
        });
        Ok(Response::new(answers.boxed()))
    }

    type GatherStream = ChunkStream;

    async fn gather(
        &self,
        _: Request<Streaming<Chunk>>,
    ) -> Result<Response<Self::GatherStream>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// A TCP proxy in front of a server, counting connections accepted and still open.
struct Proxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(backend: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (acc, op) = (Arc::clone(&accepted), Arc::clone(&open));
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                acc.fetch_add(1, Ordering::SeqCst);
                let open = Arc::clone(&op);
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            addr,
            accepted,
            open,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server with a [`Gate`], behind a [`Proxy`].
struct Running {
    gate: Gate,
    proxy: Proxy,
    _stop: oneshot::Sender<()>,
}

impl Running {
    async fn start() -> Running {
        // The server's default limit.
        Running::start_limited(4096).await
    }

    /// [`start`](Self::start), taking at most `limit` calls in flight per connection.
    async fn start_limited(limit: usize) -> Running {
        let gate = Gate::default();
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::builder()
                .max_concurrent_calls(limit)
                .add_service(StreamerServer::new(gate.clone()))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        let proxy = Proxy::start(addr).await;
        Running {
            gate,
            proxy,
            _stop: stop,
        }
    }

    /// An endpoint through the proxy: `pool` connections, reconnecting after 10 ms.
    fn endpoint(&self, pool: usize) -> Endpoint {
        let mut backoff = sockrpc::client::Backoff::default();
        backoff.initial = Duration::from_millis(10);
        backoff.max = Duration::from_millis(10);
        Endpoint::new("127.0.0.1", self.proxy.addr.port())
            .pool_size(pool)
            .backoff(backoff)
    }

    fn entered(&self) -> usize {
        self.gate.entered.load(Ordering::SeqCst)
    }
}

/// A bidi stream: its request sender and its answers.
struct Bidi {
    tx: mpsc::Sender<Chunk>,
    answers: Streaming<Chunk>,
}

impl Bidi {
    async fn open<S>(client: &mut StreamerClient<S>) -> Bidi
    where
        S: sockrpc::ClientService,
    {
        let (tx, rx) = mpsc::channel(4);
        let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let answers = bounded("open the stream", client.ping_pong(requests))
            .await
            .expect("stream opens")
            .into_inner();
        let mut bidi = Bidi { tx, answers };
        bidi.round(1).await.expect("first round");
        bidi
    }

    /// Sends chunk `seq` and reads its echo.
    async fn round(&mut self, seq: u64) -> Result<(), Status> {
        let chunk = Chunk {
            seq,
            payload: vec![7u8; 8].into(),
        };
        if self.tx.send(chunk).await.is_err() {
            // The call ended and stopped reading requests: its answers say how.
            bounded("the stream's end", self.answers.message()).await?;
            return Err(Status::internal("request stream gone, the call not failed"));
        }
        match bounded("an echo", self.answers.message()).await? {
            Some(echo) => {
                assert_eq!(echo.seq, seq);
                Ok(())
            }
            None => Err(Status::internal("stream ended early")),
        }
    }
}

async fn bounded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {STEP:?}"))
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < STEP, "{what}: not within {STEP:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A call made after the close: fails `UNAVAILABLE` "channel closed" at once.
fn assert_closed_status(result: Result<impl std::fmt::Debug, Status>) {
    let status = result.expect_err("a call on a closed channel fails");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("channel closed"), "{status:?}");
}

/// `poll_ready` of a closed channel fails, as tower's services do.
async fn assert_not_ready<S>(mut service: S)
where
    S: tower::Service<sockrpc::Call, Error = Status>,
{
    let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
    assert_closed_status(ready);
}

/// Nobody connects to `proxy` for [`QUIET`]: the closed channel does not reconnect.
async fn assert_no_reconnect(proxy: &Proxy, accepted: usize) {
    tokio::time::sleep(QUIET).await;
    assert_eq!(proxy.accepted(), accepted, "a closed channel reconnected");
}

fn unary(seq: u64) -> Chunk {
    Chunk {
        seq,
        payload: Default::default(),
    }
}

/// The fixed discovery of every server's proxy.
fn fixed(servers: &[Running], pool: usize) -> sockrpc::service::discovery::Discovery {
    discovery::fixed(servers.iter().map(|s| s.endpoint(pool))).expect("discovery")
}

type Client = StreamerClient<Channel>;
