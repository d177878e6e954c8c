//! The consistent hash ring over real servers: adding a fourth moves about a quarter of the
//! keys, removing one moves only its own.

use super::support::{hello, Server};
use sockrpc::service::balance::{BalanceBuilder, HashRing};
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::Endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const KEYS: usize = 1_000;

async fn owners(channel: &sockrpc::service::balance::Balanced) -> BTreeMap<String, SocketAddr> {
    let mut owners = BTreeMap::new();
    for k in 0..KEYS {
        let key = format!("user-{k}");
        let addr = hello(channel, Some(&key)).await.expect("keyed call");
        owners.insert(key, addr);
    }
    owners
}

fn insert(server: &Server) -> Change {
    Change::insert(
        server.addr.to_string(),
        Endpoint::new(server.addr.ip().to_string(), server.addr.port()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_fourth_moves_a_quarter_removing_one_moves_only_its_keys() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
        Server::start("127.0.0.3", Duration::ZERO).await,
        Server::start("127.0.0.1", Duration::ZERO).await,
    ];
    let (changes, discovery) = Discovery::channel();
    let channel = BalanceBuilder::default()
        .picker(HashRing::by_metadata("user"))
        .build(discovery);
    for server in &servers[..3] {
        changes.send(insert(server)).expect("driver alive");
    }
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("3 up");
    let three = owners(&channel).await;
    // Same keys, same owners: the mapping is stable.
    assert_eq!(three, owners(&channel).await);

    changes.send(insert(&servers[3])).expect("driver alive");
    channel
        .ready(4, Duration::from_secs(10))
        .await
        .expect("4 up");
    let four = owners(&channel).await;
    let moved: Vec<_> = three.keys().filter(|k| three[*k] != four[*k]).collect();
    let share = moved.len() as f64 / KEYS as f64;
    assert!(
        (0.15..=0.35).contains(&share),
        "{:.1} % moved",
        share * 100.0
    );
    assert!(
        moved.iter().all(|k| four[*k] == servers[3].addr),
        "keys moved only to the new server"
    );

    let gone = servers[1].addr;
    changes
        .send(Change::Remove(gone.to_string()))
        .expect("driver alive");
    // Removal is immediate in the set; wait for the channel to see it.
    for _ in 0..100 {
        if channel.stats().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = owners(&channel).await;
    for (key, owner) in &four {
        if *owner != gone {
            assert_eq!(after[key], *owner, "{key} moved though its server stayed");
        } else {
            assert_ne!(after[key], gone);
        }
    }
    for server in servers {
        server.shutdown().await;
    }
}
