//! `Server`: accept connections and serve a router on each.
//!
//! ```text
//!  Server::builder().layer(..).add_service(..).serve(addr)
//!      sockrpc_transport::server: accept loop ──▶ one task per connection
//!          ──IncomingCall──▶ Dispatcher ──▶ layered Router ──▶ handlers
//! ```
//!
//! The builder only assembles the dispatcher and hands it to the transport's [`serve`] (and,
//! with [`udp`](ServerBuilder::udp), to its UDP server); sockets, frames, limits and timeouts are
//! the transport's.

mod dispatcher;
mod incoming;
mod load_shed;
mod tcp_incoming;
mod tonic_names;

pub(crate) use dispatcher::replay_in_scope;
pub use dispatcher::Dispatcher;
pub use sockrpc_transport::server::{PingPolicy, ServerConfig};
pub use tcp_incoming::TcpIncoming;

/// Where tonic has it (`tonic::server::NamedService`): the trait giving a generated server
/// its `package.Service` name, `<GreeterServer<MyGreeter> as NamedService>::NAME`, which a
/// ported `health_reporter.set_serving::<S>()` names the service by.
pub use crate::NamedService;

use crate::{Body, BoxError, IntoCallResponse, ReadyQueue};
use crate::{Call, CallFuture, RouteService, Router};
use sockrpc_protocol::{Limits, Response, Status};
use sockrpc_transport::server::{serve, serve_connection, Accept};
use sockrpc_transport::socket::{bind_tcp, SocketConfig};
use sockrpc_transport::udp::{serve_udp, ReplyCache, UdpServerConfig};
use std::{
    future::Future,
    io,
    net::SocketAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tower::layer::util::{Identity, Stack};
use tower::Layer;
use tower_service::Service;

/// Entry point: `Server::builder()`.
#[derive(Debug, Clone, Copy)]
pub struct Server;

impl Server {
    /// A builder with no middleware and no services.
    pub fn builder() -> ServerBuilder<Identity> {
        ServerBuilder {
            layer: Identity::new(),
            router: Router::new(),
            config: ServerConfig::default(),
            udp: None,
            udp_beside_tls: false,
            queue: ReadyQueue::default(),
            shedding: load_shed::Shedding::default(),
        }
    }
}

/// Builds a server: middleware, services, settings; then `serve*`.
#[derive(Debug)]
pub struct ServerBuilder<L> {
    layer: L,
    router: Router,
    config: ServerConfig,
    udp: Option<(tokio::net::UdpSocket, UdpServerConfig)>,
    udp_beside_tls: bool,
    queue: ReadyQueue,
    shedding: load_shed::Shedding,
}

/// Turns the layered router into the service each connection runs, boxing futures only when a
/// layer made them something other than a box already.
pub trait Finish {
    /// The service a connection runs.
    type Service: RouteService + Clone + Send + Unpin + 'static;

    /// Wraps `router`; calls that find the stack not ready wait in `queue`.
    fn finish(&self, router: Router, queue: &ReadyQueue) -> Self::Service;
}

impl Finish for Identity {
    type Service = Router;

    fn finish(&self, router: Router, queue: &ReadyQueue) -> Router {
        router.ready_queue(queue.clone())
    }
}

impl<Inner, Outer> Finish for Stack<Inner, Outer>
where
    Stack<Inner, Outer>: Layer<Router>,
    <Stack<Inner, Outer> as Layer<Router>>::Service: Service<Call> + Clone + Send + Unpin + 'static,
    <<Stack<Inner, Outer> as Layer<Router>>::Service as Service<Call>>::Response: IntoCallResponse,
    <<Stack<Inner, Outer> as Layer<Router>>::Service as Service<Call>>::Error:
        Into<BoxError> + 'static,
    <<Stack<Inner, Outer> as Layer<Router>>::Service as Service<Call>>::Future: Send + 'static,
{
    type Service = Boxed<<Stack<Inner, Outer> as Layer<Router>>::Service>;

    fn finish(&self, router: Router, queue: &ReadyQueue) -> Self::Service {
        Boxed {
            inner: self.layer(router.ready_queue(queue.clone())),
            queue: queue.clone(),
        }
    }
}

/// A middleware stack for the connection: futures boxed (once), bodies and errors converted,
/// and readiness honoured through a [`ReadyQueue`].
#[derive(Debug, Clone)]
pub struct Boxed<S> {
    inner: S,
    queue: ReadyQueue,
}

impl<S> Service<Call> for Boxed<S>
where
    S: Service<Call> + Clone + Send + 'static,
    S::Response: IntoCallResponse,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // Readiness is judged per call, in `call` (see `ReadyQueue`): a connection never waits.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        // Layers such as limits report readiness; a connection cannot wait per call without
        // stalling every other call on it, so a call that finds the stack not ready waits in a
        // bounded queue up to its deadline, and is shed when the queue is full or the wait ends.
        self.queue.call(&mut self.inner, call)
    }
}

