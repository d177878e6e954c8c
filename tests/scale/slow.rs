//! One server 5 ms slower than the others: p2c on peak-EWMA load avoids it, round robin does
//! not.

use super::support::{run_calls, shares, Server};
use sockrpc::service::balance::{BalanceBuilder, P2c, Picker, RoundRobin};
use sockrpc::service::discovery;
use std::time::Duration;

async fn slow_share(picker: impl Picker) -> f64 {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
        Server::start("127.0.0.3", Duration::from_millis(5)).await,
    ];
    let slow = servers[2].addr;
    let channel = BalanceBuilder::default().picker(picker).build(
        discovery::fixed(servers.iter().map(|s| format!("tcp://{}", s.addr))).expect("endpoints"),
    );
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("three endpoints up");
    let results = run_calls(&channel, 3_000, 8, |_| {}).await;
    assert!(results.iter().all(Result::is_ok), "every call answered");
    let share = shares(&results);
    println!("{share:?}");
    for server in servers {
        server.shutdown().await;
    }
    share.get(&slow).copied().unwrap_or(0) as f64 / results.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2c_sends_a_slow_server_under_ten_percent() {
    let share = slow_share(P2c).await;
    assert!(
        share < 0.10,
        "p2c sent the slow server {:.1} %",
        share * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_sends_a_slow_server_a_third() {
    let share = slow_share(RoundRobin::new()).await;
    assert!(
        (0.25..=0.42).contains(&share),
        "round robin sent the slow server {:.1} %",
        share * 100.0
    );
}
