//! Calls waiting for room under the server's limit of calls in flight when the channel closes:
//! they were started, so a graceful close sends them as room comes (grpc-java's `shutdown`
//! lets started calls finish), and a close at once cancels them.

use super::*;
use sockrpc::transport::ClientConnection;

/// A channel of one connection to a server taking one call at a time, that connection (once
/// the server's limit is known), and a unary call holding the server's one place.
async fn at_the_limit(
    server: &Running,
) -> (
    Channel,
    ClientConnection,
    JoinHandle<Result<Response<Chunk>, Status>>,
) {
    let channel = bounded("connect", Channel::connect(server.endpoint(1)))
        .await
        .expect("connect");
    let conn = channel.connections().pop().expect("a connection");
    eventually("the server's limit arrives", || conn.max_calls() == Some(1)).await;
    let mut holder = Client::new(channel.clone());
    let holding = tokio::spawn(async move { holder.unary(unary(1)).await });
    eventually("the holder reaches its handler", || server.entered() == 1).await;
    (channel, conn, holding)
}

/// A unary call and a stream, both waiting for room on `conn`.
async fn waiting_calls(
    channel: &Channel,
    conn: &ClientConnection,
) -> (
    JoinHandle<Result<Response<Chunk>, Status>>,
    JoinHandle<Result<Bidi, Status>>,
) {
    let mut client = Client::new(channel.clone());
    let waiting_unary = tokio::spawn(async move { client.unary(unary(2)).await });
    eventually("the unary call waits for room", || conn.waiting() == 1).await;
    let mut client = Client::new(channel.clone());
    let waiting_stream = tokio::spawn(async move {
        let (tx, rx) = mpsc::channel(4);
        let requests = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let answers = client.ping_pong(requests).await?.into_inner();
        Ok(Bidi { tx, answers })
    });
    eventually("the stream waits for room", || conn.waiting() == 2).await;
    (waiting_unary, waiting_stream)
}

#[tokio::test]
async fn graceful_close_sends_the_calls_waiting_for_room() {
    let server = Running::start_limited(1).await;
    let (channel, conn, holding) = at_the_limit(&server).await;
    let (waiting_unary, waiting_stream) = waiting_calls(&channel, &conn).await;

    channel.close();
    // A call after the close fails at once; those waiting keep waiting.
    assert_closed_status(Client::new(channel.clone()).unary(unary(9)).await);
    tokio::task::yield_now().await;
    assert_eq!(
        conn.waiting(),
        2,
        "the close dropped calls waiting for room"
    );
    assert!(!waiting_unary.is_finished() && !waiting_stream.is_finished());

    // Room comes as each call ends: every call started before the close is answered.
    server.gate.release.send_replace(true);
    let answer = bounded("the holder", holding).await.expect("task");
    assert_eq!(answer.expect("answered").into_inner().seq, 1);
    let answer = bounded("the waiting unary call", waiting_unary)
        .await
        .expect("task");
    assert_eq!(
        answer
            .expect("the call waiting for room is sent after close()")
            .into_inner()
            .seq,
        2
    );
    let mut bidi = bounded("the waiting stream", waiting_stream)
        .await
        .expect("task")
        .expect("the stream waiting for room opens after close()");
    bidi.round(3).await.expect("the stream goes on");
    drop(bidi.tx);
    assert!(bounded("the stream's end", bidi.answers.message())
        .await
        .expect("the stream ends cleanly")
        .is_none());
    assert_eq!(
        server.entered(),
        2,
        "the call after close() reached the server"
    );

    bounded("closed()", channel.closed()).await;
    eventually("the server sees the connection end", || {
        server.proxy.open() == 0
    })
    .await;
}

#[tokio::test]
async fn close_now_cancels_the_calls_waiting_for_room() {
    let server = Running::start_limited(1).await;
    let (channel, conn, holding) = at_the_limit(&server).await;
    let (waiting_unary, waiting_stream) = waiting_calls(&channel, &conn).await;

    // After a graceful close, as at once: `close_now` ends the draining.
    channel.close();
    channel.close_now();
    let holder = bounded("the holder", holding).await.expect("task");
    let waiter = bounded("the waiting unary call", waiting_unary)
        .await
        .expect("task");
    let stream = bounded("the waiting stream", waiting_stream)
        .await
        .expect("task");
    for status in [
        holder.expect_err("the call in flight is cancelled"),
        waiter.expect_err("the unary call waiting for room is cancelled"),
        stream
            .err()
            .expect("the stream waiting for room is cancelled"),
    ] {
        assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    }
    bounded("closed()", channel.closed()).await;
    assert_eq!(server.entered(), 1, "a waiting call reached the server");
}