impl<L> ServerBuilder<L> {
    /// Adds a tower layer around the router. Layers nest in the order added, as with tower's
    /// `ServiceBuilder`: the first added is the outermost, the first to see a call.
    pub fn layer<N>(self, layer: N) -> ServerBuilder<Stack<N, L>> {
        ServerBuilder {
            layer: Stack::new(layer, self.layer),
            router: self.router,
            config: self.config,
            udp: self.udp,
            udp_beside_tls: self.udp_beside_tls,
            queue: self.queue,
            shedding: self.shedding,
        }
    }

    /// Mounts a generated server, or one wrapped in middleware (an interceptor, a limit). A
    /// service whose name is already mounted replaces the one there (the last added serves it).
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: NamedService + Service<Call> + Clone + Send + Sync + 'static,
        S::Response: IntoCallResponse,
        S::Error: Into<BoxError> + 'static,
        S::Future: Send + 'static,
    {
        self.router = self.router.add_service(service);
        self
    }

    /// Mounts every service of `routes` beside those already added (tonic's `add_routes`):
    /// a service mounted on both is `routes`' afterwards.
    pub fn add_routes(mut self, routes: impl Into<Router>) -> Self {
        self.router = std::mem::take(&mut self.router).merge(routes.into());
        self
    }

    /// Replaces the router (services mounted by hand), dropping those added before; see
    /// [`add_routes`](ServerBuilder::add_routes) to keep them.
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// Replaces all settings.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the message and metadata limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// The largest message received (tonic's name; the transport's frame-level limit, default
    /// 4 MiB): a larger one fails its call `RESOURCE_EXHAUSTED`. A generated service's own
    /// `max_decoding_message_size` further bounds what it decodes, after decompression.
    pub fn max_decoding_message_size(mut self, bytes: usize) -> Self {
        self.config.limits = self.config.limits.with_max_message_size(bytes);
        self
    }

    /// The largest message sent (tonic's name; default: the receive limit): a larger answer
    /// fails its call `RESOURCE_EXHAUSTED` unsent.
    pub fn max_encoding_message_size(mut self, bytes: usize) -> Self {
        self.config.limits = self.config.limits.with_max_send_message_size(bytes);
        self
    }

    /// The longest status message sent (default 16 KiB, at most 30 KiB); a longer one is cut
    /// and marked `… [truncated N bytes]`.
    pub fn max_status_message_size(mut self, bytes: usize) -> Self {
        self.config.limits = self.config.limits.with_max_status_message_size(bytes);
        self
    }

    /// Sets what the requests of one connection's unary calls whose handlers wait may hold
    /// together (messages, metadata, method paths; default 256 MiB; a message still a slice of
    /// the connection's read buffer counts that buffer, once for all the requests sliced from
    /// it). Past it a new unary call fails `RESOURCE_EXHAUSTED` at once, until running calls
    /// end.
    pub fn max_running_requests_size(mut self, bytes: usize) -> Self {
        self.config.limits = self.config.limits.with_max_running_requests_size(bytes);
        self
    }

    /// Sets how many calls one connection may have open. Clients learn it from the server's
    /// SETTINGS: a sockrpc client's calls past it wait for room instead of being refused,
    /// and its pool fills a connection no further.
    ///
    /// # Panics
    /// If `n` is 0: a server that refuses every call is a configuration mistake, not a limit.
    pub fn max_concurrent_calls(mut self, n: usize) -> Self {
        assert!(n > 0, "max_concurrent_calls must be at least 1");
        self.config.max_concurrent_calls = n;
        self
    }

    /// Sets how many connections are served at once. At the cap, the oldest connection still in
    /// its handshake is evicted for a new one; only established connections are never evicted
    /// (see [`ServerConfig::max_connections`]).
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn max_connections(mut self, n: usize) -> Self {
        assert!(n > 0, "max_connections must be at least 1");
        self.config.max_connections = n;
        self
    }

    /// Sets how long a connection with no call in flight stays open (`None`: forever).
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sends a connection away (GOAWAY) once it is this old, ±10 % (gRPC's
    /// `MAX_CONNECTION_AGE`): its calls in flight finish and the client reconnects, through
    /// DNS and its balancer again. Default: never.
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.config.max_connection_age = Some(age);
        self
    }

