//! Calls a balanced channel never finished: a caller that gives up on a call mid-flight, and a
//! call this side refused before sending. Neither may leave a mark on the endpoint's load: a
//! call counted in flight for ever makes p2c shun its endpoint for good, and a refusal counted
//! as an answer feeds the latency estimate a round trip that never happened.

use super::support::Server;
use sockrpc::service::balance::{BalanceBuilder, Balanced, P2c};
use sockrpc::service::discovery;
use sockrpc::{Code, Request};
use sockrpc_tests::helloworld::greeter_client::GreeterClient;
use sockrpc_tests::helloworld::HelloRequest;
use std::time::Duration;

async fn channel(servers: &[Server]) -> Balanced {
    let channel = BalanceBuilder::default().picker(P2c).build(
        discovery::fixed(servers.iter().map(|s| format!("tcp://{}", s.addr))).expect("endpoints"),
    );
    channel
        .ready(servers.len(), Duration::from_secs(10))
        .await
        .expect("endpoints up");
    channel
}

fn in_flight(channel: &Balanced) -> usize {
    channel.stats().iter().map(|s| s.in_flight).sum()
}

fn answered(channel: &Balanced) -> u64 {
    channel.stats().iter().map(|s| s.answered).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_its_caller_gave_up_on_leaves_the_in_flight_count() {
    // Handlers that answer after 30 s: every call here is given up on long before.
    let servers = [
        Server::start("127.0.0.1", Duration::from_secs(30)).await,
        Server::start("127.0.0.2", Duration::from_secs(30)).await,
    ];
    let channel = channel(&servers).await;
    for _ in 0..8 {
        let mut client = GreeterClient::new(channel.clone());
        let call = client.say_hello(Request::new(HelloRequest { name: "x".into() }));
        let gave_up = tokio::time::timeout(Duration::from_millis(50), call).await;
        assert!(gave_up.is_err(), "the call was answered: {gave_up:?}");
    }
    assert_eq!(in_flight(&channel), 0, "{:?}", channel.stats());
    assert_eq!(answered(&channel), 0, "{:?}", channel.stats());
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_refused_before_sending_is_not_counted_as_answered() {
    let servers = [Server::start("127.0.0.1", Duration::ZERO).await];
    let channel = channel(&servers).await;
    let mut client = GreeterClient::new(channel.clone());
    let answer = client
        .say_hello(Request::new(HelloRequest { name: "x".into() }))
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(answered(&channel), 1);
    // Metadata past gRPC's 16 KiB never leaves this side.
    let mut request = Request::new(HelloRequest { name: "x".into() });
    request
        .metadata_mut()
        .insert_str("big", &"x".repeat(20 * 1024))
        .expect("valid metadata");
    let refused = client.say_hello(request).await.expect_err("refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.is_refused_before_sending(), "{refused:?}");
    assert_eq!(answered(&channel), 1, "{:?}", channel.stats());
    assert_eq!(in_flight(&channel), 0, "{:?}", channel.stats());
    for server in servers {
        server.shutdown().await;
    }
}
