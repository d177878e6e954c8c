//! A health watch ends with the endpoint it watches: when discovery removes the endpoint, and
//! when the balanced channel is dropped. A `Watch` stream stays open for as long as the server's
//! status does not change, so a watch task that only looks at its member between answers waits
//! for ever, and keeps the stream, the endpoint's connection and its own task alive with it.

use super::support::{Server, GREETER};
use futures_util::StreamExt;
use sockrpc::service::balance::{BalanceBuilder, Balanced, HealthProbe};
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::{BoxStream, Channel, Endpoint};
use sockrpc_health::GrpcHealthProbe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The standard probe, counting the watch streams it opened and those dropped since.
#[derive(Clone, Default)]
struct Counted {
    opened: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

/// Counts its stream's drop.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl HealthProbe for Counted {
    fn watch(&self, channel: Channel) -> BoxStream<bool> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let guard = DropCount(Arc::clone(&self.dropped));
        GrpcHealthProbe::new(GREETER)
            .watch(channel)
            .map(move |answer| {
                let _held = &guard;
                answer
            })
            .boxed()
    }
}

impl Counted {
    /// Watches open now.
    fn open(&self) -> usize {
        self.opened.load(Ordering::SeqCst) - self.dropped.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until `want` watches are open.
    async fn until_open(&self, want: usize) {
        for _ in 0..500 {
            if self.open() == want && self.opened.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{want} watches wanted open; {} opened, {} dropped",
            self.opened.load(Ordering::SeqCst),
            self.dropped.load(Ordering::SeqCst)
        );
    }
}

fn insert(server: &Server) -> Change {
    Change::insert(
        server.addr.to_string(),
        Endpoint::new(server.addr.ip().to_string(), server.addr.port()),
    )
}

async fn watched(servers: &[Server], probe: &Counted) -> (Balanced, impl Fn(Change)) {
    let (changes, discovery) = Discovery::channel();
    let channel = BalanceBuilder::default()
        .health_check(probe.clone())
        .build(discovery);
    for server in servers {
        changes.send(insert(server)).expect("driver alive");
    }
    channel
        .ready(servers.len(), Duration::from_secs(10))
        .await
        .expect("serving");
    probe.until_open(servers.len()).await;
    (channel, move |change| {
        changes.send(change).expect("driver alive");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_endpoints_health_watch_ends() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
    ];
    let probe = Counted::default();
    let (channel, send) = watched(&servers, &probe).await;
    send(Change::Remove(servers[0].addr.to_string()));
    probe.until_open(1).await;
    // Churn: the same endpoint back and gone again, several times; each leaves nothing behind.
    for _ in 0..3 {
        send(insert(&servers[0]));
        channel
            .ready(2, Duration::from_secs(10))
            .await
            .expect("back");
        probe.until_open(2).await;
        send(Change::Remove(servers[0].addr.to_string()));
        probe.until_open(1).await;
    }
    drop(channel);
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_balanced_channel_ends_its_health_watches() {
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
    ];
    let probe = Counted::default();
    let (channel, _send) = watched(&servers, &probe).await;
    drop(channel);
    probe.until_open(0).await;
    for server in servers {
        server.shutdown().await;
    }
}
