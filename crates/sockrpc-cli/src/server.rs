//! What `sockrpc serve` and the embedded server of `sockrpc bench` serve: the `Bench` service
//! over sockrpc, a raw TCP echo and a raw UDP echo.

use crate::proto::{bench::bench_server::BenchServer, EchoService};
use crate::raw;
use sockrpc::transport::bind_tcp;
use sockrpc::{Server, SocketConfig};
use std::{future::Future, io, net::SocketAddr, thread, time::Duration};
use tokio::net::{TcpListener, UdpSocket};

/// How long in-flight calls may finish after shutdown begins. Bench calls take microseconds; a
/// client that keeps its connection idle must not hold up the exit for sockrpc's default 30 s.
const GRACE: Duration = Duration::from_secs(2);

/// Worker threads of the server runtime: the method the reference figures use.
pub(crate) const DEFAULT_WORKERS: usize = 2;

/// Where to listen.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listen {
    /// The sockrpc `Bench` service.
    pub(crate) rpc: SocketAddr,
    /// The raw TCP echo.
    pub(crate) raw_tcp: SocketAddr,
    /// The raw UDP echo; `None`: the raw TCP echo's address and port, or any free port when
    /// that one is taken.
    pub(crate) raw_udp: Option<SocketAddr>,
}

impl Listen {
    /// Everything on 127.0.0.1, on free ports.
    pub(crate) fn loopback() -> Listen {
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        Listen {
            rpc: any,
            raw_tcp: any,
            raw_udp: None,
        }
    }
}

/// The addresses actually bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bound {
    /// The sockrpc `Bench` service.
    pub(crate) rpc: SocketAddr,
    /// The raw TCP echo.
    pub(crate) raw_tcp: SocketAddr,
    /// The raw UDP echo.
    pub(crate) raw_udp: SocketAddr,
}

/// Bound sockets, not yet served. Binding first lets the caller print the real ports before
/// anyone connects.
#[derive(Debug)]
pub(crate) struct Sockets {
    rpc: TcpListener,
    raw_tcp: TcpListener,
    raw_udp: UdpSocket,
}

impl Sockets {
    /// Binds all three; needs a tokio runtime.
    pub(crate) async fn bind(listen: Listen) -> io::Result<Sockets> {
        let config = SocketConfig::default();
        let rpc = bind_tcp(listen.rpc, &config)?;
        let raw_tcp = bind_tcp(listen.raw_tcp, &config)?;
        let raw_udp = match listen.raw_udp {
            Some(addr) => UdpSocket::bind(addr).await?,
            None => {
                // The same port number as the raw TCP echo, so that one `--raw-target` names
                // both; TCP and UDP port spaces are separate, but another program may hold it.
                let same = raw_tcp.local_addr()?;
                match UdpSocket::bind(same).await {
                    Ok(socket) => socket,
                    Err(_) => UdpSocket::bind(SocketAddr::new(same.ip(), 0)).await?,
                }
            }
        };
        Ok(Sockets {
            rpc,
            raw_tcp,
            raw_udp,
        })
    }

    /// The addresses bound.
    pub(crate) fn bound(&self) -> io::Result<Bound> {
        Ok(Bound {
            rpc: self.rpc.local_addr()?,
            raw_tcp: self.raw_tcp.local_addr()?,
            raw_udp: self.raw_udp.local_addr()?,
        })
    }

    /// Serves until `shutdown` completes: then the sockrpc server drains (GOAWAY, in-flight calls
    /// finish within [`GRACE`]) and the raw echoes stop at once.
    pub(crate) async fn serve(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let raw_tcp = tokio::spawn(raw::serve_tcp(self.raw_tcp));
        let raw_udp = tokio::spawn(raw::serve_udp(self.raw_udp));
        let served = Server::builder()
            .grace_period(GRACE)
            .add_service(BenchServer::new(EchoService))
            .serve_with_listener_and_shutdown(self.rpc, shutdown)
            .await;
        raw_tcp.abort();
        raw_udp.abort();
        served
    }
}

/// A server running on its own runtime and thread, inside the benchmark's process.
#[derive(Debug)]
pub(crate) struct Embedded {
    bound: Bound,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl Embedded {
    /// Starts a `workers`-thread runtime on a new thread, binds loopback ports and serves.
    pub(crate) fn start(workers: usize) -> io::Result<Embedded> {
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
                    let sockets = match Sockets::bind(Listen::loopback()).await {
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
        })
    }

    /// The addresses it serves on.
    pub(crate) fn bound(&self) -> Bound {
        self.bound
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
