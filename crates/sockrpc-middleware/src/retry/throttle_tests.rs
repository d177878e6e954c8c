//! What a call's end tells the retry throttle (gRFC A6): every call that ends OK earns tokens
//! back, whatever its method's policy; a streamed answer counts at its clean end only; a call
//! through a retry layer and a hedging layer counts once on a throttle they share, once on
//! each of two. A failed attempt costs a token when its policy lists the code or its pushback
//! refuses retries (on any method), once however many layers see it.

use super::*;
use crate::hedge::{HedgeLayer, HedgingPolicy};
use bytes::Bytes;
use sockrpc_protocol::Code;
use sockrpc_protocol::{MethodPath, Request};
use sockrpc_service::{Idempotency, Pushback};
use std::time::Duration;
use tower::ServiceExt;
use tower_layer::Layer;

fn call(idempotency: Idempotency) -> Call {
    Call::new(
        MethodPath::from_static("/shop.Catalog/Get"),
        Request::new(Body::once(Bytes::from_static(b"req"))),
    )
    .with_idempotency(idempotency)
}

/// A throttle of 10 tokens earning 0.5 per success, drained to 0.
fn drained() -> RetryThrottle {
    let throttle = RetryThrottle::new(10, 0.5);
    for _ in 0..10 {
        throttle.record_failure();
    }
    assert_eq!(throttle.tokens(), 0.0);
    throttle
}

/// Answers every call with `answer()`.
fn answering(
    answer: fn() -> Body,
) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
    tower::service_fn(move |_: Call| async move { Ok(Response::new(answer())) })
}

/// A streamed body of `items`.
fn stream_of(items: Vec<Result<Bytes, Status>>) -> Body {
    struct Items(std::collections::VecDeque<Result<Bytes, Status>>);
    impl futures_core::Stream for Items {
        type Item = Result<Bytes, Status>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front())
        }
    }
    Body::from_stream(Items(items.into()))
}

/// The body's next message.
async fn next(body: &mut Body) -> Option<Result<Bytes, Status>> {
    std::future::poll_fn(|cx| body.poll_message(cx)).await
}

#[tokio::test]
async fn calls_a_policy_sends_once_earn_tokens_back() {
    let throttle = drained();
    // `Unknown` idempotency and no fallback: sent once.
    let retry = RetryLayer::new()
        .fallback_policy(None)
        .throttle(Some(throttle.clone()))
        .layer(answering(|| Body::once(Bytes::from_static(b"ok"))));
    assert!(retry
        .config
        .policy_for(&call(Idempotency::Unknown))
        .is_none());
    for _ in 0..20 {
        retry
            .clone()
            .oneshot(call(Idempotency::Unknown))
            .await
            .expect("ok");
    }
    assert_eq!(throttle.tokens(), 10.0, "20 successes at 0.5 each");
}

#[tokio::test]
async fn a_streamed_answer_counts_at_its_clean_end_only() {
    for (idempotency, what) in [
        (Idempotency::Unknown, "sent once"),
        (Idempotency::NoSideEffects, "under a policy"),
    ] {
        let throttle = drained();
        let layer = RetryLayer::new().throttle(Some(throttle.clone()));
        let clean = layer.layer(answering(|| {
            stream_of(vec![
                Ok(Bytes::from_static(b"a")),
                Ok(Bytes::from_static(b"b")),
            ])
        }));
        let response = clean.oneshot(call(idempotency)).await.expect("head");
        assert_eq!(throttle.tokens(), 0.0, "{what}: not before its end");
        let mut body = response.into_inner();
        while let Some(message) = next(&mut body).await {
            message.expect("clean");
        }
        assert_eq!(throttle.tokens(), 0.5, "{what}: counted at its end");

        let failing = layer.layer(answering(|| {
            stream_of(vec![
                Ok(Bytes::from_static(b"a")),
                Err(Status::unavailable("gone")),
            ])
        }));
        let mut body = failing
            .oneshot(call(idempotency))
            .await
            .expect("head")
            .into_inner();
        let mut ended = None;
        for _ in 0..3 {
            match next(&mut body).await {
                Some(Ok(_)) => {}
                Some(Err(status)) => ended = Some(status.code()),
                None => break,
            }
        }
        assert_eq!(ended, Some(sockrpc_protocol::Code::Unavailable));
        drop(body);
        let dropped = layer.layer(answering(|| stream_of(vec![Ok(Bytes::from_static(b"a"))])));
        drop(dropped.oneshot(call(idempotency)).await.expect("head"));
        assert_eq!(
            throttle.tokens(),
            0.5,
            "{what}: a failed or dropped stream is no success"
        );
    }
}

