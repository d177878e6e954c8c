//! grpc-go's pick_first holds one connection: the servers are tried in order, one attempt at a
//! time (the next starting beside it after 250 ms, Happy Eyeballs), and the channel keeps a
//! connection only to the first that connects. When that one goes, the next in order takes
//! over; one that comes back gets no connection. A discovery change keeps the server in use
//! while it is still listed, else moves to the first of the new list. The servers count what
//! they accept (`counted.rs`). On tokio's paused clock: a settling wait is long in the client's
//! time (every attempt it would make is made), and nothing in the machine's.

use super::counted::{until, Counted};
use super::support::hello;
use sockrpc::service::balance::{BalanceBuilder, Balanced, PickFirst};
use sockrpc::service::discovery::{self, Change, Discovery};
use sockrpc::transport::endpoint::Endpoint;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Long enough for any connection the channel would make to be made.
const SETTLE: Duration = Duration::from_secs(5);

fn pick_first(addrs: &[SocketAddr]) -> Balanced {
    BalanceBuilder::default()
        .picker(PickFirst::new())
        .build(discovery::fixed(addrs.iter().map(|a| format!("tcp://{a}"))).expect("endpoints"))
}

/// `n` calls one after the other: the servers that answered, and how often. Every call must
/// succeed.
async fn calls(channel: &Balanced, n: usize) -> BTreeMap<SocketAddr, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let addr = hello(channel, None)
            .await
            .unwrap_or_else(|status| panic!("{status:?}; {:?}", channel.stats()));
        *seen.entry(addr).or_default() += 1;
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn pick_first_connects_only_to_the_server_it_uses() {
    let (a, b, c) = (
        Counted::start().await,
        Counted::start().await,
        Counted::start().await,
    );
    let channel = pick_first(&[a.addr, b.addr, c.addr]);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("one up");
    assert_eq!(calls(&channel, 20).await, BTreeMap::from([(a.addr, 20)]));
    tokio::time::sleep(SETTLE).await;
    assert_eq!((a.accepted(), a.open()), (1, 1));
    assert_eq!(
        (b.accepted(), c.accepted()),
        (0, 0),
        "{:?}",
        channel.stats()
    );

    // The first is killed: the next in order takes over, and only it.
    let a_addr = a.kill();
    until("the channel saw the first go", || {
        !channel.stats()[0].connected
    })
    .await;
    assert_eq!(calls(&channel, 20).await, BTreeMap::from([(b.addr, 20)]));
    tokio::time::sleep(SETTLE).await;
    assert_eq!((b.accepted(), b.open()), (1, 1));
    assert_eq!(c.accepted(), 0, "{:?}", channel.stats());

    // The first comes back on its address: nothing connects to it, calls stay on the second.
    let back = Counted::on(sockrpc_tests::rebind::rebind(a_addr).await);
    tokio::time::sleep(SETTLE).await;
    assert_eq!(calls(&channel, 20).await, BTreeMap::from([(b.addr, 20)]));
    assert_eq!(back.accepted(), 0, "{:?}", channel.stats());
    assert_eq!((b.accepted(), c.accepted()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn pick_first_keeps_its_server_while_discovery_lists_it() {
    let (a, b, c) = (
        Counted::start().await,
        Counted::start().await,
        Counted::start().await,
    );
    let insert = |addr: SocketAddr| {
        Change::insert(addr.to_string(), Endpoint::new("127.0.0.1", addr.port()))
    };
    let (changes, discovery) = Discovery::channel();
    for addr in [a.addr, b.addr] {
        changes.send(insert(addr)).expect("send");
    }
    let channel = BalanceBuilder::default()
        .picker(PickFirst::new())
        .build(discovery);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("one up");
    assert_eq!(calls(&channel, 10).await, BTreeMap::from([(a.addr, 10)]));

    // A server added after it: the one in use stays, on its connection.
    changes.send(insert(c.addr)).expect("send");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(calls(&channel, 10).await, BTreeMap::from([(a.addr, 10)]));
    assert_eq!((a.accepted(), b.accepted(), c.accepted()), (1, 0, 0));

    // The one in use is removed: the first of the new list takes over, and only it.
    changes
        .send(Change::Remove(a.addr.to_string()))
        .expect("send");
    until("the removed server's connection closed", || a.open() == 0).await;
    assert_eq!(calls(&channel, 10).await, BTreeMap::from([(b.addr, 10)]));
    tokio::time::sleep(SETTLE).await;
    assert_eq!((a.accepted(), b.accepted(), c.accepted()), (1, 1, 0));
}

/// A first server that never finishes its handshake (listening, never accepting: the kernel
/// completes the TCP handshake, no sockrpc preface comes): after 250 ms the second is tried
/// beside it and wins, and the third is never tried. Waiting for the first's connect timeout
/// (20 s) instead would fail the 5 s call.
#[tokio::test(start_paused = true)]
async fn pick_first_tries_the_next_server_while_one_stalls() {
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stalled_addr = stalled.local_addr().expect("addr");
    let (b, c) = (Counted::start().await, Counted::start().await);
    let channel = pick_first(&[stalled_addr, b.addr, c.addr]);
    assert_eq!(calls(&channel, 5).await, BTreeMap::from([(b.addr, 5)]));
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        (b.accepted(), c.accepted()),
        (1, 0),
        "{:?}",
        channel.stats()
    );
    drop(stalled);
}
