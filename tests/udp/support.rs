//! The counting echo service, a UDP server around it, and the helpers the UDP tests share.

use bytes::Bytes;
use prost::Message as _;
use sockrpc::service::udp::{
    ReplyCache, UdpClient, UdpClientConfig, UdpOutcome, UdpServer, UdpServerConfig,
    UdpServerCounters, UdpServerStats,
};
use sockrpc::{Code, MetadataMap, MethodPath, Request, Response, Router, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Longest any single wait in these tests may take before it counts as a hang.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
pub(crate) static SLEEP: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Sleep");
pub(crate) static FAIL: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Fail");
pub(crate) static GROW: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Grow");

/// A `Fail` message or `Sleep` token that makes the handler panic (on its first poll, or after
/// its sleep); `quiet_deliberate_panics` keeps these out of the output.
pub(crate) const PANIC: &str = sockrpc_tests::panics::DELIBERATE;
/// A `Fail` message that makes the handler's status carry trailers over the default metadata
/// limit.
pub(crate) const BIG_TRAILERS: &str = "big trailers";
/// A `Fail` message that makes the handler's status carry details over what a REPLY carries.
pub(crate) const BIG_DETAILS: &str = "big details";

/// Counts how often each handler ran: at-most-once is the point of several tests.
#[derive(Default, Clone)]
pub(crate) struct Counting {
    pub(crate) echoes: Arc<AtomicU64>,
    pub(crate) sleeps: Arc<AtomicU64>,
    pub(crate) grows: Arc<AtomicU64>,
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.echoes.fetch_add(1, Ordering::SeqCst);
        let mut trailers = MetadataMap::new();
        if let Some(note) = request.metadata().get_str("x-note") {
            trailers.insert_str("x-note", note).expect("valid");
        }
        // "whoami": the connection info the transport gave the call.
        let conn = request
            .conn_info()
            .map(|c| format!("{:?} {:?} {:?}", c.transport, c.peer, c.local));
        let EchoRequest { payload, id } = request.into_inner();
        let payload = match (payload.as_ref(), conn) {
            (b"whoami", Some(conn)) => Bytes::from(conn),
            _ => payload,
        };
        Ok(Response::from_parts(
            MetadataMap::new(),
            EchoReply { payload, id },
            trailers,
        ))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        let SleepRequest { millis, token } = request.into_inner();
        tokio::time::sleep(Duration::from_millis(millis)).await;
        // After an await: in the task the server moved the call to.
        assert_ne!(token, PANIC, "{PANIC}: after the sleep");
        Ok(Response::new(EchoReply::default()))
    }

    async fn fail(&self, request: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        let FailRequest {
            code,
            message,
            details,
        } = request.into_inner();
        // Before any await: on the server's receive loop, in its one inline poll.
        assert_ne!(message, PANIC, "{PANIC}: on the first poll");
        let mut status = Status::with_details(Code::from_u32(code as u32), message, details);
        if status.message() == BIG_DETAILS {
            // Details over what a REPLY carries (u16::MAX bytes).
            status = Status::with_details(status.code(), BIG_DETAILS, vec![9u8; 70_000]);
        }
        if status.message() == BIG_TRAILERS {
            // Trailers over the default metadata limit (16 KiB).
            let value = "t".repeat(20 * 1024);
            status
                .metadata_mut()
                .insert_str("x-big", value.as_str())
                .expect("valid");
        }
        Err(status)
    }

    async fn grow(&self, request: Request<GrowRequest>) -> Result<Response<EchoReply>, Status> {
        self.grows.fetch_add(1, Ordering::SeqCst);
        let size = request.into_inner().size as usize;
        Ok(Response::new(EchoReply {
            payload: Bytes::from(vec![7u8; size]),
            id: 0,
        }))
    }
}

