use super::*;
use bytes::Bytes;
use sockrpc_protocol::{Code, MethodPath, Request};
use sockrpc_service::{Idempotency, Pushback};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_layer::Layer;

/// How the fake server answers copy `n` (1-based): after `delay`, with `outcome`.
type Plan = fn(u32) -> (u64, Result<(), Status>);

/// A copy's timeout and the `grpc-timeout` entry it still carried.
type Deadline = (Option<Duration>, Option<String>);

/// What the fake server saw: when each copy started, and which ones were dropped (cancelled)
/// before they answered.
#[derive(Clone, Default)]
struct Server {
    started: Arc<Mutex<Vec<(u32, Duration)>>>,
    deadlines: Arc<Mutex<Vec<Deadline>>>,
    cancelled: Arc<Mutex<Vec<u32>>>,
    clock: Arc<Mutex<Option<Instant>>>,
}

struct CancelGuard {
    copy: u32,
    done: bool,
    cancelled: Arc<Mutex<Vec<u32>>>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.lock().expect("lock").push(self.copy);
        }
    }
}

impl Server {
    fn service(
        &self,
        plan: Plan,
    ) -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
        let server = self.clone();
        *server.clock.lock().expect("lock") = Some(Instant::now());
        tower::service_fn(move |call: Call| {
            let copy = call
                .request()
                .metadata()
                .get_str(sockrpc_service::PREVIOUS_ATTEMPTS_KEY)
                .and_then(|n| n.parse::<u32>().ok())
                .map_or(1, |n| n + 1);
            let start = server
                .clock
                .lock()
                .expect("lock")
                .unwrap_or_else(Instant::now);
            server
                .started
                .lock()
                .expect("lock")
                .push((copy, start.elapsed()));
            let request = call.request();
            server.deadlines.lock().expect("lock").push((
                request.timeout(),
                request
                    .metadata()
                    .get_str(sockrpc_protocol::GRPC_TIMEOUT_KEY)
                    .map(str::to_owned),
            ));
            let (delay, outcome) = plan(copy);
            let guard = CancelGuard {
                copy,
                done: false,
                cancelled: Arc::clone(&server.cancelled),
            };
            async move {
                // Moved in whole, so it drops with the future (a cancelled copy).
                let mut guard = guard;
                tokio::time::sleep(Duration::from_millis(delay)).await;
                guard.done = true;
                outcome.map(|()| Response::new(Body::once(Bytes::from(copy.to_string()))))
            }
        })
    }

    fn started(&self) -> Vec<(u32, Duration)> {
        self.started.lock().expect("lock").clone()
    }

    fn deadlines(&self) -> Vec<Deadline> {
        self.deadlines.lock().expect("lock").clone()
    }

    fn cancelled(&self) -> Vec<u32> {
        self.cancelled.lock().expect("lock").clone()
    }
}

fn call(idempotency: Idempotency) -> Call {
    Call::new(
        MethodPath::from_static("/shop.Catalog/Get"),
        Request::new(Body::once(Bytes::from_static(b"req"))),
    )
    .with_idempotency(idempotency)
}