#[tokio::test]
async fn a_hedged_call_under_a_retry_layer_with_the_same_throttle_counts_once() {
    let throttle = drained();
    let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
        .throttle(Some(throttle.clone()));
    let retry = RetryLayer::new()
        .throttle(Some(throttle.clone()))
        .layer(hedge.layer(answering(|| Body::once(Bytes::from_static(b"ok")))));
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("ok");
    assert_eq!(throttle.tokens(), 0.5);

    // With a throttle of its own under the retry layer's, the hedging layer counts it on its
    // own (else its throttle would only ever drain).
    let (outer, inner) = (drained(), drained());
    let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
        .throttle(Some(inner.clone()));
    let retry = RetryLayer::new()
        .throttle(Some(outer.clone()))
        .layer(hedge.layer(answering(|| Body::once(Bytes::from_static(b"ok")))));
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("ok");
    assert_eq!((outer.tokens(), inner.tokens()), (0.5, 0.5));

    // Alone, the hedging layer counts it.
    let throttle = drained();
    let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
        .throttle(Some(throttle.clone()))
        .layer(answering(|| Body::once(Bytes::from_static(b"ok"))));
    hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("ok");
    assert_eq!(throttle.tokens(), 0.5);
}

#[tokio::test]
async fn a_call_the_hedging_layer_sends_once_counts_once_with_or_without_a_retry_layer() {
    // `Idempotency::Unknown`: not hedged by `HedgeLayer::new`, not retried for a code.
    let policy = || HedgingPolicy::new(3, Duration::from_millis(50));
    let throttle = drained();
    let hedge = HedgeLayer::new(policy())
        .throttle(Some(throttle.clone()))
        .layer(answering(|| Body::once(Bytes::from_static(b"ok"))));
    hedge.oneshot(call(Idempotency::Unknown)).await.expect("ok");
    assert_eq!(throttle.tokens(), 0.5, "alone, the hedging layer counts it");

    let throttle = drained();
    let hedge = HedgeLayer::new(policy()).throttle(Some(throttle.clone()));
    let retry = RetryLayer::new()
        .throttle(Some(throttle.clone()))
        .layer(hedge.layer(answering(|| Body::once(Bytes::from_static(b"ok")))));
    retry.oneshot(call(Idempotency::Unknown)).await.expect("ok");
    assert_eq!(
        throttle.tokens(),
        0.5,
        "under a retry layer sharing it, once"
    );
}

#[tokio::test]
async fn a_retry_layer_under_a_hedging_layer_with_the_same_throttle_counts_once() {
    // The other stacking the hedging layer's docs name (a retry layer inside it retries each
    // copy): whichever layer is outside counts the call, the one inside leaves it, for a call
    // the hedging layer sends once (`Unknown`) and one it hedges and the retry layer would
    // retry (`NoSideEffects`).
    for idempotency in [Idempotency::Unknown, Idempotency::NoSideEffects] {
        let throttle = drained();
        let retry = RetryLayer::new().throttle(Some(throttle.clone()));
        let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
            .throttle(Some(throttle.clone()))
            .layer(retry.layer(answering(|| Body::once(Bytes::from_static(b"ok")))));
        hedge.oneshot(call(idempotency)).await.expect("ok");
        assert_eq!(throttle.tokens(), 0.5, "{idempotency:?}: counted once");
    }
}

/// Fails every call with `failure()`, counting the attempts that reach it.
fn failing(
    failure: fn() -> Status,
    attempts: &Arc<std::sync::atomic::AtomicU32>,
) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
    let attempts = Arc::clone(attempts);
    tower::service_fn(move |_: Call| {
        attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move { Err::<Response<Body>, _>(failure()) }
    })
}

/// A call whose request is a stream of one message: it cannot be sent again.
fn streamed_call(idempotency: Idempotency) -> Call {
    Call::new(
        MethodPath::from_static("/shop.Catalog/Get"),
        Request::new(stream_of(vec![Ok(Bytes::from_static(b"req"))])),
    )
    .with_idempotency(idempotency)
}

