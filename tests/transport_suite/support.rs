//! The transport-level harness the cases share, shaped like grpc-java's `AbstractTransportTest`
//! fixtures: a server whose every call is handed to the test as a [`ServerCall`] (the test
//! plays the handler: reads requests, writes headers, messages and the status, or lets the call
//! be cancelled), whose every connection is handed over as a [`ServerConn`] that says when its
//! task has ended (`transportTerminated`), and a client that is a bare
//! [`ClientConnection`] on one loopback TCP socket (`ClientTransport`).

use bytes::Bytes;
use sockrpc::protocol::{MetadataMap, MethodPath, Response, Status};
use sockrpc::transport::dispatch::{Dispatch, DispatchFuture, IncomingCall, OutboundBody};
use sockrpc::transport::server::{serve, Accept, Accepted};
use sockrpc::transport::{
    ClientConnection, RequestBody, ServerConfig, SocketConfig, StreamReceiver, StreamSender,
};
use sockrpc::Limits;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub(crate) use sockrpc_tests::bounded::bounded;

/// The method every case calls (grpc-java's `service/method`).
pub(crate) const METHOD: MethodPath = MethodPath::from_static("/service/method");

/// A short wait in which something must NOT happen (grpc-java's `doPingPong` role): long enough
/// for frames already written to arrive over loopback.
pub(crate) const QUIET: Duration = Duration::from_millis(200);

