//! What the signals tests share: a counting echo service, a running server, and raw frames
//! written and read by hand.

use bytes::Bytes;
use sockrpc::server::{Finish, ServerBuilder};
use sockrpc::{Code, MethodPath, Request, Response, Server, Status};
use sockrpc_tests::echo::echo_server::{Echo, EchoServer};
use sockrpc_tests::echo::{EchoReply, EchoRequest, FailRequest, GrowRequest, SleepRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Longest any single wait may take before it counts as a hang.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) static ECHO: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Echo");
pub(crate) static GROW: MethodPath = MethodPath::from_static("/sockrpc.test.Echo/Grow");

// Frame kinds and flags as `docs/PROTOCOL.md` numbers them.
pub(crate) const OPEN: u8 = 1;
pub(crate) const MESSAGE: u8 = 3;
pub(crate) const END: u8 = 4;
pub(crate) const GOAWAY: u8 = 8;
pub(crate) const FLAG_END_STREAM: u8 = 0x01;
pub(crate) const FLAG_NOT_PROCESSED: u8 = 0x04;
pub(crate) const PREFACE: &[u8; 8] = b"SOCKRPC\x01";

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < BOUND, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The service: counts every handler run and remembers the metadata keys it was shown.

#[derive(Clone, Default)]
pub(crate) struct Counting {
    pub(crate) echoes: Arc<AtomicU64>,
    pub(crate) sleeps: Arc<AtomicU64>,
    pub(crate) fails: Arc<AtomicU64>,
    pub(crate) grows: Arc<AtomicU64>,
    /// Metadata keys each `Echo` run saw, in order.
    pub(crate) seen_keys: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Echo for Counting {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        self.echoes.fetch_add(1, Ordering::SeqCst);
        let keys = request
            .metadata()
            .iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        self.seen_keys.lock().expect("lock").push(keys);
        let EchoRequest { payload, id } = request.into_inner();
        Ok(Response::new(EchoReply { payload, id }))
    }

    async fn sleep(&self, request: Request<SleepRequest>) -> Result<Response<EchoReply>, Status> {
        self.sleeps.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(request.into_inner().millis)).await;
        Ok(Response::new(EchoReply::default()))
    }

    /// Forges the framework's "never started" status after doing its work.
    async fn fail(&self, _: Request<FailRequest>) -> Result<Response<EchoReply>, Status> {
        self.fails.fetch_add(1, Ordering::SeqCst);
        Err(Status::not_processed("forged by a handler that did run"))
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

pub(crate) struct Running {
    pub(crate) tcp: SocketAddr,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) handlers: Counting,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Starts `builder` (services already mounted) on a fresh TCP port, and on a UDP port too
    /// when `udp`.
    pub(crate) async fn start<L>(
        builder: ServerBuilder<L>,
        handlers: Counting,
        udp: bool,
    ) -> Running
    where
        L: Finish + Send + 'static,
    {
        let listener =
            sockrpc::transport::bind_tcp("127.0.0.1:0".parse().expect("addr"), &Default::default())
                .expect("bind tcp");
        let tcp = listener.local_addr().expect("addr");
        let (builder, udp) = if udp {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let addr = socket.local_addr().expect("addr");
            (builder.udp(socket, Default::default()), Some(addr))
        } else {
            (builder, None)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(builder.serve_with_listener_and_shutdown(listener, async {
            let _ = stopped.await;
        }));
        Running {
            tcp,
            udp,
            handlers,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) async fn echo(udp: bool) -> Running {
        let handlers = Counting::default();
        let builder = Server::builder()
            .grace_period(BOUND)
            .add_service(EchoServer::new(handlers.clone()));
        Running::start(builder, handlers, udp).await
    }

    pub(crate) fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub(crate) async fn stop(mut self) {
        self.signal_stop();
        bounded("server shutdown", &mut self.task)
            .await
            .expect("server task")
            .expect("serve");
    }
}

// ---------------------------------------------------------------------------------------------
// Raw frames, written and read by hand.

/// Appends a frame: `length: u32 | kind | flags | reserved: u16 | call id: u32 | body`.
pub(crate) fn put_frame(out: &mut Vec<u8>, kind: u8, flags: u8, call_id: u32, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&call_id.to_be_bytes());
    out.extend_from_slice(body);
}

/// A metadata block, with any keys at all (the API would refuse the reserved ones).
pub(crate) fn metadata_block(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut block = (entries.len() as u16).to_be_bytes().to_vec();
    for (key, value) in entries {
        block.push(key.len() as u8);
        block.extend_from_slice(key.as_bytes());
        block.extend_from_slice(&(value.len() as u16).to_be_bytes());
        block.extend_from_slice(value.as_bytes());
    }
    block
}

/// OPEN + MESSAGE(END_STREAM) of a unary call with no deadline.
pub(crate) fn put_unary(
    out: &mut Vec<u8>,
    call_id: u32,
    path: &MethodPath,
    metadata: &[(&str, &str)],
    message: &impl prost::Message,
) {
    let path = path.as_bytes();
    let mut open = 0u64.to_be_bytes().to_vec();
    open.extend_from_slice(&(path.len() as u16).to_be_bytes());
    open.extend_from_slice(path);
    open.extend_from_slice(&metadata_block(metadata));
    put_frame(out, OPEN, 0, call_id, &open);
    put_frame(
        out,
        MESSAGE,
        FLAG_END_STREAM,
        call_id,
        &message.encode_to_vec(),
    );
}

/// END: `code: u32 | msg_len: u32 | message | details_len: u32 | details | metadata block`.
pub(crate) fn put_end(
    out: &mut Vec<u8>,
    call_id: u32,
    flags: u8,
    code: Code,
    message: &str,
    trailers: &[(&str, &str)],
) {
    let mut body = code.as_u32().to_be_bytes().to_vec();
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    body.extend_from_slice(&metadata_block(trailers));
    put_frame(out, END, flags, call_id, &body);
}

/// GOAWAY: `last_call_id: u32 | code: u32 | msg_len: u16 | message`.
pub(crate) fn put_goaway(out: &mut Vec<u8>, last_call_id: u32, code: Code, message: &str) {
    let mut body = last_call_id.to_be_bytes().to_vec();
    body.extend_from_slice(&code.as_u32().to_be_bytes());
    body.extend_from_slice(&(message.len() as u16).to_be_bytes());
    body.extend_from_slice(message.as_bytes());
    put_frame(out, GOAWAY, 0, 0, &body);
}

#[derive(Debug)]
pub(crate) struct RawFrame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) call_id: u32,
    pub(crate) body: Vec<u8>,
}