    /// How long calls still running on a connection sent away for its age may take before it
    /// is closed (gRPC's `MAX_CONNECTION_AGE_GRACE`). Default: as long as they take.
    pub fn max_connection_age_grace(mut self, grace: Duration) -> Self {
        self.config.max_connection_age_grace = Some(grace);
        self
    }

    /// Sets the server's keepalive: PING a client heard nothing from for `interval`, close it
    /// if the PONG does not come within `timeout` (`None`: never PING).
    pub fn keepalive(mut self, keepalive: Option<sockrpc_transport::Keepalive>) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// Sets how long a frame may take from its first byte to its last.
    pub fn frame_timeout(mut self, timeout: Duration) -> Self {
        self.config.frame_timeout = timeout;
        self
    }

    /// Sets the slowest a message split into pieces may arrive, in bytes per second: it must be
    /// whole within the frame timeout plus its length at this rate, or the connection is
    /// closed (see [`ServerConfig::min_message_rate`]). Default 32 KiB/s; 0: no floor.
    pub fn min_message_rate(mut self, bytes_per_second: u64) -> Self {
        self.config.min_message_rate = bytes_per_second;
        self
    }

    /// Sets the longest any call may run, server-wide: calls without a deadline get this one,
    /// and a client's deadline further away is shortened to it. When it passes the handler is
    /// cancelled and the client gets `DEADLINE_EXCEEDED`. Applies to TCP, Unix and UDP calls.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = Some(timeout.min(sockrpc_protocol::MAX_TIMEOUT));
        self
    }

    /// Sets how calls wait when a layer is not ready for them: how many may wait, for how
    /// long, and the pushback hint a shed call carries (see [`ReadyQueue`]). Default: 1024
    /// calls, 1 s, 100 ms.
    pub fn ready_queue(mut self, queue: ReadyQueue) -> Self {
        self.queue = queue;
        self
    }

    /// Sets the grace period for in-flight calls at shutdown.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period = grace;
        self
    }

    /// Also serves small unary calls over UDP on `socket` (bound by the caller, e.g. with
    /// `UdpSocket::bind`), with the same router and middleware. Calls a client re-issues over
    /// TCP after a truncated UDP reply are answered from the UDP side's reply cache, never run
    /// twice.
    pub fn udp(mut self, socket: tokio::net::UdpSocket, config: UdpServerConfig) -> Self {
        self.udp = Some((socket, config));
        self
    }

    /// Serves every connection (TCP, Unix socket) over TLS with `config`, which is checked now.
    /// To replace the certificate or the client CAs while serving, use
    /// [`tls_handle`](Self::tls_handle) with a [`ServerTls`](sockrpc_transport::tls::ServerTls)
    /// you keep.
    #[cfg(feature = "tls")]
    pub fn tls(
        mut self,
        config: sockrpc_transport::tls::ServerTlsConfig,
    ) -> Result<Self, sockrpc_transport::tls::TlsError> {
        self.config.tls = Some(sockrpc_transport::tls::ServerTls::new(config)?);
        Ok(self)
    }

    /// Serves every connection over TLS with what `tls` holds at each handshake: keep a clone
    /// and call its `reload*` (or `watch`) to rotate certificates with no restart.
    #[cfg(feature = "tls")]
    pub fn tls_handle(mut self, tls: sockrpc_transport::tls::ServerTls) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Allows [`udp`](Self::udp) beside TLS: UDP cannot carry TLS, so without this a server
    /// with both refuses to start. Calls over UDP are then plain text (unencrypted, no client
    /// certificate).
    pub fn allow_plaintext_udp_with_tls(mut self, on: bool) -> Self {
        self.udp_beside_tls = on;
        self
    }

    /// Sets how long a new connection may take to send its preface (and, with TLS, to complete
    /// its TLS handshake before that).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// Sets how often clients may PING.
    pub fn ping_policy(mut self, policy: PingPolicy) -> Self {
        self.config.ping_policy = policy;
        self
    }

    /// Sets the socket options.
    pub fn socket_config(mut self, socket: SocketConfig) -> Self {
        self.config.socket = socket;
        self
    }
}

