//! Every duration setter of the server builder and of `Endpoint` takes `Duration::MAX`, as
//! tonic's do: a duration is added to the clock to make a deadline, and an addition past what
//! an `Instant` holds panicked (the connection's task, the accept loop or the caller) where the
//! user meant "never". Each test sets one duration to `Duration::MAX`, serves, connects, and
//! makes calls that must succeed (a small one, then one of 2 MiB, which the server reads
//! across frames and waits for: the frame timeout's clocks); then the server stops.

use crate::support::{payload, EchoStreamer};
use sockrpc::client::Backoff;
use sockrpc::server::PingPolicy;
use sockrpc::service::ServerBuilder;
use sockrpc::transport::{Endpoint, Keepalive, Server};
use sockrpc::{Channel, ReadyQueue};
use sockrpc_tests::serve::Running;
use sockrpc_tests::stream::streamer_client::StreamerClient;
use sockrpc_tests::stream::streamer_server::StreamerServer;
use sockrpc_tests::stream::Chunk;
use std::time::Duration;
use tokio::time::timeout;
use tower::layer::util::Identity;

const MAX: Duration = Duration::MAX;
/// Bound on every step.
const STEP: Duration = Duration::from_secs(10);

/// Serves `tune(builder)`, connects with `endpoint(..)`, makes two calls; both must succeed.
async fn call_through(
    tune: impl FnOnce(ServerBuilder<Identity>) -> ServerBuilder<Identity>,
    endpoint: impl FnOnce(Endpoint) -> Endpoint,
) {
    let server =
        Running::start(tune(Server::builder()).add_service(StreamerServer::new(EchoStreamer)));
    let endpoint = endpoint(Endpoint::from_shared(format!("tcp://{}", server.addr)).expect("uri"));
    let channel = timeout(STEP, Channel::connect(endpoint))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut client = StreamerClient::new(channel);
    for (seq, len) in [(1, 16), (2, 2 << 20)] {
        let sent = Chunk {
            seq,
            payload: payload(len),
        };
        let got = timeout(STEP, client.unary(sent.clone()))
            .await
            .expect("answered in time")
            .expect("the call succeeds");
        assert_eq!(got.into_inner(), sent);
    }
    drop(client);
    server.stop().await;
}

/// Serves `tune(builder)`; a default client calls it.
async fn served(tune: impl FnOnce(ServerBuilder<Identity>) -> ServerBuilder<Identity>) {
    call_through(tune, |e| e).await;
}

/// A default server; the client's endpoint is `tune(endpoint)`.
async fn connected(tune: impl FnOnce(Endpoint) -> Endpoint) {
    call_through(|b| b, tune).await;
}

#[tokio::test]
async fn server_frame_timeout() {
    served(|b| b.frame_timeout(MAX)).await;
}

#[tokio::test]
async fn server_handshake_timeout() {
    served(|b| b.handshake_timeout(MAX)).await;
}

#[tokio::test]
async fn server_idle_timeout() {
    served(|b| b.idle_timeout(Some(MAX))).await;
}

#[tokio::test]
async fn server_max_connection_age() {
    served(|b| b.max_connection_age(MAX)).await;
}

#[tokio::test]
async fn server_max_connection_age_grace() {
    served(|b| b.max_connection_age_grace(MAX)).await;
}

#[tokio::test]
async fn server_keepalive() {
    served(|b| b.keepalive(Some(Keepalive::new(MAX, MAX)))).await;
}

#[tokio::test]
async fn server_http2_keepalive_interval_and_timeout() {
    served(|b| {
        b.http2_keepalive_interval(Some(MAX))
            .http2_keepalive_timeout(Some(MAX))
    })
    .await;
}

#[tokio::test]
async fn server_tcp_keepalive() {
    served(|b| b.tcp_keepalive(Some(MAX))).await;
}

#[tokio::test]
async fn server_timeout() {
    served(|b| b.timeout(MAX)).await;
}

#[tokio::test]
async fn server_grace_period() {
    served(|b| b.grace_period(MAX)).await;
}

#[tokio::test]
async fn server_ping_policy() {
    served(|b| {
        let mut policy = PingPolicy::default();
        policy.min_interval = MAX;
        b.ping_policy(policy)
    })
    .await;
}

#[tokio::test]
async fn server_ready_queue() {
    served(|b| b.ready_queue(ReadyQueue::new(8, MAX))).await;
}

#[tokio::test]
async fn endpoint_connect_timeout() {
    connected(|e| e.connect_timeout(MAX)).await;
}

#[tokio::test]
async fn endpoint_idle_timeout() {
    connected(|e| e.idle_timeout(MAX)).await;
}

#[tokio::test]
async fn endpoint_timeout() {
    connected(|e| e.timeout(MAX)).await;
}

#[tokio::test]
async fn endpoint_tcp_keepalive() {
    connected(|e| e.tcp_keepalive(Some(MAX))).await;
}

#[tokio::test]
async fn endpoint_http2_keep_alive_interval_and_timeout() {
    connected(|e| {
        e.http2_keep_alive_interval(MAX)
            .keep_alive_timeout(MAX)
            .keep_alive_while_idle(true)
    })
    .await;
}

#[tokio::test]
async fn endpoint_rate_limit() {
    // Both calls fit the one window, which never ends.
    connected(|e| e.rate_limit(2, MAX)).await;
}

/// A reconnect backoff starting at `Duration::MAX` ("never again") fails the calls as any
/// failed connect does: the pool's task added it to the attempt's start and panicked, before
/// the calls waiting heard of the failure (they waited out their own timeout), and each call
/// after started another task that did the same.
#[tokio::test]
async fn endpoint_backoff_starting_at_max() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = nobody.local_addr().expect("addr");
    drop(nobody);
    let endpoint = Endpoint::from_shared(format!("tcp://{addr}"))
        .expect("uri")
        .backoff(Backoff::starting_at(MAX));
    let mut client = StreamerClient::new(Channel::lazy(endpoint).expect("lazy"));
    for seq in 1..=3 {
        let call = client.unary(Chunk {
            seq,
            payload: payload(16),
        });
        let status = timeout(STEP, call)
            .await
            .expect("failed in time, not waiting")
            .expect_err("nobody listens");
        assert_eq!(status.code(), sockrpc::Code::Unavailable, "{status:?}");
    }
}
