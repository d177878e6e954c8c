use super::*;
use bytes::Bytes;
use sockrpc_protocol::{Code, MethodPath, Request};
use sockrpc_service::{Idempotency, Pushback};
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_layer::Layer;

/// What the scripted server saw of one attempt.
#[derive(Debug, Clone)]
struct Seen {
    at: Duration,
    previous: Option<String>,
    timeout: Option<Duration>,
    /// The `grpc-timeout` entry the attempt still carried.
    grpc_timeout: Option<String>,
}

/// A server that answers attempts from a script (then OK), and records each.
#[derive(Clone)]
struct Script {
    outcomes: Arc<Mutex<VecDeque<Status>>>,
    always: Option<Status>,
    seen: Arc<Mutex<Vec<Seen>>>,
    start: Instant,
}

impl Script {
    fn failing(outcomes: impl IntoIterator<Item = Status>) -> Script {
        Script {
            outcomes: Arc::new(Mutex::new(outcomes.into_iter().collect())),
            always: None,
            seen: Arc::default(),
            start: Instant::now(),
        }
    }

    fn always(status: Status) -> Script {
        Script {
            always: Some(status),
            ..Script::failing([])
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn service(
        &self,
    ) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
        let script = self.clone();
        tower::service_fn(move |call: Call| {
            let request = call.request();
            script.seen.lock().expect("lock").push(Seen {
                at: script.start.elapsed(),
                previous: request
                    .metadata()
                    .get_str(sockrpc_service::PREVIOUS_ATTEMPTS_KEY)
                    .map(str::to_owned),
                timeout: request.timeout(),
                grpc_timeout: request
                    .metadata()
                    .get_str(sockrpc_protocol::GRPC_TIMEOUT_KEY)
                    .map(str::to_owned),
            });
            let outcome = script
                .outcomes
                .lock()
                .expect("lock")
                .pop_front()
                .or_else(|| script.always.clone());
            async move {
                match outcome {
                    Some(status) => Err(status),
                    None => Ok(Response::new(Body::once(Bytes::from_static(b"ok")))),
                }
            }
        })
    }
}

fn call(idempotency: Idempotency) -> Call {
    Call::new(
        MethodPath::from_static("/shop.Catalog/Get"),
        Request::new(Body::once(Bytes::from_static(b"req"))),
    )
    .with_idempotency(idempotency)
}

fn attempts(script: &Script) -> usize {
    script.seen().len()
}

#[tokio::test(start_paused = true)]
async fn retry_an_idempotent_method_succeeds_after_failures_within_the_policy() {
    let script = Script::failing([Status::unavailable("a"), Status::unavailable("b")]);
    let retry = RetryLayer::new().layer(script.service());
    let response = retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("third attempt succeeds");
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    let previous: Vec<Option<&str>> = seen.iter().map(|s| s.previous.as_deref()).collect();
    assert_eq!(previous, [None, Some("1"), Some("2")]);
    assert_eq!(
        response
            .metadata()
            .get_str(sockrpc_service::PREVIOUS_ATTEMPTS_KEY),
        Some("2")
    );
    // Full jitter: the first wait is at most 100 ms, the second at most 200 ms (the paused
    // clock rounds a sleep up to the millisecond, so a draw just under the cap lands on it).
    assert!(
        seen[1].at - seen[0].at <= Duration::from_millis(100),
        "{seen:?}"
    );
    assert!(
        seen[2].at - seen[1].at <= Duration::from_millis(200),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_stops_at_max_attempts_and_the_cap_of_five() {
    let script = Script::always(Status::unavailable("down"));
    let retry = RetryLayer::new().throttle(None).layer(script.service());
    let err = retry
        .oneshot(call(Idempotency::Idempotent))
        .await
        .expect_err("always down");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(attempts(&script), 4, "the default policy's 4 attempts");
    assert_eq!(
        err.metadata()
            .get_str(sockrpc_service::PREVIOUS_ATTEMPTS_KEY),
        Some("3")
    );

    let script = Script::always(Status::unavailable("down"));
    let retry = RetryLayer::new()
        .throttle(None)
        .method("/shop.Catalog/Get", RetryPolicy::new(50))
        .layer(script.service());
    let _ = retry.oneshot(call(Idempotency::Unknown)).await;
    assert_eq!(attempts(&script), 5, "capped at 5");
}

#[tokio::test(start_paused = true)]
async fn retry_a_method_of_unknown_idempotency_only_when_the_server_never_started_it() {
    let script = Script::failing([Status::unavailable("may have run")]);
    let retry = RetryLayer::new().layer(script.service());
    let err = retry
        .oneshot(call(Idempotency::Unknown))
        .await
        .expect_err("not retried");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(attempts(&script), 1);

    let script = Script::failing([
        Status::not_processed("draining"),
        Status::not_processed("draining"),
    ]);
    let retry = RetryLayer::new().layer(script.service());
    retry
        .oneshot(call(Idempotency::Unknown))
        .await
        .expect("sent again, at once");
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].at, seen[0].at, "no backoff for unprocessed calls");
}

#[tokio::test(start_paused = true)]
async fn retry_skips_codes_the_policy_does_not_list() {
    let script = Script::failing([Status::internal("bug")]);
    let retry = RetryLayer::new().layer(script.service());
    let err = retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("INTERNAL is not retryable by default");
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(attempts(&script), 1);

    let script = Script::failing([Status::internal("bug")]);
    let retry = RetryLayer::new()
        .service(
            "shop.Catalog",
            RetryPolicy::new(2).retryable([Code::Internal]),
        )
        .layer(script.service());
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("the service's policy retries INTERNAL");
    assert_eq!(attempts(&script), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_obeys_server_pushback() {
    let wait = Pushback::RetryAfter(Duration::from_millis(700)).on(Status::unavailable("busy"));
    let script = Script::failing([wait]);
    let retry = RetryLayer::new().layer(script.service());
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("retried after the pushback");
    let seen = script.seen();
    assert_eq!(seen[1].at - seen[0].at, Duration::from_millis(700));

    let stop = Pushback::DontRetry.on(Status::unavailable("go away"));
    let script = Script::failing([stop]);
    let retry = RetryLayer::new().layer(script.service());
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("pushback says no");
    assert_eq!(attempts(&script), 1);
}

/// A call given 150 ms (by `deadline`) to a server that is always down, with a retry every
/// 100 ms: what the server saw. The call ends within its deadline.
async fn always_down_for_150_ms(deadline: impl FnOnce(&mut Call)) -> Vec<Seen> {
    let script = Script::always(Status::unavailable("down"));
    let policy =
        RetryPolicy::new(5).backoff(Duration::from_millis(100), Duration::from_millis(100), 1.0);
    let retry = RetryLayer::new()
        .throttle(None)
        .idempotent_policy(Some(policy))
        .layer(script.service());
    let mut call = call(Idempotency::Idempotent);
    deadline(&mut call);
    let started = Instant::now();
    retry.oneshot(call).await.expect_err("always down");
    assert!(started.elapsed() <= Duration::from_millis(150));
    script.seen()
}

fn with_grpc_timeout(call: &mut Call, value: &str) {
    call.request_mut()
        .metadata_mut()
        .insert_str(sockrpc_protocol::GRPC_TIMEOUT_KEY, value)
        .expect("ascii");
}

#[tokio::test(start_paused = true)]
async fn retry_stays_within_the_call_deadline() {
    let seen = always_down_for_150_ms(|call| {
        call.request_mut().set_timeout(Duration::from_millis(150));
    })
    .await;
    assert!(seen.len() >= 2, "{seen:?}");
    for pair in seen.windows(2) {
        let (a, b) = (
            pair[0].timeout.expect("timeout"),
            pair[1].timeout.expect("timeout"),
        );
        assert_eq!(
            a - b,
            pair[1].at - pair[0].at,
            "each attempt gets what remains"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_stays_within_a_grpc_timeout_entry() {
    let seen = always_down_for_150_ms(|call| with_grpc_timeout(call, "150m")).await;
    // Backoffs are drawn at random (up to 100 ms each): two to all five attempts fit.
    assert!((2..=5).contains(&seen.len()), "{seen:?}");
    // The first attempt goes as the caller made it: the channel reads the entry.
    assert_eq!(seen[0].timeout, None);
    assert_eq!(seen[0].grpc_timeout.as_deref(), Some("150m"));
    // Later ones carry what remains as their timeout, and no entry.
    for attempt in &seen[1..] {
        assert_eq!(attempt.grpc_timeout, None, "{seen:?}");
        assert_eq!(
            attempt.timeout,
            Some(Duration::from_millis(150) - attempt.at),
            "{seen:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn retry_ignores_a_grpc_timeout_entry_that_is_not_one() {
    let script = Script::failing([Status::unavailable("a")]);
    let retry = RetryLayer::new().layer(script.service());
    let mut call = call(Idempotency::Idempotent);
    with_grpc_timeout(&mut call, "150ms");
    retry.oneshot(call).await.expect("the retry succeeds");
    let seen = script.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    // No deadline; the entry travels on as the channel would send it.
    for attempt in &seen {
        assert_eq!(attempt.timeout, None);
        assert_eq!(attempt.grpc_timeout.as_deref(), Some("150ms"));
    }
}

#[tokio::test(start_paused = true)]
async fn retry_never_replays_a_streamed_request() {
    let script = Script::failing([Status::unavailable("down")]);
    let retry = RetryLayer::new().layer(script.service());
    let stream = Body::from_stream(tokio_stream_once());
    let call = Call::new(
        MethodPath::from_static("/shop.Catalog/Upload"),
        Request::new(stream),
    )
    .with_idempotency(Idempotency::Idempotent);
    retry.oneshot(call).await.expect_err("one attempt only");
    assert_eq!(attempts(&script), 1);
}

fn tokio_stream_once() -> impl futures_core::Stream<Item = Result<Bytes, Status>> + Send {
    struct Once(Option<Bytes>);
    impl futures_core::Stream for Once {
        type Item = Result<Bytes, Status>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.take().map(Ok))
        }
    }
    Once(Some(Bytes::from_static(b"chunk")))
}

#[tokio::test(start_paused = true)]
async fn throttling_caps_attempts_per_call_when_the_server_fails_every_call() {
    let script = Script::always(Status::unavailable("down"));
    let layer = RetryLayer::new();
    let retry = layer.layer(script.service());
    let calls = 100;
    for _ in 0..calls {
        retry
            .clone()
            .oneshot(call(Idempotency::NoSideEffects))
            .await
            .expect_err("always down");
    }
    let per_call = attempts(&script) as f64 / calls as f64;
    assert!(per_call <= 1.1, "{per_call} attempts per call");
    assert!(!layer.get_throttle().expect("throttle").allows_retry());
}

#[test]
fn retry_without_an_idempotent_policy_sends_idempotent_methods_once_whatever_the_fallback() {
    // `idempotent_policy(None)` is a rule of its own, not "no rule": the fallback is for the
    // other methods only.
    let fallback = RetryPolicy::new(3);
    let retry = RetryLayer::new()
        .idempotent_policy(None)
        .fallback_policy(Some(fallback.clone()))
        .layer(tower::service_fn(|_: Call| async {
            Ok::<_, Status>(Response::new(Body::empty()))
        }));
    for idempotency in [Idempotency::NoSideEffects, Idempotency::Idempotent] {
        assert_eq!(
            retry.config.policy_for(&call(idempotency)),
            None,
            "{idempotency:?}"
        );
    }
    let other = retry.config.policy_for(&call(Idempotency::Unknown));
    assert_eq!(other.as_deref(), Some(&fallback));
}
