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
