//! A health watch that fails with an error other than UNIMPLEMENTED: the endpoint counts as
//! failing (gRPC's TRANSIENT_FAILURE, "connection active but received health check RPC
//! error"), so a fail-fast call fails at once naming the error instead of waiting, and the
//! watch is asked again with the reconnect backoff (1 s, ×1.6, ±20 %), not in a tight loop, as
//! grpc-go's health client does. An answer ends both. A server without the health service
//! (UNIMPLEMENTED) still counts as serving. On tokio's paused clock: the waits are the
//! backoff's own, whatever the machine's load.

use super::support::{hello, Named, GREETER};
use futures_util::stream::{self, BoxStream, StreamExt};
use sockrpc::service::balance::{BalanceBuilder, Balanced, Health};
use sockrpc::service::discovery;
use sockrpc::{Code, Request, Response, Status};
use sockrpc_health::pb::health_server::{Health as HealthService, HealthServer};
use sockrpc_health::pb::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use sockrpc_health::{GrpcHealthProbe, ServingStatus};
use sockrpc_tests::helloworld::greeter_server::GreeterServer;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A health service whose `Watch` fails `INTERNAL` while `broken`, and answers SERVING (then
/// holds the stream open) once it is not; it counts the `Watch` calls.
#[derive(Clone, Default)]
struct Broken {
    watches: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
}

impl HealthService for Broken {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Err(Status::internal("boom"))
    }

    async fn list(
        &self,
        _request: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::internal("boom"))
    }

    type WatchStream = BoxStream<'static, Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        if self.broken.load(Ordering::SeqCst) {
            return Err(Status::internal("boom"));
        }
        let serving = HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        };
        Ok(Response::new(
            stream::once(async move { Ok(serving) })
                .chain(stream::pending())
                .boxed(),
        ))
    }
}

/// A Greeter on 127.0.0.1, with `health` if given.
async fn serve(health: Option<Broken>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let named = Named {
        addr,
        delay: Duration::ZERO,
        sick: Default::default(),
    };
    let server = sockrpc::Server::builder().add_service(GreeterServer::new(named));
    let server = match health {
        Some(health) => server.add_service(HealthServer::new(health)),
        None => server,
    };
    tokio::spawn(server.serve_with_listener(listener));
    addr
}

fn balanced(addr: SocketAddr) -> Balanced {
    BalanceBuilder::default()
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(discovery::fixed([format!("tcp://{addr}")]).expect("endpoint"))
}

/// Waits (bounded, on the paused clock) until the one endpoint's stats satisfy `cond`.
async fn until(channel: &Balanced, what: &str, cond: impl Fn(&Health, Option<&str>) -> bool) {
    for _ in 0..6_000 {
        if channel
            .stats()
            .iter()
            .all(|s| s.connected && cond(&s.health, s.health_failure.as_deref()))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never {what}: {:?}", channel.stats());
}

#[tokio::test(start_paused = true)]
async fn a_failing_health_watch_fails_fast_calls_and_backs_off() {
    let health = Broken::default();
    health.broken.store(true, Ordering::SeqCst);
    let addr = serve(Some(health.clone())).await;
    let channel = balanced(addr);

    // A fail-fast call fails UNAVAILABLE as soon as the watch has failed (not after the 10 s
    // wait for an endpoint, nor at its 5 s deadline), naming the health error.
    let started = Instant::now();
    let err = hello(&channel, None)
        .await
        .expect_err("the only endpoint is failing");
    let waited = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(
        err.message().contains("health check RPC error") && err.message().contains("boom"),
        "{err}"
    );
    assert!(waited < Duration::from_secs(1), "waited {waited:?}: {err}");
    let stats = channel.stats();
    assert!(
        stats[0]
            .health_failure
            .as_deref()
            .is_some_and(|f| f.contains("boom")),
        "{stats:?}"
    );

    // Asked again with backoff: 1 s, then 1.6 s, 2.56 s, 4.1 s (each ±20 %) — at most 5 calls
    // in 10 s from the first. Every 200 ms, as before, would be 50.
    let first = health.watches.load(Ordering::SeqCst);
    assert!(first >= 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let asked = health.watches.load(Ordering::SeqCst) - first;
    assert!((2..=5).contains(&asked), "{asked} more Watch calls in 10 s");

    // The server answers again: the endpoint serves, and the next call goes there.
    health.broken.store(false, Ordering::SeqCst);
    until(&channel, "serving again", |health, failure| {
        *health == Health::Serving && failure.is_none()
    })
    .await;
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);
}

#[tokio::test(start_paused = true)]
async fn a_server_without_the_health_service_counts_as_serving() {
    let addr = serve(None).await;
    let channel = balanced(addr);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("UNIMPLEMENTED: serving");
    until(&channel, "serving", |health, failure| {
        *health == Health::Serving && failure.is_none()
    })
    .await;
    assert_eq!(hello(&channel, None).await.expect("a call"), addr);
}
