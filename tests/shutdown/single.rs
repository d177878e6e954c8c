//! One connection: a graceful close lets the calls in flight finish; a close at once cancels
//! them; `closed` waits for the connection's end.

use super::*;

#[tokio::test]
async fn graceful_close_lets_calls_in_flight_finish_and_refuses_new_ones() {
    let server = Running::start().await;
    let channel = bounded("connect", Channel::connect(server.endpoint(1)))
        .await
        .expect("connect");
    let mut client = Client::new(channel.clone());
    let mut bidi = Bidi::open(&mut client).await;
    let mut blocked = client.clone();
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the unary call reaches its handler", || {
        server.entered() == 1
    })
    .await;

    // Closing a clone closes the channel.
    let clone = channel.clone();
    let waiting = tokio::spawn(async move { clone.closed().await });
    channel.clone().close();
    assert!(channel.is_closed());

    // New calls fail at once, without reaching the server; so does `poll_ready`.
    assert_closed_status(bounded("a new call", client.unary(unary(2))).await);
    assert_closed_status(
        bounded(
            "a new stream",
            client.ping_pong(stream::iter(vec![unary(3)])),
        )
        .await,
    );
    assert_not_ready(channel.clone()).await;
    assert_eq!(
        server.entered(),
        1,
        "a call after the close reached the server"
    );

    // The calls in flight go on: the stream takes another round, the unary call is answered.
    bidi.round(2)
        .await
        .expect("the open stream goes on after close");
    assert!(
        !waiting.is_finished(),
        "closed() resolved with calls in flight"
    );
    server.gate.release.send_replace(true);
    let answer = bounded("the unary call in flight", pending)
        .await
        .expect("task");
    assert_eq!(answer.expect("answered").into_inner().seq, 1);
    drop(bidi.tx);
    assert!(bounded("the stream's end", bidi.answers.message())
        .await
        .expect("the stream ends cleanly")
        .is_none());

    // Then the connection closes: the server sees it end.
    bounded("closed()", waiting).await.expect("task");
    eventually("the server sees the connection end", || {
        server.proxy.open() == 0
    })
    .await;
    assert_no_reconnect(&server.proxy, 1).await;
}

#[tokio::test]
async fn close_now_cancels_a_pending_unary_call_and_an_open_stream() {
    let server = Running::start().await;
    let channel = bounded("connect", Channel::connect(server.endpoint(1)))
        .await
        .expect("connect");
    let mut client = Client::new(channel.clone());
    let mut bidi = Bidi::open(&mut client).await;
    let mut blocked = client.clone();
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the unary call reaches its handler", || {
        server.entered() == 1
    })
    .await;

    channel.close_now();
    assert!(channel.is_closed());
    let status = bounded("the pending unary call", pending)
        .await
        .expect("task")
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    let status = bidi.round(2).await.expect_err("the stream is cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");

    bounded("closed()", channel.closed()).await;
    // The server saw the connection end: its handlers were cancelled.
    eventually("the server's unary handler is cancelled", || {
        server.gate.cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the server's stream is dropped", || {
        server.gate.streams_gone.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the proxy sees no connection", || server.proxy.open() == 0).await;
    assert_closed_status(bounded("a new call", client.unary(unary(2))).await);
    assert_no_reconnect(&server.proxy, 1).await;
}

#[tokio::test]
async fn close_now_after_close_cancels_what_the_graceful_close_waits_for() {
    let server = Running::start().await;
    let channel = Channel::lazy(server.endpoint(1)).expect("endpoint");
    let mut client = Client::new(channel.clone());
    let mut blocked = client.clone();
    let pending = tokio::spawn(async move { blocked.unary(unary(1)).await });
    eventually("the unary call reaches its handler", || {
        server.entered() == 1
    })
    .await;
    let closed = channel.closed();
    tokio::pin!(closed);
    // `closed` waits for a close first.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut closed)
            .await
            .is_err()
    );
    // From a thread outside any runtime, twice: idempotent, and nothing blocks.
    let clone = channel.clone();
    std::thread::spawn(move || {
        clone.close();
        clone.close();
    })
    .join()
    .expect("close from a plain thread");
    assert!(channel.is_closed());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut closed)
            .await
            .is_err()
    );
    channel.close_now();
    let status = bounded("the pending call", pending)
        .await
        .expect("task")
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    bounded("closed()", closed).await;
    assert_closed_status(client.unary(unary(2)).await);
}
