use super::*;
use crate::{hedge::HedgingPolicy, retry::RetryPolicy, retry::RetryThrottle};
use bytes::Bytes;
use sockrpc_protocol::{MethodPath, Request, Response, Status};
use sockrpc_service::{Body, Call, Idempotency, Pushback, PREVIOUS_ATTEMPTS_KEY};
use std::{sync::Arc, time::Duration};
use tokio::time::Instant;

fn call(path: &'static str) -> Call {
    Call::new(
        MethodPath::from_static(path),
        Request::new(Body::once(Bytes::from_static(b"req"))),
    )
    .with_idempotency(Idempotency::NoSideEffects)
}

fn attempts_of(policy: Option<Arc<RetryPolicy>>) -> Option<u32> {
    policy.map(|policy| policy.max_attempts())
}

#[test]
fn a_policy_by_method_wins_over_its_service_the_level_and_the_fallback() {
    let mut table = PolicyTable::new(Some(RetryPolicy::new(2)));
    table.set_service("shop.Orders".into(), RetryPolicy::new(3));
    table.set_method("/shop.Orders/Place".into(), RetryPolicy::new(4));
    let level = Arc::new(RetryPolicy::new(5));
    let place = call("/shop.Orders/Place");
    let cancel = call("/shop.Orders/Cancel");
    let other = call("/shop.Catalog/Get");
    assert_eq!(
        attempts_of(table.policy_for(&place, Some(Some(&level)))),
        Some(4)
    );
    assert_eq!(
        attempts_of(table.policy_for(&cancel, Some(Some(&level)))),
        Some(3)
    );
    assert_eq!(
        attempts_of(table.policy_for(&other, Some(Some(&level)))),
        Some(5)
    );
    assert_eq!(attempts_of(table.policy_for(&other, None)), Some(2));
}

#[test]
fn a_call_the_level_rule_covers_without_a_policy_is_sent_once_not_given_the_fallback() {
    // Retry's `idempotent_policy(None)`: covered, no policy, sent once.
    let table = PolicyTable::new(Some(RetryPolicy::new(3)));
    assert_eq!(
        attempts_of(table.policy_for(&call("/a.B/C"), Some(None))),
        None
    );
    // Hedging's `methods_only()`: no rule at all, so the fallback answers.
    assert_eq!(
        attempts_of(table.policy_for(&call("/a.B/C"), None)),
        Some(3)
    );
}

#[test]
fn the_cap_bounds_every_policy_and_a_single_attempt_is_no_policy() {
    let mut table = PolicyTable::new(Some(HedgingPolicy::new(4, Duration::ZERO)));
    assert!(table.policy_for(&call("/a.B/C"), None).is_some());
    table.set_cap(1);
    assert!(table.policy_for(&call("/a.B/C"), None).is_none());
    table.set_cap(0);
    assert_eq!(table.cap, 1, "a cap is at least one attempt");
}

#[tokio::test(start_paused = true)]
async fn attempts_count_what_was_sent_and_annotate_the_answer() {
    let mut table = PolicyTable::new(None);
    table.set_cap(3);
    let policy = RetryPolicy::new(4);
    let mut attempts = Attempts::new(call("/a.B/C"), &policy, &table);
    assert_eq!(attempts.sent(), 1);
    assert!(!attempts.past_deadline(Instant::now()), "no deadline");
    let status = attempts.annotated(Status::unavailable("once"));
    assert_eq!(status.metadata().get_str(PREVIOUS_ATTEMPTS_KEY), None);

    let second = attempts
        .next_call(Instant::now())
        .expect("a unary call copies");
    let sent_before = second.request().metadata().get_str(PREVIOUS_ATTEMPTS_KEY);
    assert_eq!(sent_before, Some("1"));
    let third = attempts
        .next_call(Instant::now())
        .expect("a unary call copies");
    assert_eq!(
        third.request().metadata().get_str(PREVIOUS_ATTEMPTS_KEY),
        Some("2")
    );
    assert!(attempts.exhausted(), "capped at 3");
    // The third was refused before it left: it does not count, so one went before the last.
    attempts.unsent();
    assert!(!attempts.exhausted());
    let status = attempts.annotated(Status::unavailable("twice"));
    assert_eq!(status.metadata().get_str(PREVIOUS_ATTEMPTS_KEY), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn only_failures_that_speak_of_the_servers_health_drain_the_throttle() {
    let mut table = PolicyTable::new(None);
    // Two tokens: one failure counted leaves one (no longer above half), so retries stop.
    table.throttle = Some(RetryThrottle::new(2, 1.0));
    let policy = RetryPolicy::new(4);
    let attempts = Attempts::new(call("/a.B/C"), &policy, &table);
    assert!(attempts.throttle_allows());

    let unlisted = attempts.failed(&mut Status::internal("bug"), false);
    assert!(!unlisted.unprocessed && unlisted.pushback.is_none());
    let unprocessed = attempts.failed(&mut Status::not_processed("refused"), true);
    assert!(unprocessed.unprocessed);
    assert!(
        attempts.throttle_allows(),
        "neither counts against the server"
    );

    let mut refused = Pushback::DontRetry.on(Status::internal("no more"));
    let pushback = attempts.failed(&mut refused, false);
    assert_eq!(pushback.pushback, Some(Pushback::DontRetry));
    assert!(
        !attempts.throttle_allows(),
        "a pushback refusing more counts"
    );

    attempts.succeeded(&mut Response::new(Body::once(Bytes::from_static(b"ok"))));
    assert!(attempts.throttle_allows(), "a success gives a token back");
}
