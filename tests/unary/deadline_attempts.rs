//! A call with no timeout of its own, on a channel with a default one (`Endpoint::timeout`),
//! under a retry or hedging layer: the default bounds each attempt afresh, as the retry
//! layer's docs say ("the endpoint's default from the channel, per attempt"); only the first
//! attempt counts from the call's start (its encoding included, `deadline_below.rs`).
//!
//! The call's encoding takes 1.5 s of the 3 s default and the first attempt fails
//! `UNAVAILABLE` at once: the second attempt must be told more than 1.5 s. Counted from the
//! call's start (the start noted on entry, copied into every attempt) it was told less.

use super::deadline_encode::{layered_failing_first, SlowCodec, PATH};
use super::*;

const DEFAULT: Duration = Duration::from_secs(3);
const ENCODE: Duration = Duration::from_millis(1_500);

/// A client over `layer` on a channel whose endpoint's default timeout is [`DEFAULT`], to a
/// recorder that fails the first call; runs one call with no timeout of its own and returns
/// the timeouts the server was told.
async fn told_per_attempt<L>(layer: L) -> Vec<Option<Duration>>
where
    L: tower::Layer<sockrpc::Channel>,
    L::Service: tower::Service<sockrpc::codegen::Call, Response = Response<sockrpc::Body>, Error = Status>
        + Send
        + 'static,
    <L::Service as tower::Service<sockrpc::codegen::Call>>::Future: Send + 'static,
{
    let (server, recorder, mut client) = layered_failing_first(layer, DEFAULT).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        client.unary(
            Request::new(Bytes::from_static(b"payload")),
            PATH,
            SlowCodec {
                encode_delay: ENCODE,
            },
        ),
    )
    .await
    .expect("the call ends within 10 s")
    .expect("the second attempt succeeds");
    let seen = recorder.seen.lock().expect("lock").clone();
    server.stop().await;
    seen
}

/// Asserts two attempts: the first counted from the call's start, the second afresh.
fn assert_second_afresh(seen: &[Option<Duration>]) {
    assert_eq!(seen.len(), 2, "{seen:?}");
    let first = seen[0].expect("a timeout on the wire");
    assert!(first <= DEFAULT - ENCODE, "first attempt told {first:?}");
    let second = seen[1].expect("a timeout on the wire");
    assert!(
        second > DEFAULT - ENCODE,
        "second attempt told {second:?}: the endpoint's {DEFAULT:?} counted from the call's start"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_attempt_gets_the_endpoints_default_afresh() {
    use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
    let seen = told_per_attempt(RetryLayer::new().method(PATH, RetryPolicy::new(2))).await;
    assert_second_afresh(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_copy_gets_the_endpoints_default_afresh() {
    use sockrpc::middleware::hedge::{HedgeLayer, HedgingPolicy};
    // Sent long after the first would be: the first's non-fatal failure sends it at once.
    let policy = HedgingPolicy::new(2, Duration::from_secs(30)).non_fatal([Code::Unavailable]);
    let seen = told_per_attempt(HedgeLayer::methods_only().method(PATH, policy)).await;
    assert_second_afresh(&seen);
}
