//! What the runtime tests share: turns on fresh runtimes, the servers' own runtime, and a
//! Greeter server that answers with its address (plus the health service).

use sockrpc::service::balance::Balanced;
use sockrpc::{Request, Status};
use sockrpc_health::HealthReporter;
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The longest one turn (or one wait inside it) may take before it counts as a hang.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

/// The Greeter's service name, as health reports it.
pub(crate) const GREETER: &str = "helloworld.Greeter";

/// The kind of runtime a turn runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Flavor {
    /// `new_current_thread`, as `#[tokio::test]` builds by default.
    Current,
    /// `new_multi_thread` with two workers.
    Multi,
}

impl Flavor {
    /// A new runtime of this kind, with I/O and time.
    pub(crate) fn build(self) -> tokio::runtime::Runtime {
        match self {
            Flavor::Current => tokio::runtime::Builder::new_current_thread(),
            Flavor::Multi => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(2);
                builder
            }
        }
        .enable_all()
        .build()
        .expect("runtime")
    }
}

/// Runs `turn` on a new runtime of `flavor`, in a thread of its own, bounded by [`BOUND`]
/// (a turn that outlives it fails the test, naming `what`); the runtime, and every task the
/// turn started on it, is gone when this returns.
pub(crate) fn on_runtime<F, T>(flavor: Flavor, what: &str, turn: impl FnOnce() -> F + Send) -> T
where
    F: Future<Output = T>,
    T: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = flavor.build();
                let out = runtime.block_on(async { tokio::time::timeout(BOUND, turn()).await });
                drop(runtime);
                out.unwrap_or_else(|_| panic!("{what} ({flavor:?} runtime): hung for {BOUND:?}"))
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The servers' runtime: it outlives every turn of the clients.
pub(crate) fn serving() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Answers with the address it listens on.
#[derive(Clone)]
struct Named(SocketAddr);

impl Greeter for Named {
    async fn say_hello(
        &self,
        _request: Request<HelloRequest>,
    ) -> Result<sockrpc::Response<HelloReply>, Status> {
        Ok(sockrpc::Response::new(HelloReply {
            message: self.0.to_string(),
        }))
    }
}

/// A Greeter with the health service (the Greeter `SERVING`), on the servers' runtime.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) health: HealthReporter,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Serves on `listener`; call within the servers' runtime.
    pub(crate) fn on(listener: tokio::net::TcpListener) -> Server {
        let addr = listener.local_addr().expect("addr");
        let (health, health_server) = sockrpc_health::health_service();
        health.set_serving(GREETER);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            sockrpc::Server::builder()
                .add_service(GreeterServer::new(Named(addr)))
                .add_service(health_server)
                .grace_period(Duration::from_secs(1))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        Server {
            addr,
            health,
            stop: Some(stop),
        }
    }

    /// Serves on a free port of `ip`; call within the servers' runtime.
    pub(crate) async fn start(ip: &str) -> Server {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        Server::on(listener)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One call through `channel` (5 s deadline): the address of the server that answered.
pub(crate) async fn hello(channel: &Balanced) -> Result<SocketAddr, Status> {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_secs(5));
    let reply = client.say_hello(request).await?;
    reply
        .into_inner()
        .message
        .parse()
        .map_err(|_| Status::internal("bad reply"))
}

/// Calls until `wanted` answers one (at most 200 calls, 10 ms apart): whether it did.
pub(crate) async fn reaches(channel: &Balanced, wanted: SocketAddr) -> bool {
    for _ in 0..200 {
        if hello(channel).await.ok() == Some(wanted) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// `calls` calls: the servers that answered them; each must succeed.
pub(crate) async fn answered_by(channel: &Balanced, calls: usize, what: &str) -> Vec<SocketAddr> {
    let mut by = Vec::with_capacity(calls);
    for n in 0..calls {
        let addr = hello(channel)
            .await
            .unwrap_or_else(|status| panic!("{what}: call {n} failed: {status:?}"));
        by.push(addr);
    }
    by
}
