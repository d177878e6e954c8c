//! A server on loopback, bounded waits, and a client pinned to one connection.

use sockrpc::server::ServerBuilder;
use sockrpc::transport::ClientConnection;
use sockrpc::{Channel, Endpoint, Limits};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::layer::util::Identity;

/// Bound on every single wait: a server that should answer, close or serve must do so within
/// it. Under a paused clock it is virtual time, so a hang fails at once.
pub(crate) const BOUND: Duration = Duration::from_secs(5);

pub(crate) use sockrpc_tests::panics::quiet_deliberate_panics;

/// A server on `127.0.0.1:0`, built by the test.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Serves `builder` (services mounted, settings made) on a fresh loopback port.
    pub(crate) fn start(builder: ServerBuilder<Identity>) -> Running {
        quiet_deliberate_panics();
        let listener = sockrpc::transport::bind_tcp(
            "127.0.0.1:0".parse().expect("address"),
            &Default::default(),
        )
        .expect("bind 127.0.0.1:0");
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

    /// Shuts the server down and checks it returned cleanly.
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(40), self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic");
        result.expect("server returned an error");
    }
}

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {BOUND:?}"))
}

/// Waits (bounded) until `condition` holds.
pub(crate) async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not observed within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A channel that can only use one connection, and that connection: every call of a test goes
/// over the same socket, and the test can see whether that socket is still open.
pub(crate) async fn one_connection(addr: SocketAddr) -> (Channel, ClientConnection) {
    let stream = bounded("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let conn = ClientConnection::spawn_tcp(stream, Limits::default());
    let endpoint = Endpoint::new("127.0.0.1", addr.port()).pool_size(1);
    (Channel::from_connection(endpoint, conn.clone()), conn)
}
