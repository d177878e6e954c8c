//! A balanced channel over several endpoints, each a pool of several connections: closing it
//! closes them all, stops discovery and reconnects, and `closed` waits for every one.

use super::*;

#[tokio::test]
async fn a_closed_balanced_channel_closes_every_endpoint_and_reconnects_nothing() {
    let servers = vec![Running::start().await, Running::start().await];
    let balanced = Channel::balance(fixed(&servers, 2));
    bounded("both endpoints", balanced.ready(2, STEP))
        .await
        .expect("ready");
    eventually("two connections to each server", || {
        servers.iter().all(|s| s.proxy.open() == 2)
    })
    .await;
    let mut client = StreamerClient::new(balanced.clone());
    let mut blocked = client.clone();
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the call reaches a server", || {
        servers.iter().map(Running::entered).sum::<usize>() == 1
    })
    .await;

    balanced.clone().close();
    assert!(balanced.is_closed());
    assert_closed_status(bounded("a new call", client.unary(unary(2))).await);
    assert_not_ready(balanced.clone()).await;
    assert_eq!(servers.iter().map(Running::entered).sum::<usize>(), 1);

    for server in &servers {
        server.gate.release.send_replace(true);
    }
    bounded("the call in flight", pending)
        .await
        .expect("task")
        .expect("answered after the close");
    bounded("closed()", balanced.closed()).await;
    for server in &servers {
        eventually("the server sees every connection end", || {
            server.proxy.open() == 0
        })
        .await;
    }
    let accepted: Vec<usize> = servers.iter().map(|s| s.proxy.accepted()).collect();
    tokio::time::sleep(QUIET).await;
    let after: Vec<usize> = servers.iter().map(|s| s.proxy.accepted()).collect();
    assert_eq!(after, accepted, "a closed balanced channel reconnected");
}

#[tokio::test]
async fn close_now_cancels_a_balanced_call_in_flight() {
    let servers = vec![Running::start().await, Running::start().await];
    let balanced = Channel::balance(fixed(&servers, 1));
    bounded("both endpoints", balanced.ready(2, STEP))
        .await
        .expect("ready");
    let mut client = StreamerClient::new(balanced.clone());
    let mut blocked = client.clone();
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the call reaches a server", || {
        servers.iter().map(Running::entered).sum::<usize>() == 1
    })
    .await;
    balanced.close_now();
    let status = bounded("the call in flight", pending)
        .await
        .expect("task")
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    bounded("closed()", balanced.closed()).await;
    eventually("the server's handler is cancelled", || {
        servers
            .iter()
            .map(|s| s.gate.cancelled.load(Ordering::SeqCst))
            .sum::<usize>()
            == 1
    })
    .await;
    assert_closed_status(client.unary(unary(2)).await);
}

/// A server that accepts and never sends its preface (a server shutting down, the kernel
/// completing the TCP handshake from its backlog): a member's connect task waits for the
/// handshake. Closing the channel ends that wait and the connection, and `closed()` waits for
/// it, rather than leaving it up until the connect timeout.
#[tokio::test]
async fn close_ends_a_member_connection_still_in_its_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let endpoint = Endpoint::new("127.0.0.1", port).connect_timeout(Duration::from_secs(600));
    let balanced = Channel::balance(discovery::fixed([endpoint]).expect("discovery"));
    let (mut socket, _) = bounded("the member connects", listener.accept())
        .await
        .expect("accept");
    balanced.close();
    bounded("closed()", balanced.closed()).await;
    // `closed()` resolved: the connection has ended, the server reads its end at once (after
    // the client's preface, which may be there first).
    // Within STEP (10 s), not 500 ms: the FIN is on its way when `closed()` resolves, but
    // `cargo test` runs this binary's tests at once on CI's 2 cores, where a stall of seconds
    // happens. A connection left to its handshake would stay up for the 600 s connect timeout.
    let mut buf = [0u8; 256];
    let end = tokio::time::timeout(STEP, async {
        while tokio::io::AsyncReadExt::read(&mut socket, &mut buf)
            .await
            .is_ok_and(|n| n > 0)
        {}
    })
    .await;
    assert!(end.is_ok(), "the connection outlived closed()");
}

/// An endpoint that discovery removed keeps its calls in flight going (they finish, then its
/// connection closes): the channel's `close_now` cancels them too, and `closed()` waits for
/// that connection, as grpc-java's `shutdownNow` reaches subchannels still shutting down.
#[tokio::test]
async fn close_now_reaches_a_call_on_an_endpoint_discovery_removed() {
    let server = Running::start().await;
    let (changes, discovery) = discovery::Discovery::channel();
    let endpoint = server.endpoint(1);
    let key = discovery::endpoint_key(&endpoint);
    changes
        .send(discovery::Change::insert(key.clone(), endpoint))
        .expect("insert");
    let balanced = Channel::balance(discovery);
    bounded("the endpoint", balanced.ready(1, STEP))
        .await
        .expect("ready");
    let mut blocked = StreamerClient::new(balanced.clone());
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the call reaches the server", || server.entered() == 1).await;
    changes
        .send(discovery::Change::Remove(key))
        .expect("remove");
    eventually("the endpoint leaves the set", || {
        balanced.stats().is_empty()
    })
    .await;
    assert_eq!(
        server.proxy.open(),
        1,
        "the call's connection stays while it runs"
    );

    balanced.close_now();
    let status = bounded("the call in flight", pending)
        .await
        .expect("task")
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    bounded("closed()", balanced.closed()).await;
    eventually("the server sees the connection end", || {
        server.proxy.open() == 0
    })
    .await;
}

/// Set when dropped.
struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Closing lets the discovery source go while clones of the channel live on: a source with a
/// task of its own (DNS re-resolution, an etcd watch) ends with its stream, instead of looking
/// up names for a closed channel (grpc-java's `shutdown` shuts its name resolver down).
#[tokio::test]
async fn close_lets_the_discovery_source_go() {
    let server = Running::start().await;
    let (changes, rx) = tokio::sync::mpsc::unbounded_channel();
    let endpoint = server.endpoint(1);
    changes
        .send(discovery::Change::insert(
            discovery::endpoint_key(&endpoint),
            endpoint,
        ))
        .expect("insert");
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = DropFlag(Arc::clone(&dropped));
    let source =
        discovery::Discovery::new(stream::unfold((rx, flag), |(mut rx, flag)| async move {
            let change = rx.recv().await?;
            Some((change, (rx, flag)))
        }));
    let balanced = Channel::balance(source);
    bounded("the endpoint", balanced.ready(1, STEP))
        .await
        .expect("ready");
    let kept = balanced.clone();
    balanced.close();
    bounded("closed()", balanced.closed()).await;
    eventually("the discovery stream is dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    assert!(kept.is_closed());
}
