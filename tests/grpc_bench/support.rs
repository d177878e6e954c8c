//! The benchmark server on a fresh loopback port, and bounded waits.

use sockrpc::service::ServerBuilder;
use sockrpc::{Channel, Endpoint, Server};
use sockrpc_interop::pb::benchmark_service_client::BenchmarkServiceClient;
use sockrpc_interop::BenchmarkServer;
use sockrpc_tests::serve::Running;
use std::time::Duration;
use tower::layer::util::Identity;

pub(crate) use sockrpc_tests::bounded::{bounded, STEP};

/// Bound on a whole test.
pub(crate) const WHOLE: Duration = Duration::from_secs(120);

/// `BenchmarkService` served on `127.0.0.1:0`, with a handle on the server's counts.
pub(crate) struct Bench {
    pub(crate) running: Running,
    pub(crate) server: BenchmarkServer,
}

impl Bench {
    pub(crate) fn start() -> Bench {
        let server = BenchmarkServer::new();
        let running = Running::start(Server::builder().add_service(server.clone().into_service()));
        Bench { running, server }
    }

    /// Serves `builder` (a test's own services) instead; `server` is then unused.
    pub(crate) fn start_with(builder: ServerBuilder<Identity>) -> Bench {
        Bench {
            running: Running::start(builder),
            server: BenchmarkServer::new(),
        }
    }

    /// A client on a channel of exactly one connection.
    pub(crate) async fn client(&self) -> BenchmarkServiceClient<Channel> {
        let endpoint = Endpoint::new("127.0.0.1", self.running.addr.port()).pool_size(1);
        let channel = bounded("connect", Channel::connect(endpoint))
            .await
            .expect("connect");
        // The server's SETTINGS read (they come with its preface): a stream's first messages
        // are counted as the server credits them, not as before the client knows.
        for connection in channel.connections() {
            bounded("handshake", connection.ready())
                .await
                .expect("handshake");
        }
        BenchmarkServiceClient::new(channel)
    }
}