#[tokio::test]
async fn a_dont_retry_pushback_counts_on_a_method_without_a_policy() {
    // grpc-go's `shouldRetry` reads the pushback before it looks for a policy: one refusing
    // retries costs a token on any call; a plain failure, a pushback asking for a wait on a
    // code no policy lists, or a call refused unprocessed costs none.
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let cases: [(fn() -> Status, f64); 4] = [
        (|| Pushback::DontRetry.on(Status::internal("stop")), 9.0),
        (|| Status::internal("bug"), 10.0),
        (
            || Pushback::RetryAfter(Duration::from_millis(5)).on(Status::internal("later")),
            10.0,
        ),
        (
            || Pushback::DontRetry.on(Status::not_processed("refused")),
            10.0,
        ),
    ];
    for (i, (failure, left)) in cases.into_iter().enumerate() {
        let throttle = RetryThrottle::new(10, 0.5);
        // `Unknown` idempotency and no fallback: no policy in either layer.
        let retry = RetryLayer::new()
            .fallback_policy(None)
            .throttle(Some(throttle.clone()))
            .layer(failing(failure, &attempts));
        assert!(retry
            .config
            .policy_for(&call(Idempotency::Unknown))
            .is_none());
        retry
            .oneshot(call(Idempotency::Unknown))
            .await
            .expect_err("fails");
        assert_eq!(throttle.tokens(), left, "retry layer, case {i}");

        let throttle = RetryThrottle::new(10, 0.5);
        let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
            .throttle(Some(throttle.clone()))
            .layer(failing(failure, &attempts));
        hedge
            .oneshot(call(Idempotency::Unknown))
            .await
            .expect_err("fails");
        assert_eq!(throttle.tokens(), left, "hedging layer, case {i}");
    }
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 8);
}

#[tokio::test]
async fn a_streamed_request_sent_once_counts_a_failure_its_policy_lists() {
    // The layer cannot send a stream again, but the server failed it with a code the
    // method's policy lists: as grpc-go, which would retry it, the failure costs a token.
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let throttle = RetryThrottle::new(10, 0.5);
    let retry = RetryLayer::new()
        .throttle(Some(throttle.clone()))
        .layer(failing(|| Status::unavailable("down"), &attempts));
    retry
        .oneshot(streamed_call(Idempotency::NoSideEffects))
        .await
        .expect_err("fails");
    assert_eq!(throttle.tokens(), 9.0, "retry layer");

    let throttle = RetryThrottle::new(10, 0.5);
    let hedge = HedgeLayer::new(HedgingPolicy::new(3, Duration::from_millis(50)))
        .throttle(Some(throttle.clone()))
        .layer(failing(|| Status::unavailable("down"), &attempts));
    hedge
        .oneshot(streamed_call(Idempotency::NoSideEffects))
        .await
        .expect_err("fails");
    assert_eq!(throttle.tokens(), 9.0, "hedging layer");
    assert_eq!(attempts.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_attempt_seen_by_both_layers_sharing_a_throttle_counts_once() {
    // Every attempt fails `UNAVAILABLE`, listed by both layers' policies: each one that reaches
    // the server costs one token, whichever layer is outside. The inner layer counts it and
    // marks the failure; the outer one, seeing it again as its own attempt's, leaves it.
    let hedging = || HedgingPolicy::new(2, Duration::from_millis(50));
    let unavailable = || Status::unavailable("down");
    for hedge_outside in [true, false] {
        let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let throttle = RetryThrottle::new(100, 0.5);
        let retry = RetryLayer::new().throttle(Some(throttle.clone()));
        let hedge = HedgeLayer::new(hedging()).throttle(Some(throttle.clone()));
        let server = failing(unavailable, &attempts);
        let result = if hedge_outside {
            let service = hedge.layer(retry.layer(server));
            service.oneshot(call(Idempotency::NoSideEffects)).await
        } else {
            let service = retry.layer(hedge.layer(server));
            service.oneshot(call(Idempotency::NoSideEffects)).await
        };
        assert_eq!(result.expect_err("fails").code(), Code::Unavailable);
        let sent = attempts.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(sent, 8, "4 retries of 2 copies, or 2 copies of 4 retries");
        assert_eq!(
            throttle.tokens(),
            100.0 - f64::from(sent),
            "hedge outside: {hedge_outside}"
        );
    }

    // With throttles of their own, each layer counts what it saw on its own.
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (outer, inner) = (RetryThrottle::new(100, 0.5), RetryThrottle::new(100, 0.5));
    let hedge = HedgeLayer::new(hedging()).throttle(Some(inner.clone()));
    let retry = RetryLayer::new()
        .throttle(Some(outer.clone()))
        .layer(hedge.layer(failing(unavailable, &attempts)));
    retry
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("fails");
    assert_eq!((outer.tokens(), inner.tokens()), (96.0, 92.0));
}
