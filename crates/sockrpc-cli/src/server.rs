//! What `sockrpc serve` and the embedded server of `sockrpc bench` serve: the `Bench` service
//! over sockrpc (on TCP; over TLS, over UDP beside it and on a Unix socket when asked), a raw TCP
//! echo, with TLS a raw TLS echo and, when asked, a raw UDP echo.

use crate::proto::{bench::bench_server::BenchServer, EchoService};
use crate::{raw, stack};
use sockrpc::server::{Finish, ServerBuilder};
use sockrpc::service::udp::UdpServerConfig;
use sockrpc::tls::ServerTls;
use sockrpc::transport::{bind_tcp, bind_unix, UnixSocketFile};
use sockrpc::{Server, SocketConfig};
use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    thread,
    time::Duration,
};
use tokio::net::{TcpListener, UdpSocket, UnixListener};

/// Connections a bench server holds at once: more than the default 10 000, so that the
/// sockrpc-tcp-idle row can keep 10 000 idle ones open beside the measured one.
pub(crate) const MAX_CONNECTIONS: usize = 20_000;

/// Descriptors kept out of the connection cap for the listeners, the runtime and the files a
/// server opens (and, in the bench, out of the idle connections it opens).
pub(crate) const SPARE_FDS: u64 = 256;

/// The connection cap: [`MAX_CONNECTIONS`], or less where the open-file limit (raised as far as
/// the hard limit lets it) leaves no room for that many. A cap at or past the limit is no cap:
/// `accept` fails with EMFILE first, and a client past it waits in the listen backlog, told
/// nothing, instead of getting the cap's GOAWAY.
pub(crate) fn connection_cap() -> usize {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            let room = usize::try_from(limit.saturating_sub(SPARE_FDS)).unwrap_or(usize::MAX);
            MAX_CONNECTIONS.min(room).max(1)
        }
        Err(_) => MAX_CONNECTIONS,
    }
}

/// How long in-flight calls may finish after shutdown begins. Bench calls take microseconds; a
/// client that keeps its connection idle must not hold up the exit for sockrpc's default 30 s.
const GRACE: Duration = Duration::from_secs(2);

/// The Bench service's name, as the health service reports it.
pub(crate) const BENCH_SERVICE: &str = "sockrpc.bench.Bench";

/// Worker threads of the server runtime: the method the reference figures use.
pub(crate) const DEFAULT_WORKERS: usize = 2;

/// Where to listen.
#[derive(Debug, Clone)]
pub(crate) struct Listen {
    /// The sockrpc `Bench` service in plain text; `None`: not served (a `serve` with TLS).
    pub(crate) rpc: Option<SocketAddr>,
    /// The sockrpc `Bench` service over TLS, and the raw TLS echo; `None`: not served.
    pub(crate) tls: Option<TlsListen>,
    /// The raw TCP echo.
    pub(crate) raw_tcp: SocketAddr,
    /// The raw UDP echo; `None`: not served. An echo answers whoever a datagram claims to come
    /// from, so it only runs when asked for.
    pub(crate) raw_udp: Option<SocketAddr>,
    /// The sockrpc `Bench` service on a Unix socket at this path; `None`: not served.
    pub(crate) uds: Option<PathBuf>,
    /// The sockrpc `Bench` service over UDP (small unary calls, beside the TCP listener whose
    /// reply cache it shares); `None`: not served.
    pub(crate) udp: Option<SocketAddr>,
    /// The sockrpc `Bench` service behind the middleware stack ([`stack::server`]), on a TCP
    /// listener of its own for the `sockrpc-stack` rows; `None`: not served.
    pub(crate) stack: Option<SocketAddr>,
    /// Serve `rpc`, `uds` and `udp` behind the middleware stack too (`serve --metrics`).
    pub(crate) observe: bool,
    /// How long each unary Bench answer waits first (`serve --delay`).
    pub(crate) delay: Duration,
    /// Send connections away at this age (`serve --max-connection-age`); `None`: never.
    pub(crate) max_connection_age: Option<Duration>,
    /// How long calls on a connection sent away for its age may still take
    /// (`serve --max-connection-age-grace`); `None`: as long as they take.
    pub(crate) max_connection_age_grace: Option<Duration>,
}

