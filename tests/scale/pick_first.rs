//! grpc-go's pick_first through a balanced channel: every call on the first server; when it
//! shuts down, every call moves to the second without a failure, and stays there when the first
//! comes back.

use super::support::{run_calls, shares, Server};
use sockrpc::service::balance::{BalanceBuilder, PickFirst};
use sockrpc::service::discovery;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_first_keeps_one_server_until_it_goes() {
    let first = Server::start("127.0.0.1", Duration::ZERO).await;
    let second = Server::start("127.0.0.2", Duration::ZERO).await;
    let (first_addr, second_addr) = (first.addr, second.addr);
    let channel = BalanceBuilder::default().picker(PickFirst::new()).build(
        discovery::fixed([first_addr, second_addr].map(|a| format!("tcp://{a}")))
            .expect("endpoints"),
    );
    // One up: pick first connects to the first server only.
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("the first up");
    let results = run_calls(&channel, 200, 4, |_| {}).await;
    assert!(results.iter().all(Result::is_ok), "a call failed");
    let before = shares(&results);
    assert_eq!(before.get(&first_addr), Some(&200), "{before:?}");

    // A graceful shutdown sends GOAWAY: calls move to the second server, none fails.
    first.shutdown().await;
    let results = run_calls(&channel, 200, 4, |_| {}).await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{failed:?}");
    let after = shares(&results);
    assert_eq!(after.get(&second_addr), Some(&200), "{after:?}");

    // The first comes back on its address: pick_first stays where it is (it holds no
    // connection to the first to notice).
    let listener = sockrpc_tests::rebind::rebind(first_addr).await;
    let back = Server::on(listener, Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let results = run_calls(&channel, 200, 4, |_| {}).await;
    let stays = shares(&results);
    assert_eq!(stays.get(&second_addr), Some(&200), "{stays:?}");
    back.shutdown().await;
    second.shutdown().await;
}

/// A service config's `loadBalancingConfig` picks the balanced channel's policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_config_chooses_the_policy() {
    use sockrpc::middleware::service_config::ServiceConfig;
    let first = Server::start("127.0.0.1", Duration::ZERO).await;
    let second = Server::start("127.0.0.2", Duration::ZERO).await;
    let targets = || {
        discovery::fixed([first.addr, second.addr].map(|a| format!("tcp://{a}")))
            .expect("endpoints")
    };
    for (json, want_both) in [
        (r#"{"loadBalancingConfig": [{"pick_first": {}}]}"#, false),
        (r#"{"loadBalancingConfig": [{"round_robin": {}}]}"#, true),
    ] {
        let config = ServiceConfig::from_json(json).expect("valid");
        let channel = config.balance_builder().build(targets());
        // Pick first connects to one server only.
        channel
            .ready(if want_both { 2 } else { 1 }, Duration::from_secs(10))
            .await
            .expect("up");
        let results = run_calls(&channel, 100, 2, |_| {}).await;
        let seen = shares(&results);
        if want_both {
            for addr in [first.addr, second.addr] {
                let n = seen.get(&addr).copied().unwrap_or(0);
                assert!((40..=60).contains(&n), "{json}: {seen:?}");
            }
        } else {
            assert_eq!(seen.get(&first.addr), Some(&100), "{json}: {seen:?}");
        }
    }
    first.shutdown().await;
    second.shutdown().await;
}
