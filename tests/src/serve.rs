//! A server on a fresh loopback port for a test, and its clean shutdown: the one copy the test
//! binaries share instead of each writing its own.

use sockrpc::service::server::Finish;
use sockrpc::service::ServerBuilder;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::layer::util::Identity;

/// A server serving on `127.0.0.1:0`, started by [`Running::start`].
#[derive(Debug)]
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves `builder` (services mounted, settings made) on a fresh loopback port.
    pub fn start(builder: ServerBuilder<Identity>) -> Running {
        Running::start_layered(builder)
    }

    /// Serves `builder`, with tower layers on it (`Server::builder().layer(..)`), on a fresh
    /// loopback port.
    pub fn start_layered<L>(builder: ServerBuilder<L>) -> Running
    where
        L: Finish + Send + Sync + 'static,
    {
        Running::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), builder)
    }

    /// Serves `builder` on `addr` (a port a test chose before, e.g. one a lazy channel
    /// already points at).
    pub fn start_at<L>(addr: SocketAddr, builder: ServerBuilder<L>) -> Running
    where
        L: Finish + Send + Sync + 'static,
    {
        let listener = sockrpc::transport::bind_tcp(addr, &Default::default())
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        Running::start_on(listener, builder)
    }

    /// Serves `builder` on `listener` (e.g. one a test made of the port a lazy channel already
    /// points at, [`Refused::listen`](crate::refused::Refused::listen)).
    pub fn start_on<L>(listener: tokio::net::TcpListener, builder: ServerBuilder<L>) -> Running
    where
        L: Finish + Send + Sync + 'static,
    {
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            builder.serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
        );
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Shuts the server down and checks that it returned `Ok` within 10 s.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(10)).await;
    }

    /// Shuts the server down and checks that it returned `Ok` within `within`.
    pub async fn stop_within(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(within, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
    }
}