/// The next frame, or `None` at a clean end of stream.
pub(crate) async fn read_frame(stream: &mut TcpStream) -> Option<RawFrame> {
    let mut header = [0u8; 12];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(err) => panic!("read: {err}"),
    }
    let len = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    assert!(len < 1 << 24, "frame of {len} bytes");
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.expect("frame body");
    Some(RawFrame {
        kind: header[4],
        flags: header[5],
        call_id: u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")),
        body,
    })
}

/// Reads frames (bounded) until one of `kind` for `call_id`; returns it and those before it.
pub(crate) async fn read_until(
    stream: &mut TcpStream,
    kind: u8,
    call_id: u32,
) -> (RawFrame, Vec<RawFrame>) {
    bounded("the expected frame", async {
        let mut before = Vec::new();
        loop {
            let frame = read_frame(stream)
                .await
                .unwrap_or_else(|| panic!("stream ended before frame {kind} of call {call_id}"));
            if frame.kind == kind && frame.call_id == call_id {
                return (frame, before);
            }
            before.push(frame);
        }
    })
    .await
}

pub(crate) struct End {
    pub(crate) code: u32,
    pub(crate) message: String,
    pub(crate) trailers: Vec<String>,
}

pub(crate) fn parse_end(body: &[u8]) -> End {
    let u32_at = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let code = u32_at(0);
    let msg_len = u32_at(4) as usize;
    let message = String::from_utf8_lossy(&body[8..8 + msg_len]).into_owned();
    let mut at = 8 + msg_len;
    let details_len = u32_at(at) as usize;
    at += 4 + details_len;
    let count = u16::from_be_bytes([body[at], body[at + 1]]);
    at += 2;
    let mut trailers = Vec::new();
    for _ in 0..count {
        let key_len = usize::from(body[at]);
        trailers.push(String::from_utf8_lossy(&body[at + 1..at + 1 + key_len]).into_owned());
        at += 1 + key_len;
        let value_len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
        at += 2 + value_len;
    }
    End {
        code,
        message,
        trailers,
    }
}

/// A raw client connection: both prefaces exchanged.
pub(crate) async fn raw_connect(addr: SocketAddr) -> TcpStream {
    let mut stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    stream.write_all(PREFACE).await.expect("preface");
    let mut theirs = [0u8; 8];
    bounded("server preface", stream.read_exact(&mut theirs))
        .await
        .expect("server preface");
    assert_eq!(&theirs, PREFACE);
    stream
}