/// Where and as whom to serve TLS.
#[derive(Debug, Clone)]
pub(crate) struct TlsListen {
    /// The sockrpc `Bench` service over TLS.
    pub(crate) rpc: SocketAddr,
    /// The raw TLS echo (the TLS floor).
    pub(crate) raw: SocketAddr,
    /// The server's TLS configuration, live (`serve` watches its files).
    pub(crate) server: ServerTls,
}

impl Listen {
    /// Everything on 127.0.0.1, on free ports; the Unix socket at `uds` when given, sockrpc over
    /// UDP and the raw UDP echo when `udp`, sockrpc over TLS and the raw TLS echo with `tls`,
    /// the stacked listener when `stack`.
    pub(crate) fn loopback(
        uds: Option<PathBuf>,
        udp: bool,
        tls: Option<ServerTls>,
        stack: bool,
    ) -> Listen {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        Listen {
            rpc: Some(any),
            tls: tls.map(|server| TlsListen {
                rpc: any,
                raw: any,
                server,
            }),
            raw_tcp: any,
            raw_udp: udp.then_some(any),
            uds,
            udp: udp.then_some(any),
            stack: stack.then_some(any),
            observe: false,
            delay: Duration::ZERO,
            max_connection_age: None,
            max_connection_age_grace: None,
        }
    }
}

/// The addresses actually bound.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    /// The sockrpc `Bench` service in plain text, when served.
    pub(crate) rpc: Option<SocketAddr>,
    /// The sockrpc `Bench` service over TLS, when served.
    pub(crate) tls: Option<SocketAddr>,
    /// The raw TLS echo, when served.
    pub(crate) raw_tls: Option<SocketAddr>,
    /// The raw TCP echo.
    pub(crate) raw_tcp: SocketAddr,
    /// The raw UDP echo, when served.
    pub(crate) raw_udp: Option<SocketAddr>,
    /// The Unix socket of the sockrpc `Bench` service, when served.
    pub(crate) uds: Option<PathBuf>,
    /// The UDP port of the sockrpc `Bench` service, when served.
    pub(crate) udp: Option<SocketAddr>,
    /// The sockrpc `Bench` service behind the middleware stack, when served.
    pub(crate) stack: Option<SocketAddr>,
}

/// Bound sockets, not yet served. Binding first lets the caller print the real ports before
/// anyone connects.
#[derive(Debug)]
pub(crate) struct Sockets {
    rpc: Option<TcpListener>,
    /// sockrpc over TLS, the raw TLS echo, and the configuration both serve with.
    tls: Option<(TcpListener, TcpListener, ServerTls)>,
    raw_tcp: TcpListener,
    raw_udp: Option<UdpSocket>,
    /// The Unix socket listener, its path and its socket file (removed when serving ends, if
    /// the path still names it).
    uds: Option<(UnixListener, PathBuf, UnixSocketFile)>,
    /// sockrpc over UDP.
    udp: Option<UdpSocket>,
    /// The `Bench` service behind the middleware stack.
    stack: Option<TcpListener>,
    /// Whether the other sockrpc listeners run the middleware stack too.
    observe: bool,
    /// How long each unary Bench answer waits first.
    delay: Duration,
    /// The sockrpc listeners' maximum connection age, and its grace.
    max_connection_age: (Option<Duration>, Option<Duration>),
}

