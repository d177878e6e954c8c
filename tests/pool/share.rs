//! How the pool shares calls among its connections: the first connection takes
//! `calls_per_connection` calls in flight before the next one gets any; once every connection
//! has that many, calls go to the least loaded.

use super::{live, loopback, wait_until, TestServer, BOUND};
use sockrpc::server::PingPolicy;
use sockrpc::{Endpoint, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use sockrpc_tests::echo::{EchoReply, EchoRequest, SleepRequest};
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Calls that sleep on the server long enough to stay in flight while the test looks, on a
/// loaded machine too (the one-by-one starts wait for each call to run).
const SLEEP_MILLIS: u64 = 5_000;

type Calls = JoinSet<Result<sockrpc::Response<EchoReply>, sockrpc::Status>>;

/// Starts one call that sleeps on the server.
fn spawn_sleeper(channel: &sockrpc::Channel, calls: &mut Calls) {
    let mut client = EchoClient::new(channel.clone());
    calls.spawn(async move {
        client
            .sleep(SleepRequest {
                millis: SLEEP_MILLIS,
                token: String::new(),
            })
            .await
    });
}

/// Starts sleeping calls one at a time, numbered `running` (the server's count of running
/// calls once each has started), each only once the previous one runs on the server, so every
/// pick sees the load the ones before it left.
async fn start_one_by_one(
    channel: &sockrpc::Channel,
    server: &TestServer,
    running: RangeInclusive<usize>,
    calls: &mut Calls,
) {
    for started in running {
        spawn_sleeper(channel, calls);
        let running = &server.service.running;
        wait_until("the call runs on the server", || {
            running.load(Ordering::SeqCst) == started
        })
        .await;
    }
}

fn in_flight(channel: &sockrpc::Channel) -> Vec<usize> {
    channel
        .connection_stats()
        .iter()
        .map(|conn| conn.in_flight)
        .collect()
}

async fn finish(mut calls: Calls, expected: usize) {
    let mut ok = 0;
    while let Some(result) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("calls finish")
    {
        result.expect("task").expect("call");
        ok += 1;
    }
    assert_eq!(ok, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fill_the_first_connection_before_the_next() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(3)
        .calls_per_connection(5);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    assert_eq!(channel.connections().len(), 3);

    let mut calls = JoinSet::new();
    start_one_by_one(&channel, &server, 1..=12, &mut calls).await;
    assert_eq!(in_flight(&channel), [5, 5, 2]);
    finish(calls, 12).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_every_connections_share_calls_go_to_the_least_loaded() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(2)
        .calls_per_connection(2);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");

    let mut calls = JoinSet::new();
    // 2 + 2 fill both shares; the fifth goes to the first of two equally loaded, the sixth to
    // the other, the seventh to the first again.
    start_one_by_one(&channel, &server, 1..=4, &mut calls).await;
    assert_eq!(in_flight(&channel), [2, 2]);
    start_one_by_one(&channel, &server, 5..=7, &mut calls).await;
    assert_eq!(in_flight(&channel), [4, 3]);
    finish(calls, 7).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_limit_below_the_share_is_each_connections_share() {
    // The server takes 3 calls per connection; the pool's share (64) would send a fourth to the
    // first connection, and the server would refuse it. Its SETTINGS announce the limit, and
    // the pool fills each connection up to it.
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 3).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(3);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    assert_eq!(channel.connections().len(), 3);
    // SETTINGS come right after the server's preface.
    wait_until("every connection has the server's limit", || {
        channel
            .connections()
            .iter()
            .all(|conn| conn.max_calls() == Some(3))
    })
    .await;

    let mut calls = JoinSet::new();
    start_one_by_one(&channel, &server, 1..=8, &mut calls).await;
    assert_eq!(in_flight(&channel), [3, 3, 2]);
    // The ninth goes to the one connection still under the server's limit.
    start_one_by_one(&channel, &server, 9..=9, &mut calls).await;
    assert_eq!(in_flight(&channel), [3, 3, 3]);
    finish(calls, 9).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_pool_of_four_carries_64_calls_on_one_connection() {
    let server = TestServer::start(loopback(), PingPolicy::default()).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(4);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    assert_eq!(channel.connections().len(), 4);

    // All at once, from tasks racing on two threads: the share holds however picks interleave.
    let mut calls = JoinSet::new();
    for _ in 0..64 {
        spawn_sleeper(&channel, &mut calls);
    }
    let running = &server.service.running;
    wait_until("64 calls run", || running.load(Ordering::SeqCst) == 64).await;
    assert_eq!(in_flight(&channel), [64, 0, 0, 0]);
    // One more goes to the next connection.
    start_one_by_one(&channel, &server, 65..=65, &mut calls).await;
    assert_eq!(in_flight(&channel), [64, 1, 0, 0]);
    finish(calls, 65).await;
    server.stop().await;
}

/// With calls on the first connection only, the extras sit idle, and a server with an idle
/// timeout sends them away (GOAWAY). An extra sent away while it carried nothing is reopened
/// when load needs it, not at once: else the pool would reconnect it at every server idle
/// timeout, for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_the_server_sends_away_for_idleness_is_reopened_only_when_load_needs_it() {
    let service = super::Counting::default();
    let server = IdleServer::start(Duration::from_millis(150), service.clone());
    let channel = server.pool(2).await;
    assert_eq!(live(&channel), 2);

    // Both sit idle; the server sends both away. The first comes back (a pool keeps one), the
    // extra stays closed through several more of the server's idle periods.
    wait_until("the server sent both away", || {
        channel.connections().iter().any(|c| c.is_closed()) || live(&channel) < 2
    })
    .await;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_millis(600) {
        assert!(live(&channel) <= 1, "the idle extra was reconnected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Load: two calls in flight with a share of one reopen the extra. The second starts once
    // the first runs, so that its pick sees the first connection's share taken (two racing
    // picks could both see it free, and nothing would ask for the extra).
    let mut calls = JoinSet::new();
    for started in 1..=2 {
        spawn_sleeper(&channel, &mut calls);
        wait_until("the call runs on the server", || {
            service.running.load(Ordering::SeqCst) == started
        })
        .await;
    }
    wait_until("the extra reopened under load", || live(&channel) == 2).await;
    finish(calls, 2).await;
    server.stop().await;
}

/// A server's idle timeout retires connections (GOAWAY with FLAG_RETIRE), it does not refuse
/// them: unused connections it sends away, however soon, are no failed attempts, and a
/// fail-fast call made after several of them is answered rather than failed for a backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_retired_for_idleness_are_no_failed_attempts() {
    let server = IdleServer::start(Duration::from_millis(100), super::Counting::default());
    // Five connections open at once and carry nothing: the server sends all five away.
    let channel = server.pool(5).await;
    let first = channel.connections();
    assert_eq!(first.len(), 5);
    wait_until("the server retired all five", || {
        first.iter().all(|c| c.is_closed())
    })
    .await;
    assert!(
        first.iter().all(|c| c.was_retired()),
        "GOAWAY with FLAG_RETIRE"
    );
    // Counted as refusals, five would have pushed the next attempt seconds out, and a
    // fail-fast call would fail at once; retirements, they leave the pool free to reconnect.
    // So do the retirements of the calls' own connections, idle between calls.
    let mut client = EchoClient::new(channel.clone());
    for id in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut request = Request::new(EchoRequest {
            id,
            ..EchoRequest::default()
        });
        request.set_timeout(Duration::from_secs(30));
        let reply = tokio::time::timeout(BOUND, client.echo(request))
            .await
            .expect("answered in time")
            .expect("a fail-fast call after retirements is answered");
        assert_eq!(reply.into_inner().id, id);
    }
    server.stop().await;
}

/// A server with an idle timeout, serving the counting echo service.
struct IdleServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl IdleServer {
    fn start(idle: Duration, service: super::Counting) -> IdleServer {
        let listener = sockrpc::transport::bind_tcp(loopback(), &sockrpc::SocketConfig::default())
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            sockrpc::Server::builder()
                .idle_timeout(Some(idle))
                .add_service(EchoServer::new(service))
                .serve_with_listener_and_shutdown(listener, async {
                    let _ = stopped.await;
                }),
        );
        IdleServer { addr, stop, task }
    }

    /// A channel whose pool keeps `size` connections of one call each.
    async fn pool(&self, size: usize) -> sockrpc::Channel {
        let endpoint = Endpoint::from_uri(&format!("tcp://{}", self.addr))
            .expect("endpoint")
            .pool_size(size)
            .calls_per_connection(1);
        sockrpc::Channel::connect(endpoint).await.expect("connect")
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(BOUND, self.task)
            .await
            .expect("server stops in time")
            .expect("task")
            .expect("serve");
    }
}
