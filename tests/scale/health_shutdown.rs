//! A server's graceful shutdown is not held up by a balanced client's health watch. A `Watch`
//! stream stays open for as long as the server's answer stands, and a draining server waits for
//! its calls to end: grpc-go's client ends its health stream as the server sends the connection
//! away (GOAWAY), and so must ours, or every shutdown takes the server's whole grace period.
//! The watch then starts again on the next connection (to a server back on the same address).

use super::support::{hello, until_health, Named, GREETER};
use sockrpc::service::balance::{BalanceBuilder, Health};
use sockrpc::service::discovery;
use sockrpc_health::GrpcHealthProbe;
use sockrpc_tests::helloworld::greeter_server::GreeterServer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Longer than any shutdown that does not wait it out.
const GRACE: Duration = Duration::from_secs(10);

/// A server on `listener`: a Greeter with health, [`GRACE`] to drain in.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    /// Kept until the server ended, so that no watch ends from the server's side.
    health: sockrpc_health::HealthReporter,
}

fn serve(listener: tokio::net::TcpListener) -> Running {
    let addr = listener.local_addr().expect("addr");
    let (health, health_server) = sockrpc_health::health_service();
    health.set_serving(GREETER);
    let (stop, stopped) = oneshot::channel::<()>();
    let named = Named {
        addr,
        delay: Duration::ZERO,
        sick: Default::default(),
    };
    let task = tokio::spawn(
        sockrpc::Server::builder()
            .add_service(GreeterServer::new(named))
            .add_service(health_server)
            .grace_period(GRACE)
            .serve_with_listener_and_shutdown(listener, async move {
                let _ = stopped.await;
            }),
    );
    Running { stop, task, health }
}

impl Running {
    /// Stops the server gracefully; how long its shutdown took.
    async fn stop(self) -> Duration {
        let began = Instant::now();
        self.stop.send(()).expect("server running");
        tokio::time::timeout(GRACE + Duration::from_secs(10), self.task)
            .await
            .expect("the server ends within its grace period")
            .expect("server task")
            .expect("served");
        let took = began.elapsed();
        drop(self.health);
        took
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_watch_does_not_hold_a_servers_graceful_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let first = serve(listener);
    let channel = BalanceBuilder::default()
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(discovery::fixed([format!("tcp://{addr}")]).expect("endpoint"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("serving");
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);
    // Nothing in flight but the watch: the server's shutdown ends as soon as the client lets
    // go of it. Half the grace period is far more than that takes, and far less than waiting
    // the grace period out.
    let took = first.stop().await;
    assert!(
        took < GRACE / 2,
        "the first shutdown took {took:?} of a {GRACE:?} grace period: the health watch held it"
    );
    // The same server back: the watch starts again on the new connection (the endpoint is
    // usable only once it answers SERVING), and lets that server go as promptly.
    let second = serve(sockrpc_tests::rebind::rebind(addr).await);
    channel
        .ready(1, Duration::from_secs(15))
        .await
        .expect("serving again on the next connection");
    until_health(&channel, Health::Serving).await;
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);
    let took = second.stop().await;
    assert!(
        took < GRACE / 2,
        "the second shutdown took {took:?} of a {GRACE:?} grace period: the health watch held it"
    );
}