impl Sockets {
    /// Binds them all; needs a tokio runtime. A stale socket file at the Unix socket's path (a
    /// leftover of a server that died) is replaced; a live one, or a file of another kind, is an
    /// error and is left alone.
    pub(crate) async fn bind(listen: Listen) -> io::Result<Sockets> {
        let config = SocketConfig::default();
        // Which listener and address, as the UDP and Unix errors say: `Address already in use`
        // alone does not tell --tcp from --raw.
        let bind_tcp = |what: &str, addr: SocketAddr| {
            bind_tcp(addr, &config).map_err(|err| {
                io::Error::new(err.kind(), format!("cannot bind {what} {addr}: {err}"))
            })
        };
        let rpc = listen.rpc.map(|addr| bind_tcp("TCP", addr)).transpose()?;
        let tls = match listen.tls {
            Some(tls) => Some((
                bind_tcp("TLS", tls.rpc)?,
                bind_tcp("raw TLS", tls.raw)?,
                tls.server,
            )),
            None => None,
        };
        let raw_tcp = bind_tcp("raw TCP", listen.raw_tcp)?;
        let raw_udp = match listen.raw_udp {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(|err| {
                io::Error::new(err.kind(), format!("cannot bind raw UDP {addr}: {err}"))
            })?),
            None => None,
        };
        let uds = match listen.uds {
            Some(path) => {
                let listener = bind_unix(&path).map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!("cannot bind Unix socket {}: {err}", crate::uds::show(&path)),
                    )
                })?;
                let file = UnixSocketFile::bound_at(&path);
                Some((listener, path, file))
            }
            None => None,
        };
        let udp = match listen.udp {
            Some(addr) => Some(UdpSocket::bind(addr).await.map_err(|err| {
                io::Error::new(err.kind(), format!("cannot bind UDP {addr}: {err}"))
            })?),
            None => None,
        };
        let stack = match listen.stack {
            Some(addr) => Some(bind_tcp("TCP", addr)?),
            None => None,
        };
        Ok(Sockets {
            rpc,
            tls,
            raw_tcp,
            raw_udp,
            uds,
            udp,
            stack,
            observe: listen.observe,
            delay: listen.delay,
            max_connection_age: (listen.max_connection_age, listen.max_connection_age_grace),
        })
    }

    /// The addresses bound.
    pub(crate) fn bound(&self) -> io::Result<Bound> {
        Ok(Bound {
            rpc: self.rpc.as_ref().map(TcpListener::local_addr).transpose()?,
            tls: self
                .tls
                .as_ref()
                .map(|(rpc, _, _)| rpc.local_addr())
                .transpose()?,
            raw_tls: self
                .tls
                .as_ref()
                .map(|(_, raw, _)| raw.local_addr())
                .transpose()?,
            raw_tcp: self.raw_tcp.local_addr()?,
            raw_udp: self
                .raw_udp
                .as_ref()
                .map(UdpSocket::local_addr)
                .transpose()?,
            uds: self.uds.as_ref().map(|(_, path, _)| path.clone()),
            udp: self.udp.as_ref().map(UdpSocket::local_addr).transpose()?,
            stack: self
                .stack
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
        })
    }

    /// Serves until `shutdown` completes: then the sockrpc servers drain (GOAWAY, in-flight
    /// calls finish within [`GRACE`]), the raw echoes stop at once and the Unix socket file is
    /// removed. A sockrpc server that fails stops the others too.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        if self.observe {
            self.serve_with(shutdown, stack::server).await
        } else {
            self.serve_with(shutdown, Server::builder).await
        }
    }

    /// [`serve`](Sockets::serve), with the sockrpc listeners' builders made by `builder`.
    async fn serve_with<L: Finish>(
        self,
        shutdown: impl Future<Output = ()>,
        builder: impl Fn() -> ServerBuilder<L>,
    ) -> io::Result<()> {
        let raw_tcp = tokio::spawn(crate::raw_echo::serve_tcp(self.raw_tcp));
        let raw_udp = self
            .raw_udp
            .map(|socket| tokio::spawn(raw::serve_udp(socket)));
        // One signal, two servers: the first of `shutdown` or a server ending stops both.
        let (stop, stopped) = tokio::sync::watch::channel(());
        let stop_signal = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
            // An error means the sender is gone: stop as well.
            let _ = stopped.changed().await;
        };
        let trigger = {
            let stopped = stopped.clone();
            let stop = &stop;
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = stop_signal(stopped) => {}
                }
                stop.send_replace(());
            }
        };
        // grpc.health.v1 for the Bench service (and the server as a whole), NOT_SERVING as soon
        // as shutdown begins so balancers stop sending before the drain.
        let (health, health_server) = sockrpc_health::health_service();
        health.set_serving(BENCH_SERVICE);
        let trigger = {
            let health = health.clone();
            async move {
                trigger.await;
                health.shutdown();
            }
        };
        // A builder per listener: each `serve*` consumes its own.
        let max_connections = connection_cap();
        let server = || {
            crate::cmd::health::with_reflection(
                aged(builder(), self.max_connection_age)
                    .grace_period(GRACE)
                    // Room for the sockrpc-tcp-idle row's idle connections beside the busy ones.
                    .max_connections(max_connections)
                    .add_service(BenchServer::new(EchoService { delay: self.delay }))
                    .add_service(health_server.clone()),
            )
        };
        let (tls_rpc, raw_tls) = match self.tls {
            Some((rpc, raw, tls)) => (
                Some((rpc, tls.clone())),
                Some(tokio::spawn(crate::raw_tls::serve_tls(raw, tls))),
            ),
            None => (None, None),
        };
        // UDP rides on the TCP server: a call whose answer came back truncated is re-issued over
        // TCP and answered from the reply cache the two share. With TLS only, on the TLS server,
        // in plain text (UDP cannot carry TLS; asking for --udp is asking for that).
        let udp_config = || {
            let mut config = UdpServerConfig::default();
            config.grace_period = GRACE;
            config
        };
        let mut udp = self.udp;
        let tcp_server = match (self.rpc.is_some(), udp.take()) {
            (true, Some(socket)) => server().udp(socket, udp_config()),
            (_, other) => {
                udp = other;
                server()
            }
        };
        let tcp = async {
            let Some(listener) = self.rpc else {
                return Ok(());
            };
            let served = tcp_server
                .serve_with_listener_and_shutdown(listener, stop_signal(stopped.clone()))
                .await;
            stop.send_replace(());
            served
        };
        let tls = async {
            let Some((listener, tls)) = tls_rpc else {
                return Ok(());
            };
            let builder = server().tls_handle(tls);
            let builder = match udp {
                Some(socket) => builder
                    .udp(socket, udp_config())
                    .allow_plaintext_udp_with_tls(true),
                None => builder,
            };
            let served = builder
                .serve_with_listener_and_shutdown(listener, stop_signal(stopped.clone()))
                .await;
            stop.send_replace(());
            served
        };
        let (uds_file, uds) = match self.uds {
            Some((listener, _, file)) => (Some(file), Some(listener)),
            None => (None, None),
        };
        let unix = async {
            let Some(listener) = uds else {
                return Ok(());
            };
            let served = server()
                .serve_unix_with_listener_and_shutdown(listener, stop_signal(stopped.clone()))
                .await;
            stop.send_replace(());
            served
        };
        let stacked = async {
            let Some(listener) = self.stack else {
                return Ok(());
            };
            let served = aged(stack::server(), self.max_connection_age)
                .grace_period(GRACE)
                .add_service(BenchServer::new(EchoService { delay: self.delay }))
                .serve_with_listener_and_shutdown(listener, stop_signal(stopped.clone()))
                .await;
            stop.send_replace(());
            served
        };
        let ((), tcp, tls, unix, stacked) = tokio::join!(trigger, tcp, tls, unix, stacked);
        raw_tcp.abort();
        if let Some(raw_tls) = raw_tls {
            raw_tls.abort();
        }
        if let Some(raw_udp) = raw_udp {
            raw_udp.abort();
        }
        if let Some(file) = uds_file {
            file.remove();
        }
        tcp.and(tls).and(unix).and(stacked)
    }
}