pub(crate) struct UdpTestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) handlers: Counting,
    pub(crate) cache: Arc<ReplyCache>,
    stats: Arc<UdpServerStats>,
    stop: Option<oneshot::Sender<()>>,
    pub(crate) task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl UdpTestServer {
    pub(crate) async fn start() -> UdpTestServer {
        UdpTestServer::start_on("127.0.0.1:0", UdpServerConfig::default()).await
    }

    /// A server bound to `bind` (with port 0: the port it picked is in `addr`).
    pub(crate) async fn start_on(bind: &str, config: UdpServerConfig) -> UdpTestServer {
        let handlers = Counting::default();
        let socket = UdpSocket::bind(bind).await.expect("bind");
        let router = Router::new().add_service(EchoServer::new(handlers.clone()));
        let cache = Arc::new(ReplyCache::default());
        let dispatcher = sockrpc::server::Dispatcher::new(router);
        let server =
            UdpServer::new(socket, dispatcher, config, Arc::clone(&cache)).expect("udp server");
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        UdpTestServer {
            addr,
            handlers,
            cache,
            stats,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) fn counters(&self) -> UdpServerCounters {
        self.stats.snapshot()
    }

    pub(crate) async fn client(&self) -> UdpClient {
        UdpClient::connect(self.addr, UdpClientConfig::default())
            .await
            .expect("client")
    }

    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(BOUND, &mut self.task)
            .await
            .expect("server stops")
            .expect("task")
            .expect("serve");
    }
}

pub(crate) fn request(message: &impl prost::Message) -> Request<Bytes> {
    Request::new(Bytes::from(message.encode_to_vec()))
}

pub(crate) fn deadline() -> Option<Instant> {
    Some(Instant::now() + BOUND)
}

pub(crate) fn reply_of(outcome: UdpOutcome) -> Result<Response<Bytes>, Status> {
    match outcome {
        UdpOutcome::Reply(answer) => answer,
        other => panic!("expected a UDP reply, got {other:?}"),
    }
}

pub(crate) fn echo_reply(response: &Response<Bytes>) -> EchoReply {
    EchoReply::decode(response.get_ref().clone()).expect("decode EchoReply")
}

/// Polls `check` every 10 ms for up to [`BOUND`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deterministic xorshift64.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub(crate) fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

/// Signals a server task to stop and waits, up to [`BOUND`], for it to end cleanly.
pub(crate) async fn stop_server(
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let _ = stop.send(());
    tokio::time::timeout(BOUND, task)
        .await
        .expect("server stops")
        .expect("task")
        .expect("serve");
}

/// A UDP proxy: clients talk to the returned address, the proxy to `server`. It forwards every
/// request, and every datagram from the server for which `drop` says false; it counts the
/// dropped ones.
pub(crate) async fn dropping_proxy(
    server: SocketAddr,
    mut drop: impl FnMut(&[u8]) -> bool + Send + 'static,
) -> (SocketAddr, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let front = UdpSocket::bind("127.0.0.1:0").await.expect("bind front");
    let back = UdpSocket::bind("127.0.0.1:0").await.expect("bind back");
    back.connect(server).await.expect("connect back");
    let addr = front.local_addr().expect("addr");
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&dropped);
    let task = tokio::spawn(async move {
        let mut client: Option<SocketAddr> = None;
        let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
        loop {
            tokio::select! {
                got = front.recv_from(&mut up) => if let Ok((n, from)) = got {
                    client = Some(from);
                    let _ = back.send(&up[..n]).await;
                },
                got = back.recv(&mut down) => if let Ok(n) = got {
                    if drop(&down[..n]) {
                        counted.fetch_add(1, Ordering::Relaxed);
                    } else if let Some(client) = client {
                        let _ = front.send_to(&down[..n], client).await;
                    }
                },
            }
        }
    });
    (addr, dropped, task)
}

/// A REQUEST datagram for `Echo` with `payload` bytes, from client `instance`, without a cookie.
pub(crate) fn raw_echo_request(instance: u64, call_id: u32, payload: usize) -> bytes::BytesMut {
    use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
    let message = EchoRequest {
        payload: Bytes::from(vec![9u8; payload]),
        id: u64::from(call_id),
    }
    .encode_to_vec();
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: instance,
        call_id,
        cookie: [0; COOKIE_LEN],
    };
    let mut out = bytes::BytesMut::new();
    datagram::encode_request(
        &mut out,
        &header,
        None,
        None,
        &ECHO,
        &MetadataMap::new(),
        &message,
    );
    out
}
