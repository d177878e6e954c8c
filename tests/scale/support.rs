//! Servers for the scale tests: a Greeter that answers with its own address (after an optional
//! delay) plus the health service, in process or in a child process that can be SIGKILLed.

use sockrpc::service::balance::{Balanced, Health};
use sockrpc::{Code, Request, Status};
use sockrpc_health::HealthReporter;
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::greeter_server::{Greeter, GreeterServer};
use sockrpc_tests::helloworld::{HelloReply, HelloRequest};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The Greeter's service name, as health reports it.
pub(crate) const GREETER: &str = "helloworld.Greeter";

/// Answers with the address it listens on.
#[derive(Clone)]
pub(crate) struct Named {
    pub(crate) addr: SocketAddr,
    pub(crate) delay: Duration,
    /// While set, every call fails `Unavailable` (a sick server, for outlier ejection).
    pub(crate) sick: Arc<AtomicBool>,
}

impl Greeter for Named {
    async fn say_hello(
        &self,
        _request: Request<HelloRequest>,
    ) -> Result<sockrpc::Response<HelloReply>, Status> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.sick.load(Ordering::Relaxed) {
            return Err(Status::unavailable("sick"));
        }
        Ok(sockrpc::Response::new(HelloReply {
            message: self.addr.to_string(),
        }))
    }
}

/// A server in this process.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) health: HealthReporter,
    pub(crate) sick: Arc<AtomicBool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Serves on `ip`, any free port, answering after `delay`.
    pub(crate) async fn start(ip: &str, delay: Duration) -> Server {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        Server::on(listener, delay)
    }

    /// Serves on `listener`.
    pub(crate) fn on(listener: tokio::net::TcpListener, delay: Duration) -> Server {
        let addr = listener.local_addr().expect("addr");
        let (health, health_server) = sockrpc_health::health_service();
        health.set_serving(GREETER);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sick = Arc::new(AtomicBool::new(false));
        let named = Named {
            addr,
            delay,
            sick: Arc::clone(&sick),
        };
        let task = tokio::spawn(
            sockrpc::Server::builder()
                .add_service(GreeterServer::new(named))
                .add_service(health_server)
                .grace_period(Duration::from_secs(2))
                .serve_with_listener_and_shutdown(listener, async move {
                    let _ = stopped.await;
                }),
        );
        Server {
            addr,
            health,
            sick,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts down gracefully and waits (bounded) for it.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One call through `channel`: the address of the server that answered.
pub(crate) async fn hello(channel: &Balanced, key: Option<&str>) -> Result<SocketAddr, Status> {
    let mut client = GreeterClient::new(channel.clone());
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request.set_timeout(Duration::from_secs(5));
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert_str("user", key)
            .expect("valid metadata");
    }
    // A bound on top of the deadline: a call that outlives both is a hang, and fails the test.
    let reply = tokio::time::timeout(Duration::from_secs(15), client.say_hello(request))
        .await
        .map_err(|_| Status::new(Code::Internal, "HANG: the call outlived its deadline"))??;
    reply
        .into_inner()
        .message
        .parse()
        .map_err(|_| Status::internal("bad reply"))
}

/// Runs `total` calls, `concurrency` at a time; per call, the answering server or the error.
/// `during(done)` runs after each completion on the driver (to kill a server mid-run).
pub(crate) async fn run_calls(
    channel: &Balanced,
    total: usize,
    concurrency: usize,
    during: impl FnMut(usize),
) -> Vec<Result<SocketAddr, Status>> {
    let mut during = during;
    run_calls_numbered(channel, total, concurrency, |done| during(done.len()))
        .await
        .into_iter()
        .map(|(_, result)| result)
        .collect()
}

/// [`run_calls`], each result with its call's number in the order the calls started (results
/// come in the order the calls ended): what tells a call started after something `during`
/// did from one that merely ended later. `during` sees the results so far.
pub(crate) async fn run_calls_numbered(
    channel: &Balanced,
    total: usize,
    concurrency: usize,
    mut during: impl FnMut(&[(usize, Result<SocketAddr, Status>)]),
) -> Vec<(usize, Result<SocketAddr, Status>)> {
    let mut set = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(total);
    let mut started = 0;
    while results.len() < total {
        while started < total && set.len() < concurrency {
            let channel = channel.clone();
            let number = started;
            set.spawn(async move { (number, hello(&channel, None).await) });
            started += 1;
        }
        let Some(done) = set.join_next().await else {
            break;
        };
        results.push(done.expect("call task"));
        during(&results);
    }
    results
}

/// Calls answered per server.
pub(crate) fn shares(results: &[Result<SocketAddr, Status>]) -> BTreeMap<SocketAddr, usize> {
    let mut map = BTreeMap::new();
    for addr in results.iter().flatten() {
        *map.entry(*addr).or_default() += 1;
    }
    map
}

/// Waits (bounded) until the channel's endpoints all says `want`.
pub(crate) async fn until_health(channel: &Balanced, want: Health) {
    for _ in 0..1_000 {
        if channel.stats().iter().all(|s| s.health == want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {want:?}: {:?}", channel.stats());
}
