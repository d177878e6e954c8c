//! DNS discovery started on one runtime (a balanced channel in a static, made by the first
//! test to use it): its lookups ran in a task of that runtime, and the channel must still see
//! the records change when later runtimes use it.

use super::dns_server::Dns;
use super::support::{answered_by, on_runtime, reaches, serving, Flavor, Server, BOUND};
use sockrpc::service::balance::{BalanceBuilder, RoundRobin};
use sockrpc::service::discovery::dns::DnsDiscovery;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Three servers on one port at 127.0.0.1, .2 and .3 (A records carry no port); call within
/// the servers' runtime.
async fn three_on_one_port() -> Vec<Server> {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    listeners.into_iter().map(Server::on).collect()
}

#[test]
fn records_changed_after_the_switch_reach_the_channel() {
    let serving = serving();
    let (dns, servers) = serving.block_on(async {
        let dns = Dns::start().await;
        let servers = three_on_one_port().await;
        (dns, servers)
    });
    let port = servers[0].addr.port();
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    serving.block_on(dns.set(&[ip(1), ip(2)]));
    let third = SocketAddr::from((ip(3), port));
    let (dns_addr, first) = (dns.addr, servers[0].addr);

    let channel = on_runtime(Flavor::Multi, "first runtime", || async {
        let discovery = DnsDiscovery::ip("svc.scale.test.", port)
            .server(dns_addr)
            .min_ttl(Duration::from_millis(200))
            .max_ttl(Duration::from_secs(2))
            .start()
            .expect("dns discovery");
        let channel = BalanceBuilder::default()
            .picker(RoundRobin::new())
            .build(discovery);
        channel.ready(2, BOUND / 2).await.expect("two from DNS");
        answered_by(&channel, 4, "first runtime").await;
        channel
    });

    // Calls go on; a third record added now is looked up and takes calls.
    serving.block_on(dns.set(&[ip(1), ip(2), ip(3)]));
    on_runtime(Flavor::Current, "second runtime", || async {
        answered_by(&channel, 4, "second runtime").await;
        channel.ready(3, BOUND / 2).await.unwrap_or_else(|status| {
            panic!(
                "a record added after the switch never reached the channel: {status:?}; {:?}",
                channel.stats()
            )
        });
        assert!(reaches(&channel, third).await, "{:?}", channel.stats());
    });

    // And a record removed on a third runtime leaves.
    serving.block_on(dns.set(&[ip(2), ip(3)]));
    on_runtime(Flavor::Multi, "third runtime", || async {
        answered_by(&channel, 3, "third runtime").await;
        let started = tokio::time::Instant::now();
        while channel.stats().len() != 2 {
            assert!(
                started.elapsed() < BOUND / 2,
                "a record removed on the third runtime never left: {:?}",
                channel.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let by = answered_by(&channel, 6, "third runtime").await;
        assert!(!by.contains(&first), "{by:?}");
    });
    drop(channel);
    drop(servers);
    drop(dns);
    drop(serving);
}

#[test]
fn dns_discovery_started_outside_any_runtime_looks_up_on_first_use() {
    let serving = serving();
    let (dns, server) = serving.block_on(async {
        let dns = Dns::start().await;
        dns.set(&[Ipv4Addr::LOCALHOST]).await;
        (dns, Server::start("127.0.0.1").await)
    });
    // As a `LazyLock` initialised outside any runtime would make them.
    let discovery = DnsDiscovery::ip("svc.scale.test.", server.addr.port())
        .server(dns.addr)
        .start()
        .expect("dns discovery");
    let channel = BalanceBuilder::default().build(discovery);
    on_runtime(Flavor::Multi, "first runtime", || async {
        let by = answered_by(&channel, 2, "first runtime").await;
        assert!(by.iter().all(|addr| *addr == server.addr), "{by:?}");
    });
    drop(channel);
    drop(server);
    drop(dns);
    drop(serving);
}
