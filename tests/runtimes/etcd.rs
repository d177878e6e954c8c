//! etcd discovery started on one runtime (feature `etcd`, a real etcd as in the scale tests):
//! its task and its client's connection ended with that runtime, and the channel must still
//! see keys put and deleted while later runtimes use it.

use super::etcd_process::Etcd;
use super::support::{answered_by, on_runtime, reaches, serving, Flavor, Server, BOUND};
use sockrpc::service::balance::{BalanceBuilder, RoundRobin};
use sockrpc::service::discovery::etcd;
use sockrpc::Endpoint;
use std::time::Duration;

const PREFIX: &str = "/sockrpc/runtimes/greeter/";

#[test]
fn keys_changed_after_the_switch_reach_the_channel() {
    let serving = serving();
    let Some(etcd) = serving.block_on(Etcd::start()) else {
        return;
    };
    let (servers, mut keys) = serving.block_on(async {
        let servers = vec![
            Server::start("127.0.0.1").await,
            Server::start("127.0.0.1").await,
        ];
        (servers, etcd.client().await)
    });
    let (first, second) = (servers[0].addr, servers[1].addr);
    serving
        .block_on(keys.put(format!("{PREFIX}a"), first.to_string(), None))
        .expect("put");
    let endpoints = [etcd.endpoint.clone()];

    let channel = on_runtime(Flavor::Multi, "first runtime", || async {
        let discovery = etcd::discover(&endpoints, PREFIX, |a| {
            Endpoint::new(a.ip().to_string(), a.port())
        })
        .await
        .expect("watch etcd");
        let channel = BalanceBuilder::default()
            .picker(RoundRobin::new())
            .build(discovery);
        channel.ready(1, BOUND / 2).await.expect("one from etcd");
        answered_by(&channel, 3, "first runtime").await;
        channel
    });

    // A key put now: its server takes calls on the next runtime; the first key deleted leaves.
    serving
        .block_on(keys.put(format!("{PREFIX}b"), second.to_string(), None))
        .expect("put");
    on_runtime(Flavor::Current, "second runtime", || async {
        answered_by(&channel, 3, "second runtime").await;
        assert!(
            reaches(&channel, second).await,
            "a key put after the switch never reached the channel: {:?}",
            channel.stats()
        );
    });
    serving
        .block_on(keys.delete(format!("{PREFIX}a"), None))
        .expect("delete");
    on_runtime(Flavor::Multi, "third runtime", || async {
        answered_by(&channel, 3, "third runtime").await;
        let started = tokio::time::Instant::now();
        while channel.stats().len() != 1 {
            assert!(
                started.elapsed() < BOUND / 2,
                "a key deleted on the third runtime never left: {:?}",
                channel.stats()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let by = answered_by(&channel, 4, "third runtime, after the delete").await;
        assert!(!by.contains(&first), "{by:?}");
    });
    drop(channel);
    drop(servers);
    drop(etcd);
    drop(serving);
}
