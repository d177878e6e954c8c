//! A retry layer waiting between two attempts when its channel closes: the wait ends at once,
//! `CANCELLED` after `close_now`, `UNAVAILABLE` after `close` (the next attempt would be a new
//! call on a closed channel), rather than a backoff later.

use super::*;
use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
use tower::Layer;

/// A retry of every `UNAVAILABLE`, waiting a minute between attempts: far longer than any
/// step of the test, so a call that ends in time ended because the channel closed.
fn retrying(channel: &Channel) -> StreamerClient<sockrpc::middleware::retry::Retry<Channel>> {
    let policy = RetryPolicy::new(3).backoff(Duration::from_secs(60), Duration::from_secs(60), 1.0);
    StreamerClient::new(
        RetryLayer::new()
            .throttle(None)
            .fallback_policy(Some(policy))
            .layer(channel.clone()),
    )
}

/// A call whose first attempt failed, waiting for its second.
async fn in_backoff(
    server: &Running,
    channel: &Channel,
) -> JoinHandle<Result<Response<Chunk>, Status>> {
    let mut client = retrying(channel);
    let call = tokio::spawn(async move { client.unary(unary(FAIL)).await });
    eventually("the first attempt fails", || {
        server.gate.failed.load(Ordering::SeqCst) == 1
    })
    .await;
    call
}

#[tokio::test]
async fn close_now_ends_a_retry_waiting_in_its_backoff_cancelled() {
    let server = Running::start().await;
    let channel = Channel::lazy(server.endpoint(1)).expect("endpoint");
    let call = in_backoff(&server, &channel).await;
    channel.close_now();
    let status = bounded("the retrying call", call)
        .await
        .expect("task")
        .expect_err("the retry ends with the close");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_eq!(server.gate.failed.load(Ordering::SeqCst), 1, "retried");
    bounded("closed()", channel.closed()).await;
}

#[tokio::test]
async fn close_ends_a_retry_waiting_in_its_backoff_unavailable() {
    let server = Running::start().await;
    let channel = Channel::lazy(server.endpoint(1)).expect("endpoint");
    let call = in_backoff(&server, &channel).await;
    channel.close();
    let status = bounded("the retrying call", call)
        .await
        .expect("task")
        .expect_err("the retry ends with the close");
    assert_closed_status(Err::<(), _>(status));
    assert_eq!(server.gate.failed.load(Ordering::SeqCst), 1, "retried");
}