/// A running transport server on `127.0.0.1:0`.
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<ServerCall>,
    conns: mpsc::UnboundedReceiver<ServerConn>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    /// Serves with the default configuration.
    pub(crate) fn start() -> Server {
        Server::start_with(ServerConfig::default())
    }

    /// Serves with `config`.
    pub(crate) fn start_with(config: ServerConfig) -> Server {
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &SocketConfig::default(),
        )
        .expect("bind 127.0.0.1:0");
        Server::start_on(listener, config)
    }

    /// Serves on `listener` with `config`.
    pub(crate) fn start_on(listener: TcpListener, config: ServerConfig) -> Server {
        let addr = listener.local_addr().expect("local address");
        let (call_tx, calls) = mpsc::unbounded_channel();
        let (conn_tx, conns) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let listener = Watched {
            inner: listener,
            conns: conn_tx,
        };
        let task = tokio::spawn(serve(
            listener,
            HandOver { calls: call_tx },
            config,
            None,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            calls,
            conns,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The next call the server received (`takeStreamOrFail`).
    pub(crate) async fn take_call(&mut self) -> ServerCall {
        bounded("a call reaching the server", self.calls.recv())
            .await
            .expect("the server is running")
    }

    /// Whether a call reached the server within [`QUIET`] (it must not have).
    pub(crate) async fn no_call(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.calls.recv())
            .await
            .is_err()
    }

    /// The next connection the server accepted (`takeListenerOrFail`).
    pub(crate) async fn take_conn(&mut self) -> ServerConn {
        bounded("a connection reaching the server", self.conns.recv())
            .await
            .expect("the server is running")
    }

    /// Begins a graceful shutdown (the listener closes, GOAWAY on every connection) without
    /// waiting for it.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for the server's accept loop and every connection to end.
    pub(crate) async fn stopped(&mut self) {
        if let Some(task) = self.task.take() {
            bounded("the server stopping", task)
                .await
                .expect("server task did not panic")
                .expect("server ended cleanly");
        }
    }

    /// Shuts down and waits.
    pub(crate) async fn stop(mut self) {
        self.begin_shutdown();
        self.stopped().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A client transport of one TCP connection to `addr`, its handshake done.
pub(crate) async fn client(addr: SocketAddr) -> ClientConnection {
    client_with(addr, Limits::default()).await
}

/// [`client`] with `limits`.
pub(crate) async fn client_with(addr: SocketAddr, limits: Limits) -> ClientConnection {
    let stream = bounded("connect", tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect");
    let conn = ClientConnection::spawn_tcp(stream, limits);
    bounded("the server's preface", conn.ready())
        .await
        .expect("handshake");
    conn
}

/// A client streaming call (`newStream` + `start`), no deadline, `metadata` as its headers.
pub(crate) fn open(
    conn: &ClientConnection,
    metadata: &MetadataMap,
) -> (StreamSender, StreamReceiver) {
    conn.open_stream(&METHOD, metadata, None, None)
        .expect("open a stream")
}

/// Sends `message` on `sender` once it has credit.
pub(crate) async fn send(sender: &mut StreamSender, message: &Bytes) -> Result<(), Status> {
    poll_fn(|cx| sender.poll_ready(cx)).await?;
    poll_fn(|cx| Poll::Ready(sender.send(cx, message))).await
}

/// The response head, bounded.
pub(crate) async fn headers(receiver: &mut StreamReceiver) -> Result<MetadataMap, Status> {
    bounded("response headers", poll_fn(|cx| receiver.poll_headers(cx))).await
}

/// The next response message, bounded.
pub(crate) async fn next(receiver: &mut StreamReceiver) -> Option<Result<Bytes, Status>> {
    bounded(
        "a response message",
        poll_fn(|cx| receiver.poll_message(cx)),
    )
    .await
}

/// Reads the response to its end: the messages, then the status (`Ok` with trailers).
pub(crate) async fn finish(
    receiver: &mut StreamReceiver,
) -> (Vec<Bytes>, Result<MetadataMap, Status>) {
    let mut messages = Vec::new();
    loop {
        match next(receiver).await {
            Some(Ok(message)) => messages.push(message),
            Some(Err(status)) => return (messages, Err(status)),
            None => {
                let trailers = receiver.trailers().cloned().unwrap_or_default();
                return (messages, Ok(trailers));
            }
        }
    }
}

/// A text metadata entry list as a map.
pub(crate) fn meta(entries: &[(&str, &str)]) -> MetadataMap {
    let mut map = MetadataMap::new();
    for (key, value) in entries {
        map.append_str(*key, value).expect("valid metadata");
    }
    map
}

/// One accepted connection, as the test sees it (`MockServerTransportListener`).
pub(crate) struct ServerConn {
    /// The client's address.
    pub(crate) peer: Option<SocketAddr>,
    /// The server's own address on it.
    pub(crate) local: Option<SocketAddr>,
    ended: watch::Receiver<bool>,
}

impl ServerConn {
    /// Whether the server's task for this connection has ended (its socket dropped).
    pub(crate) fn is_terminated(&self) -> bool {
        *self.ended.borrow()
    }

    /// Waits for the connection's task to end (`waitForTermination`).
    pub(crate) async fn terminated(&mut self) {
        bounded(
            "the server connection ending",
            self.ended.wait_for(|ended| *ended),
        )
        .await
        .expect("the watch lives as long as the connection");
    }
}

/// A TCP listener that reports every connection it accepts and when the server drops it.
struct Watched {
    inner: TcpListener,
    conns: mpsc::UnboundedSender<ServerConn>,
}

impl Accept for Watched {
    async fn accept(&self, socket: &SocketConfig) -> io::Result<Accepted> {
        let mut accepted = Accept::accept(&self.inner, socket).await?;
        let (ended_tx, ended) = watch::channel(false);
        let _ = self.conns.send(ServerConn {
            peer: accepted.peer,
            local: accepted.local,
            ended,
        });
        accepted.writer = Box::pin(Tracked {
            inner: accepted.writer,
            ended: ended_tx,
        });
        Ok(accepted)
    }
}

/// A client over `stream` whose write half says when it is dropped: the receiver turns true
/// then (the connection gave its socket up).
pub(crate) fn tracked_client(
    stream: tokio::net::TcpStream,
) -> (ClientConnection, watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let (reader, writer) = stream.into_split();
    let (ended_tx, ended) = watch::channel(false);
    let writer = Tracked {
        inner: Box::pin(writer),
        ended: ended_tx,
    };
    let conn = ClientConnection::spawn(reader, writer, Limits::default(), peer);
    (conn, ended)
}

/// A connection's write half that says when it is dropped.
struct Tracked {
    inner: Pin<Box<dyn AsyncWrite + Send + Sync>>,
    ended: watch::Sender<bool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.ended.send_replace(true);
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The `Dispatch` that hands every call to the test.
#[derive(Clone)]
struct HandOver {
    calls: mpsc::UnboundedSender<ServerCall>,
}

impl Dispatch for HandOver {
    type Body = TestBody;

    fn dispatch(&mut self, call: IncomingCall) -> DispatchFuture<TestBody> {
        let (answer_tx, answer) = oneshot::channel::<Answer>();
        let (gone_tx, gone) = oneshot::channel();
        let conn_info = call.request.conn_info().cloned();
        let timeout = call.request.timeout();
        let (metadata, body, _) = call.request.into_parts();
        let _ = self.calls.send(ServerCall {
            path: call.path,
            metadata,
            peer: conn_info.as_ref().and_then(|info| info.peer),
            local: conn_info.as_ref().and_then(|info| info.local),
            timeout,
            body: Some(body),
            answer: Some(answer_tx),
            gone: Some(gone),
        });
        let pending = Pending {
            gone: Some(gone_tx),
        };
        Box::pin(async move {
            let _pending = pending;
            let answer = answer
                .await
                .map_err(|_| Status::internal("the test dropped the call unanswered"))?;
            answer()
        })
    }
}

/// Dropped with the dispatch future: tells the test the server stopped its handler.
struct Pending {
    gone: Option<oneshot::Sender<()>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(gone) = self.gone.take() {
            let _ = gone.send(());
        }
    }
}

/// What the test answers a call with: the handler's result.
type Answer = Box<dyn FnOnce() -> Result<Response<TestBody>, Status> + Send>;

/// A call as the server received it (`StreamCreation`): the test answers it.
pub(crate) struct ServerCall {
    /// The method path.
    pub(crate) path: MethodPath,
    /// The client's metadata.
    pub(crate) metadata: MetadataMap,
    /// The client's address, from the call's connection info.
    pub(crate) peer: Option<SocketAddr>,
    /// The server's address, from the call's connection info.
    pub(crate) local: Option<SocketAddr>,
    /// The deadline the OPEN carried.
    pub(crate) timeout: Option<Duration>,
    body: Option<RequestBody>,
    answer: Option<oneshot::Sender<Answer>>,
    gone: Option<oneshot::Receiver<()>>,
}

impl ServerCall {
    /// Answers with a streamed response: `headers` now, then what the returned [`Responder`]
    /// sends, then OK with `trailers` (or the status it ends with). The request's messages
    /// are read through [`next_request`](ServerCall::next_request).
    pub(crate) fn respond(&mut self, headers: MetadataMap, trailers: MetadataMap) -> Responder {
        let (tx, rx) = mpsc::unbounded_channel();
        let pulled = Arc::new(AtomicUsize::new(0));
        let body = TestBody {
            messages: rx,
            pulled: Arc::clone(&pulled),
        };
        let answer: Answer = Box::new(move || Ok(Response::from_parts(headers, body, trailers)));
        self.send_answer(answer);
        Responder { tx, pulled }
    }

    /// Ends the call with `status` (its metadata as trailers), before any headers.
    pub(crate) fn close(&mut self, status: Status) {
        let answer: Answer = Box::new(move || Err(status));
        self.send_answer(answer);
    }

    fn send_answer(&mut self, answer: Answer) {
        if let Some(tx) = self.answer.take() {
            assert!(tx.send(answer).is_ok(), "the server dropped the call first");
        }
    }

    /// The next request message; `None` after the client's half-close. Reading is what grants
    /// the client credit (`ServerStream.request(1)`).
    pub(crate) async fn next_request(&mut self) -> Option<Result<Bytes, Status>> {
        bounded("a request message", self.poll_request()).await
    }

    /// Whether a request message (or the half-close) arrives within [`QUIET`]; one that does
    /// is consumed.
    pub(crate) async fn request_within_quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.poll_request())
            .await
            .is_ok()
    }

    /// Polls the request body in place, so that a read given up (a timeout) loses nothing.
    async fn poll_request(&mut self) -> Option<Result<Bytes, Status>> {
        poll_fn(|cx| {
            let polled = match self.body.as_mut() {
                None => return Poll::Ready(None),
                Some(RequestBody::Once(message)) => Poll::Ready(Some(Ok(message.clone()))),
                Some(RequestBody::Stream(receiver)) => receiver.poll_message(cx),
            };
            let more = matches!(self.body, Some(RequestBody::Stream(_)))
                && matches!(polled, Poll::Pending | Poll::Ready(Some(Ok(_))));
            if !more {
                self.body = None;
            }
            polled
        })
        .await
    }

    /// Waits until the server dropped the call's handler (the call ended for the server:
    /// answered, cancelled by the client, or its connection gone).
    pub(crate) async fn handler_gone(&mut self) {
        if let Some(gone) = self.gone.take() {
            let _ = bounded("the server dropping the handler", gone).await;
        }
    }
}

/// Sends a streamed response's messages (`ServerStream.writeMessage` / `close`).
pub(crate) struct Responder {
    tx: mpsc::UnboundedSender<Result<Bytes, Status>>,
    pulled: Arc<AtomicUsize>,
}

impl Responder {
    /// Queues `message`; the transport takes it when the client's credit allows.
    pub(crate) fn send(&self, message: Bytes) {
        let _ = self.tx.send(Ok(message));
    }

    /// Ends the response with `status` after what was queued.
    pub(crate) fn fail(self, status: Status) {
        let _ = self.tx.send(Err(status));
    }

    /// Ends the response OK (with the trailers given to `respond`) after what was queued.
    pub(crate) fn end(self) {}

    /// Messages the transport has taken from the queue so far.
    pub(crate) fn pulled(&self) -> usize {
        self.pulled.load(Ordering::SeqCst)
    }

    /// Whether the transport stopped taking messages (the call ended).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A streamed answer fed by a [`Responder`].
pub(crate) struct TestBody {
    messages: mpsc::UnboundedReceiver<Result<Bytes, Status>>,
    pulled: Arc<AtomicUsize>,
}

impl OutboundBody for TestBody {
    fn into_once(self) -> Result<Bytes, Self> {
        Err(self)
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        let polled = self.messages.poll_recv(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.pulled.fetch_add(1, Ordering::SeqCst);
        }
        polled
    }
}
