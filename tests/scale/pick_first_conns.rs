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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
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

/// Every server failed for minutes: pick first waits a long backoff between passes (1 s, ×1.6,
/// ±20 %, at most 120 s). A server discovery adds meanwhile (DNS found the replacements) is
/// tried at once, as grpc-go's pick_first starts a pass over a new address list in
/// TRANSIENT_FAILURE (gRFC A62), not once that backoff is over; alone, as grpc-go skips the
/// addresses still in their backoff. The failing port takes each connection and closes it, so
/// the test knows when a pass has just failed.
#[tokio::test(start_paused = true)]
async fn pick_first_tries_a_server_added_during_its_backoff_at_once() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let closing = tokio::spawn({
        let accepted = Arc::clone(&accepted);
        async move {
            while let Ok((stream, _)) = dead.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    let (changes, discovery) = Discovery::channel();
    changes.send(insert(dead_addr)).expect("send");
    let channel = BalanceBuilder::default()
        .picker(PickFirst::new())
        .build(discovery);
    // Passes fail for a few minutes: the waits between them grow past a minute.
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(
        accepted.load(Ordering::SeqCst) >= 5,
        "{:?}",
        channel.stats()
    );
    // Just after a pass's attempt: its wait begins, far longer than the call's 5 s.
    let seen = accepted.load(Ordering::SeqCst);
    for _ in 0..1_500 {
        if accepted.load(Ordering::SeqCst) > seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        accepted.load(Ordering::SeqCst) > seen,
        "no pass within 150 s"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failed = accepted.load(Ordering::SeqCst);

    let live = Counted::start().await;
    changes.send(insert(live.addr)).expect("send");
    until("the channel lists the new server", || {
        channel.stats().len() == 2
    })
    .await;
    let answered = hello(&channel, None)
        .await
        .unwrap_or_else(|status| panic!("{status:?}; {:?}", channel.stats()));
    assert_eq!(answered, live.addr);
    // The new server was tried alone: the failing one keeps its backoff (a discovery that
    // keeps adding servers does not bring every listed server a connection attempt each time).
    assert_eq!(accepted.load(Ordering::SeqCst), failed);
    closing.abort();
}

fn insert(addr: SocketAddr) -> Change {
    Change::insert(addr.to_string(), Endpoint::new("127.0.0.1", addr.port()))
}

/// The first server completes the handshake and closes at once, the second refuses: each pass
/// stops at the first (it connected), which is gone as the pass ends. The second, which that
/// pass never reached, is not a server discovery added: passes keep their backoff, not one
/// after another with no wait (a reconnect loop against the first). A minute of the client's
/// time makes about 30 connections (the passes', and the kept channel's pool reconnecting on
/// its own backoff); the bound is well above that, and far below a loop's.
#[tokio::test(start_paused = true)]
async fn pick_first_backs_off_from_a_server_that_closes_after_its_handshake() {
    use sockrpc::protocol::frame::{encode_settings, PREFACE};
    use tokio::io::AsyncWriteExt;
    let flapping = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let flapping_addr = flapping.local_addr().expect("addr");
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let refusing_addr = refusing.local_addr().expect("addr");
    drop(refusing);
    let accepted = Arc::new(AtomicUsize::new(0));
    let too_many = Arc::new(tokio::sync::Notify::new());
    let server = tokio::spawn({
        let (accepted, too_many) = (Arc::clone(&accepted), Arc::clone(&too_many));
        async move {
            while let Ok((mut stream, _)) = flapping.accept().await {
                if accepted.fetch_add(1, Ordering::SeqCst) + 1 >= 200 {
                    too_many.notify_one();
                }
                let mut hello = bytes::BytesMut::new();
                hello.extend_from_slice(&PREFACE);
                encode_settings(&mut hello, 0, 100);
                let _ = stream.write_all(&hello).await;
                drop(stream);
            }
        }
    });
    let channel = pick_first(&[flapping_addr, refusing_addr]);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(60)) => {}
        () = too_many.notified() => {}
    }
    let passes = accepted.load(Ordering::SeqCst);
    assert!(
        passes < 100,
        "{passes} connections in a minute; {:?}",
        channel.stats()
    );
    server.abort();
}
