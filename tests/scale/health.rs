//! Client-side health checking over grpc.health.v1: NOT_SERVING takes a server out of
//! rotation, SERVING brings it back.

use super::support::{run_calls, shares, Server, GREETER};
use sockrpc::service::balance::{BalanceBuilder, Health, RoundRobin};
use sockrpc::service::discovery;
use sockrpc_health::GrpcHealthProbe;
use std::time::Duration;

async fn wait_health(channel: &sockrpc::service::balance::Balanced, key: &str, want: Health) {
    for _ in 0..500 {
        if channel
            .stats()
            .iter()
            .any(|s| s.key == key && s.health == want)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{key} never became {want:?}: {:?}", channel.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_serving_leaves_rotation_and_serving_returns() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
        Server::start("127.0.0.3", Duration::ZERO).await,
    ];
    let channel = BalanceBuilder::default()
        .picker(RoundRobin::new())
        .health_check(GrpcHealthProbe::new(GREETER))
        .build(
            discovery::fixed(servers.iter().map(|s| format!("tcp://{}", s.addr)))
                .expect("endpoints"),
        );
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("3 serving");
    let sick = servers[1].addr;
    let all = shares(&run_calls(&channel, 300, 4, |_| {}).await);
    assert!(all.get(&sick).copied().unwrap_or(0) > 50, "{all:?}");

    servers[1].health.set_not_serving(GREETER);
    wait_health(&channel, &sick.to_string(), Health::NotServing).await;
    let results = run_calls(&channel, 300, 4, |_| {}).await;
    assert!(results.iter().all(Result::is_ok));
    let without = shares(&results);
    assert!(
        !without.contains_key(&sick),
        "NOT_SERVING got calls: {without:?}"
    );

    servers[1].health.set_serving(GREETER);
    wait_health(&channel, &sick.to_string(), Health::Serving).await;
    let back = shares(&run_calls(&channel, 300, 4, |_| {}).await);
    assert!(back.get(&sick).copied().unwrap_or(0) > 50, "{back:?}");
    for server in servers {
        server.shutdown().await;
    }
}

/// A server-streaming call (grpc.health.v1 Watch) through the balanced channel: streams work
/// over it as over a plain channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_goes_through_the_balanced_channel() {
    use sockrpc_health::pb::health_client::HealthClient;
    use sockrpc_health::pb::HealthCheckRequest;
    use sockrpc_health::ServingStatus;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let channel = sockrpc::Channel::balance(
        discovery::fixed([format!("tcp://{}", server.addr)]).expect("endpoint"),
    );
    let mut client = HealthClient::new(channel);
    let mut request = sockrpc::Request::new(HealthCheckRequest {
        service: GREETER.into(),
    });
    request.set_timeout(Duration::from_secs(10));
    let mut stream = client.watch(request).await.expect("watch").into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("a message");
    assert_eq!(first.status(), ServingStatus::Serving);
    server.health.set_not_serving(GREETER);
    let second = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("a message");
    assert_eq!(second.status(), ServingStatus::NotServing);
    server.shutdown().await;
}
