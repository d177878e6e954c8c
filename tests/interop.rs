//! Issue 5: gRPC's interop test cases, ported (`sockrpc-interop`), one test per case with the
//! case's name. Each test starts the interop server on `127.0.0.1:0` and runs the case's client
//! over real TCP; the procedures and asserts live in `sockrpc_interop::client`.

use sockrpc_interop::client::{self, Client};
use sockrpc_interop::{InteropServer, ServerEvents, SoakConfig};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bound on a whole case (and on stopping the server).
const CASE: Duration = Duration::from_secs(30);

/// The interop server, running until `stop`.
struct Running {
    addr: String,
    events: ServerEvents,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start() -> Running {
        Running::start_with(|listener, shutdown| {
            let server = InteropServer::new();
            let events = server.events();
            (
                events,
                tokio::spawn(sockrpc_interop::serve(listener, server, shutdown)),
            )
        })
        .await
    }

    /// Through `run_server`, the entry point the CLI uses.
    async fn start_cli_entry() -> Running {
        Running::start_with(|listener, shutdown| {
            (
                ServerEvents::default(),
                tokio::spawn(sockrpc_interop::run_server(listener, shutdown)),
            )
        })
        .await
    }

    async fn start_with(
        spawn: impl FnOnce(
            tokio::net::TcpListener,
            Shutdown,
        ) -> (ServerEvents, JoinHandle<std::io::Result<()>>),
    ) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address").to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let (events, task) = spawn(
            listener,
            Box::pin(async move {
                let _ = stopped.await;
            }),
        );
        Running {
            addr,
            events,
            stop: Some(stop),
            task,
        }
    }

    async fn client(&self) -> Client {
        client::connect(&self.addr).await.expect("connect")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(CASE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("server returned an error");
    }
}

type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(CASE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CASE:?}"))
}

/// Runs `name` through `run_case` (a fresh channel to the server), as `sockrpc interop client`
/// does.
async fn case(name: &str) {
    let server = Running::start().await;
    let result = bounded(name, sockrpc_interop::run_case(name, &server.addr)).await;
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    server.stop().await;
}

/// Runs a case with a client the test holds, then checks the server saw `cancelled`
/// cancellations and that the connection still carries calls.
async fn case_with_cancellation<F, Fut>(name: &str, run: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = (Client, Result<(), String>)>,
{
    let server = Running::start().await;
    let client = server.client().await;
    let (mut client, result) = bounded(name, run(client)).await;
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    // The server side of the cancellation: its handler was stopped, or saw CANCELLED.
    bounded(
        "the server to observe the cancellation",
        server.events.wait_for_cancelled(1),
    )
    .await;
    // The same channel (and connection) carries later calls.
    bounded("a later call", client::large_unary(&mut client))
        .await
        .unwrap_or_else(|e| panic!("{name}: a call after the cancellation failed: {e}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_unary() {
    let server = Running::start_cli_entry().await;
    let result = bounded(
        "empty_unary",
        sockrpc_interop::run_case("empty_unary", &server.addr),
    )
    .await;
    result.unwrap_or_else(|e| panic!("empty_unary: {e}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_unary() {
    case("large_unary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_compressed_unary() {
    case("client_compressed_unary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_compressed_unary() {
    case("server_compressed_unary").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_compressed_streaming() {
    case("client_compressed_streaming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_compressed_streaming() {
    case("server_compressed_streaming").await;
}

/// The compression cases check what they claim: against a `TestService` that neither accepts
/// nor sends compression, each fails, saying what differed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_cases_fail_against_a_server_without_compression() {
    use sockrpc_interop::pb::test_service_server::TestServiceServer;
    let server = Running::start_with(|listener, shutdown| {
        let service = TestServiceServer::new(InteropServer::new());
        let serving = sockrpc::Server::builder()
            .add_service(service)
            .serve_with_listener_and_shutdown(listener, shutdown);
        (ServerEvents::default(), tokio::spawn(serving))
    })
    .await;
    for (name, want) in [
        // A gzip request to a server that accepts none is never sent compressed: the server
        // never says it accepts gzip, so the message expecting compression arrives plain.
        (
            "client_compressed_unary",
            "UnaryCall (compressed): expected OK, got InvalidArgument",
        ),
        (
            "server_compressed_unary",
            "the answer's compressed flag is false",
        ),
        (
            "client_compressed_streaming",
            "StreamingInputCall (compressed, then not): expected OK, got InvalidArgument",
        ),
        (
            "server_compressed_streaming",
            "compressed flag false, expected true",
        ),
    ] {
        let result = bounded(name, sockrpc_interop::run_case(name, &server.addr)).await;
        let error = result.expect_err(name);
        assert!(error.contains(want), "{name}: {error}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_streaming() {
    case("client_streaming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming() {
    case("server_streaming").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong() {
    case("ping_pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_stream() {
    case("empty_stream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_begin() {
    case_with_cancellation("cancel_after_begin", |mut client| async move {
        let result = client::cancel_after_begin(&mut client).await;
        (client, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_after_first_response() {
    case_with_cancellation("cancel_after_first_response", |mut client| async move {
        let result = client::cancel_after_first_response(&mut client).await;
        (client, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_on_sleeping_server() {
    // The deadline ends the server's side too: its handler is stopped, like a cancellation.
    case_with_cancellation("timeout_on_sleeping_server", |mut client| async move {
        let result = client::timeout_on_sleeping_server(&mut client).await;
        (client, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_code_and_message() {
    case("status_code_and_message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_status_message() {
    case("special_status_message").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_method() {
    case("unimplemented_method").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unimplemented_service() {
    case("unimplemented_service").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_metadata() {
    case("custom_metadata").await;
}

/// Bounded soak settings: the latency and overall bounds only catch a hung call (this is not a
/// speed test), while any failed call fails the test (`max_failures` 0).
fn soak_config(iterations: usize) -> SoakConfig {
    SoakConfig {
        iterations,
        max_failures: 0,
        max_acceptable_latency: Duration::from_secs(20),
        overall_timeout: Some(Duration::from_secs(25)),
        ..SoakConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_soak() {
    let server = Running::start().await;
    let mut client = server.client().await;
    bounded("rpc_soak", client::rpc_soak(&mut client, &soak_config(50)))
        .await
        .unwrap_or_else(|e| panic!("rpc_soak: {e}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_soak() {
    let server = Running::start().await;
    bounded(
        "channel_soak",
        client::channel_soak(&server.addr, &soak_config(20)),
    )
    .await
    .unwrap_or_else(|e| panic!("channel_soak: {e}"));
    server.stop().await;
}

/// The spec's experimental `concurrent_large_unary`: 1000 `large_unary` calls in parallel on
/// one channel (271,828-byte requests, 314,159-byte answers, over 500 MB between them) all
/// succeed, each with its own answer, however the channel and server pace them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_unary() {
    const CALLS: usize = 1000;
    let server = Running::start().await;
    let client = server.client().await;
    let calls = (0..CALLS).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client::large_unary(&mut client).await })
    });
    let results = bounded(
        "concurrent_large_unary",
        futures_util::future::join_all(calls),
    )
    .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|result| match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(e) => Some(format!("task: {e}")),
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CALLS} calls failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    server.stop().await;
}

/// `run_case` knows every case and refuses unknown names without connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_is_listed() {
    assert_eq!(sockrpc_interop::all_cases().len(), 20);
    let err = sockrpc_interop::run_case("no_such_case", "127.0.0.1:1")
        .await
        .expect_err("unknown case");
    assert!(err.contains("unknown test case"), "{err}");
}
