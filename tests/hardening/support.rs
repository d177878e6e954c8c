//! A server on loopback, bounded waits, and a client pinned to one connection.

use sockrpc::server::ServerBuilder;
use sockrpc::transport::ClientConnection;
use sockrpc::{Channel, Endpoint, Limits};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower::layer::util::Identity;

/// Bound on every single wait: a server that should answer, close or serve must do so within
/// it (10 s, as the other suites: a loaded CI machine can stall a real-clock test for
/// seconds). Under a paused clock it is virtual time, so a hang fails at once.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

pub(crate) use sockrpc_tests::panics::quiet_deliberate_panics;

/// A server on `127.0.0.1:0`, built by the test (`sockrpc_tests::serve`).
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    server: sockrpc_tests::serve::Running,
}

impl Running {
    /// Serves `builder` (services mounted, settings made) on a fresh loopback port.
    pub(crate) fn start(builder: ServerBuilder<Identity>) -> Running {
        quiet_deliberate_panics();
        let server = sockrpc_tests::serve::Running::start(builder);
        Running {
            addr: server.addr,
            server,
        }
    }

    /// Shuts the server down and checks it returned cleanly (a drain may take a while).
    pub(crate) async fn stop(self) {
        self.server.stop_within(Duration::from_secs(40)).await;
    }
}

pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    // In slices, so that the paused clock cannot jump past bytes still in flight.
    sockrpc_tests::bounded::within(BOUND, what, future).await
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

/// What the server logged at WARN on this thread while the capture lives: a test on a
/// current-thread runtime (the paused clock's) sees its own server's warnings, and no other
/// test's.
pub(crate) struct Warnings {
    log: sockrpc_tests::logs::LogBuffer,
    _installed: tracing::subscriber::DefaultGuard,
}

impl Warnings {
    /// Captures this thread's WARN and ERROR events from now on.
    pub(crate) fn capture() -> Warnings {
        let log = sockrpc_tests::logs::LogBuffer::new();
        let subscriber = log.subscriber(tracing::Level::WARN).finish();
        Warnings {
            log,
            _installed: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The lines logged so far that contain `text`.
    pub(crate) fn lines_with(&self, text: &str) -> Vec<String> {
        self.log
            .text()
            .lines()
            .filter(|line| line.contains(text))
            .map(str::to_owned)
            .collect()
    }
}
