//! A server whose calls take as long as they are asked to (Echo's `Sleep`, Streamer's
//! `Produce` with a delay), over plain TCP, TLS or TCP with UDP beside it: what a call in
//! flight needs while the runtime that made its connection shuts down.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::tls::{ServerTls, ServerTlsConfig};
use sockrpc::{Request, Response, Status, Streaming};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Echo: `echo` answers at once, `sleep` after the time asked, counting the sleeps begun (a
/// test waits for its calls to be in flight by that count, not by a guess of how long it takes).
#[derive(Clone, Default)]
struct Slow {
    sleeps: Arc<AtomicUsize>,
}

impl Echo for Slow {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }

    async fn grow(&self, _: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

type Chunks = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for Slow {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type ProduceStream = Chunks;

    /// `count` chunks, `delay_ms` apart (the first at once).
    async fn produce(&self, request: Request<ProduceRequest>) -> Result<Response<Chunks>, Status> {
        let ProduceRequest {
            count, delay_ms, ..
        } = request.into_inner();
        let chunks = stream::iter(0..count).then(move |seq| async move {
            if seq > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            Ok(Chunk {
                seq,
                payload: Bytes::new(),
            })
        });
        Ok(Response::new(chunks.boxed()))
    }

    async fn collect(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Summary>, Status> {
        Err(Status::unimplemented("not used"))
    }

    type PingPongStream = Chunks;

    async fn ping_pong(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not used"))
    }

    type GatherStream = Chunks;

    async fn gather(&self, _: Request<Streaming<Chunk>>) -> Result<Response<Chunks>, Status> {
        Err(Status::unimplemented("not used"))
    }
}

/// What the server listens with besides plain TCP.
#[derive(Default)]
pub(crate) struct Options {
    /// TLS on the TCP port.
    pub(crate) tls: Option<ServerTlsConfig>,
    /// A UDP socket beside the TCP port.
    pub(crate) udp: bool,
}

/// The running server; stops when dropped.
pub(crate) struct SlowServer {
    pub(crate) tcp: SocketAddr,
    pub(crate) udp: Option<SocketAddr>,
    sleeps: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SlowServer {
    /// Serves Echo and Streamer on free loopback ports; call within the servers' runtime.
    pub(crate) async fn start(options: Options) -> SlowServer {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let listener = sockrpc::transport::bind_tcp(any, &Default::default()).expect("bind tcp");
        let tcp = listener.local_addr().expect("addr");
        let mut builder = sockrpc::Server::builder().grace_period(Duration::from_secs(1));
        if let Some(tls) = options.tls {
            builder = builder.tls_handle(ServerTls::new(tls).expect("server TLS"));
        }
        let mut udp = None;
        if options.udp {
            let socket = tokio::net::UdpSocket::bind(any).await.expect("bind udp");
            udp = Some(socket.local_addr().expect("addr"));
            builder = builder.udp(socket, UdpServerConfig::default());
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let slow = Slow::default();
        let sleeps = Arc::clone(&slow.sleeps);
        tokio::spawn(
            builder
                .add_service(EchoServer::new(slow.clone()))
                .add_service(StreamerServer::new(slow))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        SlowServer {
            tcp,
            udp,
            sleeps,
            stop: Some(stop),
        }
    }

    /// How many `Sleep` calls the server has begun, over its life.
    pub(crate) fn sleeps(&self) -> usize {
        self.sleeps.load(Ordering::SeqCst)
    }

    /// Waits until the server has begun `n` `Sleep` calls over its life (calls in flight, their
    /// requests read), at most until `until`: then `what` did not reach it, and the test fails.
    pub(crate) async fn sleeping(&self, n: usize, until: Instant, what: &str) {
        while self.sleeps() < n {
            assert!(
                Instant::now() < until,
                "{what}: {} of {n} Sleep calls reached the server",
                self.sleeps()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for SlowServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
