//! What every compression test shares: a service over all four call shapes that answers with
//! what it was sent, a server per configuration, and a proxy that reads every frame on its way
//! through, so a test sees which MESSAGE frames carried `FLAG_COMPRESSED`.

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::protocol::frame::Frame;
use sockrpc::transport::FrameDecoder;
use sockrpc::{CompressionSwitch, Limits, Request, Response, Server, Status, Streaming};
use sockrpc_tests::stream::streamer_server::{Streamer, StreamerServer};
use sockrpc_tests::stream::{Chunk, ProduceRequest, Summary};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::codec::Decoder;

/// Bound on every single step.
pub(crate) const STEP: Duration = Duration::from_secs(10);

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// A compressible payload of `len` bytes (text, repeated).
pub(crate) fn payload(len: usize) -> Bytes {
    let text = b"sockrpc compresses what repeats; ";
    Bytes::from(text.iter().copied().cycle().take(len).collect::<Vec<u8>>())
}

/// A unary request with this `seq` fails with its payload as the status message.
pub(crate) const FAIL_SEQ: u64 = u64::MAX;

/// Echoes what it is sent, in every shape.
#[derive(Clone, Default)]
pub(crate) struct EchoStreamer;

type ChunkStream = BoxStream<'static, Result<Chunk, Status>>;

impl Streamer for EchoStreamer {
    async fn unary(&self, request: Request<Chunk>) -> Result<Response<Chunk>, Status> {
        let chunk = request.into_inner();
        if chunk.seq == FAIL_SEQ {
            // The payload is the status message.
            let message = String::from_utf8_lossy(&chunk.payload).into_owned();
            return Err(Status::invalid_argument(message));
        }
        Ok(Response::new(chunk))
    }

    type ProduceStream = ChunkStream;

    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        // `x-plain-from: N`: the chunks from N on go plain (the call's compression switch).
        let switch = request.extensions().get::<CompressionSwitch>().cloned();
        let plain_from = request
            .metadata()
            .get_str("x-plain-from")
            .and_then(|v| v.parse::<u64>().ok());
        let ProduceRequest { count, size, .. } = request.into_inner();
        let chunks = (0..count).map(move |seq| {
            if let (Some(switch), true) = (&switch, Some(seq) == plain_from) {
                switch.set(false);
            }
            Ok(Chunk {
                seq,
                payload: payload(size as usize),
            })
        });
        Ok(Response::new(stream::iter(chunks).boxed()))
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
        let requests = request.into_inner();
        let answers = stream::unfold(requests, |mut requests| async move {
            match requests.message().await {
                Ok(Some(chunk)) => Some((Ok(chunk), requests)),
                Ok(None) => None,
                Err(status) => Some((Err(status), requests)),
            }
        });
        Ok(Response::new(answers.boxed()))
    }

    type GatherStream = ChunkStream;

    async fn gather(
        &self,
        _request: Request<Streaming<Chunk>>,
    ) -> Result<Response<ChunkStream>, Status> {
        Err(Status::unimplemented("not used here"))
    }
}

/// A server on `127.0.0.1:0` serving `service`.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    inner: sockrpc_tests::serve::Running,
}

impl Running {
    pub(crate) fn start(service: StreamerServer<EchoStreamer>) -> Running {
        Running::start_with(Server::builder(), service)
    }

    /// Serves a trait object (`Arc<dyn DynStreamer>`).
    pub(crate) fn start_dyn(
        service: StreamerServer<
            std::sync::Arc<dyn sockrpc_tests::stream::streamer_server::DynStreamer>,
        >,
    ) -> Running {
        Running::serve(Server::builder().add_service(service))
    }

    /// As [`start`](Running::start), on a builder already configured.
    pub(crate) fn start_with(
        builder: sockrpc::server::ServerBuilder<tower::layer::util::Identity>,
        service: StreamerServer<EchoStreamer>,
    ) -> Running {
        Running::serve(builder.add_service(service))
    }

    /// Serves what `builder` serves on UDP too (a socket on 127.0.0.1, default settings), and
    /// gives the endpoint that reaches it over both.
    pub(crate) async fn serve_with_udp(
        builder: sockrpc::server::ServerBuilder<tower::layer::util::Identity>,
    ) -> (Running, sockrpc::Endpoint) {
        let udp_socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind udp");
        let udp_addr = udp_socket.local_addr().expect("addr");
        let config = sockrpc::service::udp::UdpServerConfig::default();
        let running = Running::serve(builder.udp(udp_socket, config));
        let endpoint = sockrpc::Endpoint::new("127.0.0.1", running.addr.port()).udp(udp_addr);
        (running, endpoint)
    }

    fn serve(builder: sockrpc::server::ServerBuilder<tower::layer::util::Identity>) -> Running {
        let inner = sockrpc_tests::serve::Running::start(builder);
        Running {
            addr: inner.addr,
            inner,
        }
    }

    pub(crate) async fn stop(self) {
        self.inner.stop().await;
    }
}

/// One message as the proxy saw it: a MESSAGE frame, or a request folded into its OPEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) call_id: u32,
    pub(crate) compressed: bool,
    pub(crate) len: usize,
}

/// What went through the proxy, by direction.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    /// Messages client → server (MESSAGE frames and requests folded into OPEN).
    pub(crate) requests: Vec<Seen>,
    /// MESSAGE frames server → client.
    pub(crate) answers: Vec<Seen>,
    /// OPEN frames with encoding fields, and HEADERS with them.
    pub(crate) opens_with_fields: usize,
    pub(crate) headers_with_fields: usize,
}

/// A TCP proxy in front of `upstream` that decodes every frame both ways.
pub(crate) struct Sniffer {
    pub(crate) addr: SocketAddr,
    pub(crate) wire: Arc<Mutex<Wire>>,
    task: JoinHandle<()>,
}

impl Sniffer {
    pub(crate) async fn start(upstream: SocketAddr) -> Sniffer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let wire = Arc::new(Mutex::new(Wire::default()));
        let seen = Arc::clone(&wire);
        let task = tokio::spawn(async move {
            // At most a few connections per test; each pair of pumps ends with its sockets.
            for _ in 0..16 {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, Arc::clone(&seen), true));
                tokio::spawn(pump(server_read, client_write, Arc::clone(&seen), false));
            }
        });
        Sniffer { addr, wire, task }
    }

    pub(crate) fn take(&self) -> Wire {
        std::mem::take(&mut *self.wire.lock().expect("lock"))
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    wire: Arc<Mutex<Wire>>,
    to_server: bool,
) {
    let limits = Limits::default().with_max_message_size(64 * 1024 * 1024);
    let mut decoder = FrameDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if to.write_all(&chunk[..n]).await.is_err() {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let mut wire = wire.lock().expect("lock");
            match frame {
                Frame::Message {
                    call_id,
                    compressed,
                    body,
                    ..
                } => {
                    let seen = Seen {
                        call_id,
                        compressed,
                        len: body.len(),
                    };
                    if to_server {
                        wire.requests.push(seen);
                    } else {
                        wire.answers.push(seen);
                    }
                }
                Frame::Open {
                    call_id,
                    encoding,
                    message,
                    message_compressed,
                    ..
                } => {
                    wire.opens_with_fields += usize::from(encoding.is_some());
                    // A unary request folded into its OPEN is a request message all the same.
                    if let Some(body) = message {
                        wire.requests.push(Seen {
                            call_id,
                            compressed: message_compressed,
                            len: body.len(),
                        });
                    }
                }
                Frame::Headers {
                    encoding: Some(_), ..
                } => wire.headers_with_fields += 1,
                _ => {}
            }
        }
    }
}