/// `builder` with a maximum connection age and its grace, when set.
fn aged<L>(
    builder: ServerBuilder<L>,
    (age, grace): (Option<Duration>, Option<Duration>),
) -> ServerBuilder<L> {
    let builder = match age {
        Some(age) => builder.max_connection_age(age),
        None => builder,
    };
    match grace {
        Some(grace) => builder.max_connection_age_grace(grace),
        None => builder,
    }
}

/// Removes the Unix socket file at `path` if it is still a socket: never another kind of file
/// that someone put there since.
fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// A fresh private directory under the system temporary directory, for the embedded server's
/// Unix socket; removed on drop with the socket in it.
#[derive(Debug)]
struct SocketDir {
    dir: PathBuf,
    socket: PathBuf,
}

impl SocketDir {
    /// Creates `sockrpc-bench-<pid>` (or `-<pid>-<n>` when that name is taken) with mode 0700.
    fn create() -> io::Result<SocketDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let pid = std::process::id();
        let mut last = None;
        for attempt in 0..100u32 {
            let name = match attempt {
                0 => format!("sockrpc-bench-{pid}"),
                n => format!("sockrpc-bench-{pid}-{n}"),
            };
            let dir = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let socket = dir.join("bench.sock");
                    let made = SocketDir { dir, socket };
                    crate::interrupt::remove_on_interrupt(made.dir.clone(), made.socket.clone())?;
                    return Ok(made);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free temporary directory name")))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        remove_socket(&self.socket);
        // Only if empty: whatever else is in it is not ours to delete.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// A server running on its own runtime and thread, inside the benchmark's process.
#[derive(Debug)]
pub(crate) struct Embedded {
    bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
    /// Dropped after the server has stopped (fields drop after `Drop::drop`).
    _socket_dir: Option<SocketDir>,
}

impl Embedded {
    /// Starts a `workers`-thread runtime on a new thread, binds loopback ports and serves; with
    /// `uds`, also on a Unix socket in a fresh temporary directory, removed when it stops; with
    /// `udp`, sockrpc over UDP too; with `tls`, sockrpc over TLS and the raw TLS echo too;
    /// with `stack`, the `Bench` service behind the middleware stack on a listener of its own.
    pub(crate) fn start(
        workers: usize,
        uds: bool,
        udp: bool,
        tls: Option<ServerTls>,
        stack: bool,
    ) -> io::Result<Embedded> {
        let socket_dir = if uds {
            Some(SocketDir::create()?)
        } else {
            None
        };
        let listen = Listen::loopback(
            socket_dir.as_ref().map(|dir| dir.socket.clone()),
            udp,
            tls,
            stack,
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("sockrpc-bench-server")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel::<io::Result<Bound>>();
        let thread = thread::Builder::new()
            .name("sockrpc-bench-server".into())
            .spawn(move || -> io::Result<()> {
                let served = runtime.block_on(async move {
                    let sockets = match Sockets::bind(listen).await {
                        Ok(sockets) => sockets,
                        Err(err) => {
                            let kind = err.kind();
                            let _ = ready.send(Err(err));
                            return Err(io::Error::new(kind, "embedded server failed to bind"));
                        }
                    };
                    let _ = ready.send(sockets.bound());
                    sockets
                        .serve(async {
                            let _ = stopped.await;
                        })
                        .await
                });
                // Connection tasks the drain did not wait for are dropped, not awaited.
                runtime.shutdown_timeout(Duration::from_secs(1));
                served
            })?;
        let bound = bound
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| io::Error::other("embedded server did not start"))??;
        Ok(Embedded {
            bound,
            stop: Some(stop),
            thread: Some(thread),
            _socket_dir: socket_dir,
        })
    }

    /// The addresses it serves on.
    pub(crate) fn bound(&self) -> &Bound {
        &self.bound
    }

    /// Stops it and waits for its thread.
    pub(crate) fn stop(mut self) -> io::Result<()> {
        self.shut()
    }

    fn shut(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("embedded server thread panicked")),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}
