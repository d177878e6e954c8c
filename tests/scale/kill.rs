//! SIGKILL one of three servers during 10,000 calls.

use super::child::Child;
use super::support::{run_calls, run_calls_numbered, shares, Server};
use sockrpc::service::discovery;
use sockrpc::{Channel, Code};
use std::time::Duration;

/// Calls done before the victim may be killed.
const KILL_AFTER: usize = 3_000;
/// Calls done by which it is killed, whatever its share.
const KILL_BY: usize = 6_000;
/// Calls the victim must have answered before it is killed: enough to show it was in use.
const VICTIM_SHARE: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_one_of_three_only_its_in_flight_calls_fail() {
    const CONCURRENCY: usize = 16;
    let a = Server::start("127.0.0.1", Duration::ZERO).await;
    let b = Server::start("127.0.0.2", Duration::ZERO).await;
    let victim = Child::spawn("127.0.0.3", None);
    let victim_addr = victim.addr;
    let channel = Channel::balance(
        discovery::fixed([a.addr, b.addr, victim_addr].map(|a| format!("tcp://{a}")))
            .expect("endpoints"),
    );
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("three endpoints up");
    let mut victim = Some(victim);
    let mut killed_at = None;
    // The kill comes after 3,000 calls, once the victim has answered more than 30 of them:
    // p2c weighs peak latency, and on a loaded machine (this binary's other tests run in
    // parallel threads) one slow answer can shun it for seconds. Counting its answers at a
    // fixed 3,000 could fail a correct balancer. Bounded: at 6,000 it is killed regardless,
    // and the check of its share below reports a victim the balancer never used.
    let mut answered_by_victim = 0;
    let numbered = run_calls_numbered(&channel, 10_000, CONCURRENCY, |results| {
        let done = results.len();
        if let Some((_, Ok(addr))) = results.last() {
            if *addr == victim_addr {
                answered_by_victim += 1;
            }
        }
        if done >= KILL_AFTER && (answered_by_victim > VICTIM_SHARE || done >= KILL_BY) {
            if let Some(v) = victim.take() {
                v.kill();
                killed_at = Some(done);
            }
        }
    })
    .await;
    let killed_at = killed_at.expect("killed mid-run");
    // When the kill returned (the process reaped), at most this many calls had started: every
    // call numbered from here on started after the victim was dead. A call it answered before
    // dying may still end later than that, in the order calls end, on a loaded machine.
    let started_at_kill = killed_at + CONCURRENCY;
    let results: Vec<_> = numbered.iter().map(|(_, r)| r.clone()).collect();
    let after_kill: Vec<_> = numbered
        .iter()
        .filter(|(number, _)| *number >= started_at_kill)
        .map(|(_, r)| r.clone())
        .collect();
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for status in &failures {
        assert_eq!(status.code(), Code::Unavailable, "{status}");
        assert!(!status.message().contains("HANG"), "{status}");
    }
    // Only calls in flight on the victim can fail: at most the concurrency (it had its share).
    assert!(
        failures.len() <= CONCURRENCY,
        "{} calls failed, more than were in flight",
        failures.len()
    );
    let before = shares(&results[..killed_at]);
    let after = shares(&after_kill);
    assert!(
        before.get(&victim_addr).copied().unwrap_or(0) > VICTIM_SHARE,
        "killed after {killed_at} calls: {before:?}"
    );
    assert!(
        !after.contains_key(&victim_addr),
        "the dead server answered: {after:?}"
    );
    // Both survivors carry calls. Not an even split, nor any fixed share: p2c weighs peak
    // latency, and one slow answer on a loaded machine (this binary's other tests run in
    // parallel threads) shuns a survivor for seconds. CI saw 1,114 of 6,984 (16 %) once and
    // 248 of 6,984 (3.5 %) another time; the split is printed below.
    let survivors = after_kill.len();
    for addr in [a.addr, b.addr] {
        let n = after.get(&addr).copied().unwrap_or(0);
        assert!(n > 0, "{addr} took none of {survivors} after the kill");
    }
    println!(
        "failed {}, before {before:?}, after {after:?}",
        failures.len()
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A server that goes away and comes back on the same address takes calls again, without a
/// call ever failing on it (the others carry the load meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_takes_calls_again() {
    let stays = Server::start("127.0.0.1", Duration::ZERO).await;
    let restarts = Server::start("127.0.0.2", Duration::ZERO).await;
    let addr = restarts.addr;
    let channel = Channel::balance(
        discovery::fixed([stays.addr, addr].map(|a| format!("tcp://{a}"))).expect("endpoints"),
    );
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("two up");
    restarts.shutdown().await;
    // Calls sent in the instant between the server closing and this client reading its GOAWAY
    // fail (the transport reports a failed write as Unavailable): wait until the channel knows.
    for _ in 0..200 {
        if channel
            .stats()
            .iter()
            .any(|s| s.key == addr.to_string() && !s.connected)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let meanwhile = run_calls(&channel, 200, 4, |_| {}).await;
    let failed: Vec<_> = meanwhile.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "the survivor answers all: {failed:?}");
    assert!(!shares(&meanwhile).contains_key(&addr));
    let listener = sockrpc_tests::rebind::rebind(addr).await;
    let back = Server::on(listener, Duration::ZERO);
    channel
        .ready(2, Duration::from_secs(15))
        .await
        .expect("reconnected to the restarted server");
    // Picked again, not merely connected. How soon moves with load: the balancer weighs peak
    // latency, and one slow answer on the new connection (a loaded machine: this binary's
    // other tests run in parallel threads) shuns it until its estimate decays, for seconds.
    // About half of 300 calls on a quiet machine, 29 once on a loaded CI machine; a fixed
    // count of 300 calls can end inside such a shun. Calls go on, 300 at a time, until it has
    // answered three (bounded: 30 s, several decay periods).
    let picking = std::time::Instant::now();
    let mut after = std::collections::BTreeMap::new();
    while after.get(&addr).copied().unwrap_or(0) < 3 && picking.elapsed() < Duration::from_secs(30)
    {
        for (answered_by, n) in shares(&run_calls(&channel, 300, 4, |_| {}).await) {
            *after.entry(answered_by).or_insert(0) += n;
        }
    }
    assert!(after.get(&addr).copied().unwrap_or(0) >= 3, "{after:?}");
    stays.shutdown().await;
    back.shutdown().await;
}
