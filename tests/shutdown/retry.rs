//! A retry layer waiting between two attempts when its channel closes: the wait ends at once,
//! `CANCELLED` after `close_now`, `UNAVAILABLE` after `close` (the next attempt would be a new
//! call on a closed channel), rather than a backoff later.

use super::*;
use sockrpc::middleware::retry::{Retry, RetryLayer, RetryPolicy};
use sockrpc::service::CloseSignal;
use tower::Layer;

/// A retry of every `UNAVAILABLE`, waiting a minute between attempts: far longer than any
/// step of the test, so a call that ends in time ended because the channel closed. Built with
/// the channel's close signal.
fn retrying<S>(channel: S, signal: CloseSignal) -> Retry<S> {
    let policy = RetryPolicy::new(3).backoff(Duration::from_secs(60), Duration::from_secs(60), 1.0);
    RetryLayer::new()
        .throttle(None)
        .fallback_policy(Some(policy))
        .close_signal(signal)
        .layer(channel)
}

/// The call ended after its first attempt (no `grpc-previous-rpc-attempts` on its status):
/// its wait ended, and no later attempt found the channel closed (that refusal is retried,
/// and counted, too).
fn assert_one_attempt(status: &Status) {
    assert_eq!(
        status
            .metadata()
            .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY),
        None,
        "{status:?}"
    );
}

/// A call whose first attempt failed, waiting for its second.
async fn in_backoff(
    server: &Running,
    channel: &Channel,
) -> JoinHandle<Result<Response<Chunk>, Status>> {
    let mut client = StreamerClient::new(retrying(channel.clone(), channel.close_signal()));
    let call = tokio::spawn(async move { client.unary(unary(FAIL)).await });
    eventually("the first attempt fails", || {
        server.gate.failed.load(Ordering::SeqCst) == 1
    })
    .await;
    call
}

/// A retrying call on a fresh channel, put in its backoff and then ended by `close` of the
/// channel: how it ended (one attempt made, never retried), with its server and channel.
async fn retry_ended_by(close: fn(&Channel)) -> (Status, Running, Channel) {
    let server = Running::start().await;
    let channel = Channel::lazy(server.endpoint(1)).expect("endpoint");
    let call = in_backoff(&server, &channel).await;
    close(&channel);
    let status = bounded("the retrying call", call)
        .await
        .expect("task")
        .expect_err("the retry ends with the close");
    assert_one_attempt(&status);
    assert_eq!(server.gate.failed.load(Ordering::SeqCst), 1, "retried");
    (status, server, channel)
}

#[tokio::test]
async fn close_now_ends_a_retry_waiting_in_its_backoff_cancelled() {
    let (status, _server, channel) = retry_ended_by(Channel::close_now).await;
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    bounded("closed()", channel.closed()).await;
}

#[tokio::test]
async fn close_ends_a_retry_waiting_in_its_backoff_unavailable() {
    let (status, _server, _channel) = retry_ended_by(Channel::close).await;
    assert_closed_status(Err::<(), _>(status));
}

#[tokio::test]
async fn a_balanced_retry_outlives_a_member_leaving_and_ends_at_the_close() {
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
    let mut client = StreamerClient::new(retrying(balanced.clone(), balanced.close_signal()));
    let call = tokio::spawn(async move { client.unary(unary(FAIL)).await });
    eventually("the first attempt fails", || {
        server.gate.failed.load(Ordering::SeqCst) == 1
    })
    .await;

    // The member its first attempt reached leaves the set (its pool closes): the balanced
    // channel is still open, so the retry waits on for another member.
    changes
        .send(discovery::Change::Remove(key))
        .expect("remove");
    eventually("the endpoint leaves the set", || {
        balanced.stats().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!call.is_finished(), "a member leaving ended the retry");

    balanced.close_now();
    let status = bounded("the retrying call", call)
        .await
        .expect("task")
        .expect_err("the retry ends with the close");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    assert_one_attempt(&status);
    assert_eq!(server.gate.failed.load(Ordering::SeqCst), 1, "retried");
    bounded("closed()", balanced.closed()).await;
}