impl<L: Finish> ServerBuilder<L> {
    /// Binds `addr` and serves until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> io::Result<()> {
        self.serve_with_shutdown(addr, std::future::pending()).await
    }

    /// Binds `addr` and serves until `signal` completes, then shuts down gracefully.
    pub async fn serve_with_shutdown(
        self,
        addr: SocketAddr,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let listener = bind_tcp(addr, &self.config.socket)?;
        self.serve_with_listener_and_shutdown(listener, signal)
            .await
    }

    /// Serves on a listener already bound (so a test can learn its port first).
    pub async fn serve_with_listener(self, listener: TcpListener) -> io::Result<()> {
        self.serve_with_listener_and_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves on a bound listener until `signal` completes: then stops accepting, sends GOAWAY on
    /// every connection, lets in-flight calls finish within the grace period, and returns.
    pub async fn serve_with_listener_and_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve_incoming(listener, signal).await
    }

    /// Binds a Unix socket at `path` (replacing a stale socket file, never another file) and
    /// serves until `signal` completes. The socket file is removed afterwards, if the path still
    /// names it (not a file put there since: [`UnixSocketFile`](sockrpc_transport::UnixSocketFile)).
    pub async fn serve_unix_with_shutdown(
        self,
        path: impl AsRef<std::path::Path>,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let path = path.as_ref();
        let listener = sockrpc_transport::bind_unix(path)?;
        let file = sockrpc_transport::UnixSocketFile::bound_at(path);
        let result = self.serve_incoming(listener, signal).await;
        file.remove();
        result
    }

    /// Binds the Linux abstract Unix socket `name` (gRPC's `unix-abstract:NAME`: a name, no
    /// file) and serves until `signal` completes. Fails with `AddrInUse` when a socket is bound
    /// to the name already, and with `Unsupported` off Linux and Android
    /// ([`bind_unix_abstract`](sockrpc_transport::bind_unix_abstract)). Nothing is left
    /// behind: the name is free again once the server stops.
    pub async fn serve_unix_abstract_with_shutdown(
        self,
        name: impl AsRef<[u8]>,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let listener = sockrpc_transport::bind_unix_abstract(name)?;
        self.serve_incoming(listener, signal).await
    }

    /// Serves on a bound Unix socket listener until `signal` completes.
    pub async fn serve_unix_with_listener_and_shutdown(
        self,
        listener: UnixListener,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        self.serve_incoming(listener, signal).await
    }

    async fn serve_incoming<A: Accept>(
        mut self,
        listener: A,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if self.config.tls.is_some() && self.udp.is_some() && !self.udp_beside_tls {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP cannot carry TLS: a server with TLS serves UDP only with \
                 allow_plaintext_udp_with_tls(true), its calls then in plain text",
            ));
        }
        let (config, queue) = self.shedding.apply(&self.config, &self.queue);
        self.config = config;
        let dispatcher = Dispatcher::new(self.layer.finish(self.router.clone(), &queue));
        let stop_udp = CancellationToken::new();
        // However serving ends, this future dropped too (its task aborted, a `select!` that took
        // another branch): the UDP side stops with the TCP side, rather than answer calls and
        // hold its port for ever for a server its owner believes gone.
        let _stop_udp_on_drop = stop_udp.clone().drop_guard();
        let mut udp_task = None;
        let timeout = self.config.timeout;
        let reply_cache = self.udp.take().map(|(socket, mut udp_config)| {
            udp_config.timeout = udp_config.timeout.or(timeout);
            // The server's caps (status message, metadata, send limit) hold over UDP too.
            udp_config.limits = udp_config.limits.within(&self.config.limits);
            // Methods the .proto marks idempotent skip the at-most-once cache.
            udp_config
                .idempotent_methods
                .extend(self.router.idempotent_methods().map(str::to_owned));
            let cache = Arc::new(
                ReplyCache::new(udp_config.reply_cache)
                    .with_idempotent(udp_config.idempotent_methods.clone()),
            );
            let udp = serve_udp(
                socket,
                dispatcher.clone(),
                udp_config,
                Arc::clone(&cache),
                stop_udp.clone().cancelled_owned(),
            );
            udp_task = Some(tokio::spawn(async move {
                if let Err(err) = udp.await {
                    tracing::warn!(error = %err, "UDP server ended");
                }
            }));
            cache
        });
        let served = serve(listener, dispatcher, self.config, reply_cache, signal).await;
        stop_udp.cancel();
        if let Some(task) = udp_task {
            let _ = task.await;
        }
        served
    }

    /// Serves one already-connected stream (a Unix socket, an in-memory duplex) until it closes.
    pub async fn serve_connection<T>(&self, io: T, peer: Option<SocketAddr>)
    where
        T: AsyncRead + AsyncWrite + Send + Sync + 'static,
    {
        let (config, queue) = self.shedding.apply(&self.config, &self.queue);
        let dispatcher = Dispatcher::new(self.layer.finish(self.router.clone(), &queue));
        serve_connection(io, peer, dispatcher, config).await;
    }
}
