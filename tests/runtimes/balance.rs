//! A balanced channel made on one runtime and used on the next ones: the task following
//! discovery, the members' connect tasks and their health watches all ran on the first and
//! ended with it. The channel must go on calling, follow discovery changes made after the
//! switch, reconnect a member whose connect task died half way, and watch health again.

use super::support::{
    answered_by, hello, on_runtime, reaches, serving, Flavor, Server, BOUND, GREETER,
};
use sockrpc::service::balance::{BalanceBuilder, Balanced, Health, RoundRobin};
use sockrpc::service::discovery::{from_addrs, Change, Discovery};
use sockrpc::{Code, Endpoint};
use sockrpc_health::GrpcHealthProbe;
use std::net::SocketAddr;
use std::time::Duration;

fn insert(addr: SocketAddr) -> Change {
    Change::insert(addr.to_string(), Endpoint::new("127.0.0.1", addr.port()))
}

/// Waits (bounded) until the channel knows exactly `count` endpoints.
async fn members(channel: &Balanced, count: usize) {
    let started = tokio::time::Instant::now();
    while channel.stats().len() != count {
        assert!(
            started.elapsed() < BOUND / 2,
            "the channel never had {count} endpoints: {:?}",
            channel.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn discovery_changes_are_followed_on_each_runtime_that_uses_the_channel() {
    let serving = serving();
    let servers: Vec<Server> = serving.block_on(async {
        futures_util::future::join_all((0..3).map(|_| Server::start("127.0.0.1"))).await
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let (changes, discovery) = Discovery::channel();
    for addr in &addrs[..2] {
        changes.send(insert(*addr)).expect("discovery open");
    }

    // Made and used on the first runtime, as a static initialised by the first test.
    let channel = on_runtime(Flavor::Current, "first runtime", || async {
        let channel = BalanceBuilder::default()
            .picker(RoundRobin::new())
            .build(discovery);
        channel.ready(2, BOUND / 2).await.expect("two endpoints");
        let by = answered_by(&channel, 10, "first runtime").await;
        assert!(by.contains(&addrs[0]) && by.contains(&addrs[1]), "{by:?}");
        channel
    });

    // A third server inserted after the switch takes calls; a removed one takes none.
    on_runtime(Flavor::Multi, "second runtime", || async {
        answered_by(&channel, 10, "second runtime, before any change").await;
        changes.send(insert(addrs[2])).expect("discovery open");
        assert!(
            reaches(&channel, addrs[2]).await,
            "an endpoint inserted on the second runtime never took a call: {:?}",
            channel.stats()
        );
        changes
            .send(Change::Remove(addrs[0].to_string()))
            .expect("discovery open");
        members(&channel, 2).await;
        let by = answered_by(&channel, 10, "second runtime, after a removal").await;
        assert!(
            !by.contains(&addrs[0]),
            "a removed endpoint answered: {by:?}"
        );
    });

    // And once more, on a third.
    on_runtime(Flavor::Current, "third runtime", || async {
        answered_by(&channel, 10, "third runtime").await;
        changes.send(insert(addrs[0])).expect("discovery open");
        assert!(
            reaches(&channel, addrs[0]).await,
            "an endpoint inserted again on the third runtime never took a call: {:?}",
            channel.stats()
        );
    });
    drop(channel);
    drop(servers);
    drop(serving);
}

#[test]
fn a_member_whose_connect_task_died_with_its_runtime_connects_on_the_next() {
    let serving = serving();
    // Listening but not serving yet: connects complete in the kernel, and the attempt waits
    // for a preface that does not come (up to its connect timeout, far off).
    let listener = serving.block_on(async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    });
    let addr = listener.local_addr().expect("addr");
    let discovery = from_addrs([addr], |addr| {
        Endpoint::new("127.0.0.1", addr.port()).connect_timeout(Duration::from_secs(60))
    });

    let channel = on_runtime(Flavor::Multi, "first runtime", || async {
        let channel = BalanceBuilder::default()
            .wait_for_endpoint(Duration::from_millis(200))
            .build(discovery);
        // The member's connect task starts, and waits for the preface.
        let err = hello(&channel).await.expect_err("nothing serves yet");
        assert!(
            matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded),
            "{err:?}"
        );
        channel
    });

    // The server starts; the member's connect task is gone with the first runtime.
    let server = serving.block_on(async { Server::on(listener) });
    on_runtime(Flavor::Current, "second runtime", || async {
        // Each call waits 200 ms for the member; a loaded machine may take longer to connect,
        // so a few calls in turn (without the fix, no call ever finds it connected).
        let mut last = None;
        for _ in 0..25 {
            match hello(&channel).await {
                Ok(answered) => {
                    assert_eq!(answered, addr);
                    return;
                }
                Err(status) => last = Some(status),
            }
        }
        panic!(
            "the member never connected on the second runtime: {last:?}; {:?}",
            channel.stats()
        )
    });
    drop(channel);
    drop(server);
    drop(serving);
}

#[test]
fn health_is_watched_again_on_the_next_runtime() {
    let serving = serving();
    let servers: Vec<Server> = serving.block_on(async {
        futures_util::future::join_all((0..2).map(|_| Server::start("127.0.0.1"))).await
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let discovery = from_addrs(addrs.clone(), |addr| {
        Endpoint::new("127.0.0.1", addr.port())
    });

    let channel = on_runtime(Flavor::Current, "first runtime", || async {
        let channel = BalanceBuilder::default()
            .picker(RoundRobin::new())
            .health_check(GrpcHealthProbe::new(GREETER))
            .build(discovery);
        channel.ready(2, BOUND / 2).await.expect("two serving");
        channel
    });

    on_runtime(Flavor::Multi, "second runtime", || async {
        answered_by(&channel, 4, "second runtime").await;
        // The first server says NOT_SERVING: the channel must hear it, and stop calling it.
        servers[0].health.set_not_serving(GREETER);
        let started = tokio::time::Instant::now();
        let key = addrs[0].to_string();
        loop {
            let stats = channel.stats();
            let first = stats.iter().find(|s| s.key == key).expect("member");
            if first.health == Health::NotServing {
                break;
            }
            assert!(
                started.elapsed() < BOUND / 2,
                "NOT_SERVING never reached the channel on the second runtime: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let by = answered_by(&channel, 10, "second runtime, one not serving").await;
        assert!(!by.contains(&addrs[0]), "{by:?}");
    });
    drop(channel);
    drop(servers);
    drop(serving);
}

#[test]
fn a_channel_built_outside_any_runtime_starts_following_on_first_use() {
    let serving = serving();
    let server = serving.block_on(Server::start("127.0.0.1"));
    let discovery = from_addrs([server.addr], |addr| {
        Endpoint::new("127.0.0.1", addr.port())
    });
    // As a `LazyLock` initialised outside any runtime would build it.
    let channel = BalanceBuilder::default().build(discovery);
    on_runtime(Flavor::Current, "first runtime", || async {
        let answered = hello(&channel)
            .await
            .unwrap_or_else(|status| panic!("the first call: {status:?}"));
        assert_eq!(answered, server.addr);
    });
    drop(channel);
    drop(server);
    drop(serving);
}
