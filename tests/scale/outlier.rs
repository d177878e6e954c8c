//! Outlier ejection: a server whose calls keep failing `Unavailable` leaves the rotation for a
//! while (doubling each time), and comes back once it answers again.

use super::support::{run_calls, shares, Server};
use sockrpc::service::balance::{BalanceBuilder, OutlierConfig, RoundRobin};
use sockrpc::service::discovery;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_server_is_ejected_then_readmitted() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
        Server::start("127.0.0.3", Duration::ZERO).await,
    ];
    let sick = servers[2].addr;
    let channel = BalanceBuilder::default()
        .picker(RoundRobin::new())
        .outlier(OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_millis(300),
            max_ejection: Duration::from_secs(1),
        })
        .build(
            discovery::fixed(servers.iter().map(|s| format!("tcp://{}", s.addr)))
                .expect("endpoints"),
        );
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("3 up");
    servers[2].sick.store(true, Ordering::Relaxed);
    // Round robin alone would send it a third (200); ejection stops that after 3 failures in
    // a row (3 more each time an ejection ends during the run, the ejections doubling).
    let key = sick.to_string();
    let mut seen_ejected = false;
    let started = std::time::Instant::now();
    let results = run_calls(&channel, 600, 1, |_| {
        seen_ejected |= channel.stats().iter().any(|s| s.key == key && s.ejected);
    })
    .await;
    let took = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    // Ejections of 0.3 s, 0.6 s, then 1 s each: a run of `took` sees at most 2 + `took` in
    // seconds of them end. The run takes about a second on a quiet machine (30 held); on a
    // loaded one (this binary's tests run in parallel threads on CI's 2 cores) it can take
    // many, each ending one more ejection: the bound grows with the run, as it would not for
    // a balancer that failed to eject (200).
    let ends = 3 + took.as_secs() as usize;
    let most = (3 * (1 + ends)).max(30);
    assert!(
        (3..=most).contains(&failed),
        "{failed} calls failed in {took:?}"
    );
    // Seen ejected during the run (at its end, the last ejection may just have ended).
    assert!(seen_ejected, "{failed} failed, never ejected");

    // Healthy again: once the ejection ends, it takes its share.
    servers[2].sick.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let back = shares(&run_calls(&channel, 300, 1, |_| {}).await);
    assert!(back.get(&sick).copied().unwrap_or(0) > 60, "{back:?}");
    for server in servers {
        server.shutdown().await;
    }
}