async fn copy_that_answered(response: Response<Body>) -> String {
    let body = response.into_inner().single().await.expect("one message");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

fn policy() -> HedgingPolicy {
    HedgingPolicy::new(3, Duration::from_millis(50))
}

#[tokio::test(start_paused = true)]
async fn hedging_returns_the_faster_answer_and_cancels_the_other() {
    let server = Server::default();
    // Copy 1 is stuck for a second; copy 2 answers in 10 ms.
    let hedge = HedgeLayer::new(policy()).layer(server.service(|copy| match copy {
        1 => (1000, Ok(())),
        _ => (10, Ok(())),
    }));
    let started = Instant::now();
    let response = hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("the hedge answers");
    assert_eq!(started.elapsed(), Duration::from_millis(60));
    assert_eq!(copy_that_answered(response).await, "2");
    assert_eq!(server.cancelled(), [1], "the slow copy was cancelled");
    let starts: Vec<u32> = server.started().iter().map(|(c, _)| *c).collect();
    assert_eq!(starts, [1, 2], "no third copy once one answered");
}

#[tokio::test(start_paused = true)]
async fn hedging_leaves_methods_that_are_not_pure_reads_alone() {
    let server = Server::default();
    let hedge = HedgeLayer::new(policy()).layer(server.service(|_| (200, Ok(()))));
    for level in [Idempotency::Idempotent, Idempotency::Unknown] {
        hedge
            .clone()
            .oneshot(call(level))
            .await
            .expect("answers, slowly");
    }
    assert_eq!(server.started().len(), 2, "one copy per call");
}

#[tokio::test(start_paused = true)]
async fn hedging_sends_the_next_copy_at_once_after_a_non_fatal_failure() {
    let server = Server::default();
    let hedge = HedgeLayer::new(policy()).layer(server.service(|copy| match copy {
        1 => (5, Err(Status::unavailable("restarting"))),
        _ => (5, Ok(())),
    }));
    let response = hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect("copy 2 answers");
    assert_eq!(copy_that_answered(response).await, "2");
    let started = server.started();
    assert_eq!(started[1].1, Duration::from_millis(5), "{started:?}");
}

#[tokio::test(start_paused = true)]
async fn hedging_ends_on_a_fatal_failure_and_cancels_the_rest() {
    let server = Server::default();
    let hedge = HedgeLayer::new(policy()).layer(server.service(|copy| match copy {
        1 => (1000, Ok(())),
        _ => (5, Err(Status::invalid_argument("bad"))),
    }));
    let err = hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("INVALID_ARGUMENT is fatal");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(server.cancelled(), [1]);
}

#[tokio::test(start_paused = true)]
async fn hedging_stops_on_pushback_and_returns_the_last_failure_when_all_fail() {
    let server = Server::default();
    let hedge = HedgeLayer::new(policy()).layer(server.service(|copy| match copy {
        1 => (
            5,
            Err(Pushback::DontRetry.on(Status::unavailable("go away"))),
        ),
        _ => (5, Ok(())),
    }));
    let err = hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("no further copies");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(server.started().len(), 1);

    let server = Server::default();
    let hedge = HedgeLayer::new(policy())
        .layer(server.service(|copy| (5, Err(Status::unavailable(format!("copy {copy} failed"))))));
    let err = hedge
        .oneshot(call(Idempotency::NoSideEffects))
        .await
        .expect_err("all three fail");
    assert_eq!(err.message(), "copy 3 failed");
    assert_eq!(server.started().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn hedging_is_throttled_when_the_server_keeps_failing() {
    let server = Server::default();
    let layer = HedgeLayer::new(policy());
    let hedge = layer.layer(server.service(|_| (5, Err(Status::unavailable("down")))));
    let calls = 50;
    for _ in 0..calls {
        let _ = hedge
            .clone()
            .oneshot(call(Idempotency::NoSideEffects))
            .await;
    }
    let copies = server.started().len();
    assert!(
        copies as f64 / calls as f64 <= 1.2,
        "{copies} copies for {calls} calls"
    );
}

#[tokio::test(start_paused = true)]
async fn hedging_sends_no_copy_after_a_grpc_timeout_entry_passes() {
    let server = Server::default();
    // Every copy is stuck for a second; copies are due at 0, 50 and 100 ms.
    let hedge = HedgeLayer::new(policy()).layer(server.service(|_| (1000, Ok(()))));
    let mut call = call(Idempotency::NoSideEffects);
    call.request_mut()
        .metadata_mut()
        .insert_str(sockrpc_protocol::GRPC_TIMEOUT_KEY, "80m")
        .expect("ascii");
    hedge.oneshot(call).await.expect("copy 1 answers, late");
    let starts: Vec<(u32, Duration)> = server.started();
    assert_eq!(
        starts,
        [(1, Duration::ZERO), (2, Duration::from_millis(50))],
        "no copy after the 80 ms deadline"
    );
    // The first copy goes as the caller made it (the channel reads the entry); the second
    // carries what remains as its timeout, and no entry.
    assert_eq!(
        server.deadlines(),
        [
            (None, Some("80m".to_owned())),
            (Some(Duration::from_millis(30)), None)
        ]
    );
}

#[test]
fn hedging_methods_only_gives_the_fallback_to_a_pure_read_it_does_not_name() {
    // Without the `NO_SIDE_EFFECTS` rule a pure read is like any other method: the fallback's.
    let hedge = HedgeLayer::methods_only()
        .fallback_policy(Some(policy()))
        .layer(tower::service_fn(|_: Call| async {
            Ok::<_, Status>(Response::new(Body::empty()))
        }));
    for idempotency in [Idempotency::NoSideEffects, Idempotency::Unknown] {
        let chosen = hedge.config.policy_for(&call(idempotency));
        assert_eq!(chosen.as_deref(), Some(&policy()), "{idempotency:?}");
    }
    let plain = HedgeLayer::methods_only().layer(tower::service_fn(|_: Call| async {
        Ok::<_, Status>(Response::new(Body::empty()))
    }));
    assert_eq!(
        plain.config.policy_for(&call(Idempotency::NoSideEffects)),
        None
    );
}

/// A hedged call with 300 ms whose copy 1 fails after 10 ms asking for `pushback_ms` before
/// the next (copy 2 answers in 5 ms): its result, when it ended, and the copies' starts.
async fn pushback_within_300_ms(pushback_ms: u64) -> (Result<String, Status>, Duration, usize) {
    let server = Server::default();
    let plan: Plan = match pushback_ms {
        5000 => |copy| match copy {
            1 => (
                10,
                Err(Pushback::RetryAfter(Duration::from_secs(5)).on(Status::unavailable("busy"))),
            ),
            _ => (5, Ok(())),
        },
        _ => |copy| match copy {
            1 => (
                10,
                Err(Pushback::RetryAfter(Duration::from_millis(200))
                    .on(Status::unavailable("busy"))),
            ),
            _ => (5, Ok(())),
        },
    };
    let hedge = HedgeLayer::new(policy()).layer(server.service(plan));
    let mut call = call(Idempotency::NoSideEffects);
    call.request_mut().set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let result = match hedge.oneshot(call).await {
        Ok(response) => Ok(copy_that_answered(response).await),
        Err(status) => Err(status),
    };
    (result, started.elapsed(), server.started().len())
}

#[tokio::test(start_paused = true)]
async fn hedging_ends_at_once_when_a_pushback_would_pass_the_deadline() {
    // A6: the deadline bounds every hedge, so the call ends now with that failure, as a retry
    // would.
    let (result, took, copies) = pushback_within_300_ms(5000).await;
    let err = result.expect_err("no copy fits");
    assert_eq!((err.code(), err.message()), (Code::Unavailable, "busy"));
    assert_eq!((took, copies), (Duration::from_millis(10), 1));

    // A pushback within the deadline is still waited for.
    let (result, took, copies) = pushback_within_300_ms(200).await;
    assert_eq!(result.expect("copy 2 answers"), "2");
    assert_eq!((took, copies), (Duration::from_millis(215), 2));
}
