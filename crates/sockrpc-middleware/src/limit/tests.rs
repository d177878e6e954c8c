use super::*;
use futures_core::Stream;
use sockrpc_protocol::{Code, MetadataMap, MethodPath, Request};
use sockrpc_service::{Call, Incoming};
use std::future::Future;
use std::pin::Pin;
use tokio::time::Instant;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

/// A handler that takes `sleep-ms` (metadata) to answer; with `stream` set it answers with a
/// stream of two messages.
fn slow() -> impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone {
    tower::service_fn(|call: Call| {
        let millis: u64 = call
            .request()
            .metadata()
            .get_str("sleep-ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let stream = call.request().metadata().contains_key("stream");
        async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            let body = if stream {
                Body::from_stream(Two(2))
            } else {
                Body::once(Bytes::from_static(b"done"))
            };
            Ok(Response::new(body))
        }
    })
}

struct Two(u8);

impl Stream for Two {
    type Item = Result<Bytes, Status>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        self.0 -= 1;
        Poll::Ready(Some(Ok(Bytes::from_static(b"m"))))
    }
}

fn call(path: &'static str, sleep_ms: u64) -> Call {
    let mut request = Request::new(Body::once(Bytes::from_static(b"req")));
    request
        .metadata_mut()
        .insert_str("sleep-ms", &sleep_ms.to_string())
        .expect("valid");
    Call::new(MethodPath::from_static(path), request)
}

fn pushback_of(status: &Status) -> Option<Duration> {
    match Pushback::of(status) {
        Some(Pushback::RetryAfter(delay)) => Some(delay),
        _ => None,
    }
}

fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_queues_then_refuses_and_recovers() {
    let layer = ConcurrencyLimitLayer::new()
        .method("/s.Svc/Slow", 1)
        .queue(WaitQueue::new(1, Duration::from_millis(100)));
    let service = layer.layer(slow());

    // One runs for 500 ms; the next waits; a third finds the queue full.
    let first = spawn(service.clone().oneshot(call("/s.Svc/Slow", 500)));
    tokio::task::yield_now().await;
    let second = spawn(service.clone().oneshot(call("/s.Svc/Slow", 0)));
    tokio::task::yield_now().await;
    let third = service
        .clone()
        .oneshot(call("/s.Svc/Slow", 0))
        .await
        .expect_err("queue full");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert_eq!(pushback_of(&third), Some(Duration::from_millis(100)));

    // Other methods are not limited.
    service
        .clone()
        .oneshot(call("/s.Svc/Other", 0))
        .await
        .expect("unlimited method");

    let started = Instant::now();
    let second = second.await.expect("join").expect_err("waited too long");
    assert_eq!(second.code(), Code::ResourceExhausted);
    assert!(started.elapsed() <= Duration::from_millis(100));
    first.await.expect("join").expect("the first one ran");

    // Room again: runs at once.
    service
        .oneshot(call("/s.Svc/Slow", 0))
        .await
        .expect("recovered");
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_lets_a_waiting_call_run_when_room_frees_and_holds_through_a_stream() {
    let layer = ConcurrencyLimitLayer::new()
        .others(1)
        .queue(WaitQueue::new(4, Duration::from_secs(1)));
    let service = layer.layer(slow());

    let mut streamed = call("/s.Svc/List", 0);
    streamed
        .request_mut()
        .metadata_mut()
        .insert_str("stream", "1")
        .expect("valid");
    let response = service
        .clone()
        .oneshot(streamed)
        .await
        .expect("stream starts");
    // The stream's body still holds the permit: the next call waits for it.
    let next = spawn(service.clone().oneshot(call("/s.Svc/Get", 0)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!next.is_finished(), "waits while the stream is open");
    drop(response);
    next.await
        .expect("join")
        .expect("runs once the stream ended");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_refuses_with_the_time_to_the_next_token_and_recovers() {
    // 10 per second, bursts of 2, no waiting.
    let layer = RateLimitLayer::new(10, Duration::from_secs(1))
        .burst(2)
        .queue(WaitQueue::none());
    let service = layer.layer(slow());
    for _ in 0..2 {
        service
            .clone()
            .oneshot(call("/s.Svc/Get", 0))
            .await
            .expect("within the burst");
    }
    let err = service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect_err("bucket empty");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(pushback_of(&err), Some(Duration::from_millis(100)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    service
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("a token came back");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_queues_calls_for_their_token() {
    let layer = RateLimitLayer::new(10, Duration::from_secs(1))
        .burst(1)
        .queue(WaitQueue::new(8, Duration::from_millis(250)));
    let service = layer.layer(slow());
    let started = Instant::now();
    let mut done = Vec::new();
    for _ in 0..3 {
        done.push(spawn(service.clone().oneshot(call("/s.Svc/Get", 0))));
    }
    for handle in done {
        handle.await.expect("join").expect("each gets its token");
    }
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    // A fourth waits 100 ms for its token; a fifth's is 200 ms away, past the 50 ms its
    // deadline lets it wait.
    let fourth = spawn(service.clone().oneshot(call("/s.Svc/Get", 0)));
    let mut fifth = call("/s.Svc/Get", 0);
    fifth.request_mut().set_timeout(Duration::from_millis(50));
    let err = service.clone().oneshot(fifth).await.expect_err("deadline");
    assert_eq!(err.code(), Code::ResourceExhausted);
    fourth.await.expect("join").expect("queued");
}

#[tokio::test(start_paused = true)]
async fn load_shed_refuses_at_once_over_its_cap_and_recovers() {
    let layer = LoadShedLayer::new(2).pushback(Duration::from_millis(250));
    let service = layer.layer(slow());
    let running: Vec<_> = (0..2)
        .map(|_| spawn(service.clone().oneshot(call("/s.Svc/Get", 100))))
        .collect();
    tokio::task::yield_now().await;
    assert_eq!(layer.in_flight(), 2);
    let err = service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect_err("shed");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(pushback_of(&err), Some(Duration::from_millis(250)));
    for handle in running {
        handle.await.expect("join").expect("admitted calls finish");
    }
    assert_eq!(layer.in_flight(), 0);
    service
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("recovered");
}

#[tokio::test(start_paused = true)]
async fn load_shed_refuses_when_the_service_behind_is_not_ready() {
    // tower's own concurrency limit, full: not ready, so the shed layer refuses at once.
    let service = tower::ServiceBuilder::new()
        .layer(LoadShedLayer::new(100))
        .concurrency_limit(1)
        .service(slow());
    let busy = spawn(service.clone().oneshot(call("/s.Svc/Get", 1000)));
    tokio::task::yield_now().await;
    let started = Instant::now();
    let err = service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect_err("shed, not queued");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(started.elapsed(), Duration::ZERO);
    busy.await.expect("join").expect("the busy call finishes");
}

/// What the service behind a limit saw of each call it was sent: its timeout and its
/// `grpc-timeout` entry.
type Seen = Arc<std::sync::Mutex<Vec<(Option<Duration>, Option<String>)>>>;

/// [`slow`], recording what each call it is sent carries as its deadline.
fn recording() -> (
    impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone,
    Seen,
) {
    let seen = Seen::default();
    let record = Arc::clone(&seen);
    let inner = slow();
    let service = tower::service_fn(move |call: Call| {
        let request = call.request();
        let entry = request
            .metadata()
            .get_str(sockrpc_protocol::GRPC_TIMEOUT_KEY);
        record
            .lock()
            .expect("lock")
            .push((request.timeout(), entry.map(str::to_owned)));
        inner.clone().oneshot(call)
    });
    (service, seen)
}

fn seen(seen: &Seen) -> Vec<(Option<Duration>, Option<String>)> {
    seen.lock().expect("lock").clone()
}

fn with_timeout(path: &'static str, sleep_ms: u64, timeout: Duration) -> Call {
    let mut call = call(path, sleep_ms);
    call.request_mut().set_timeout(timeout);
    call
}

fn with_grpc_timeout(path: &'static str, sleep_ms: u64, entry: &str) -> Call {
    let mut call = call(path, sleep_ms);
    call.request_mut()
        .metadata_mut()
        .insert_str(sockrpc_protocol::GRPC_TIMEOUT_KEY, entry)
        .expect("valid");
    call
}

const SECOND: Duration = Duration::from_secs(1);

/// Asserts each call was sent with the at most 100 ms left of a 1 s deadline, as its timeout
/// (a `grpc-timeout` entry moved into it).
fn sent_with_what_remained(sent: &[(Option<Duration>, Option<String>)]) {
    for (timeout, entry) in sent {
        let timeout = timeout.expect("sent with a timeout");
        assert!(
            !timeout.is_zero() && timeout <= Duration::from_millis(100),
            "{timeout:?}"
        );
        assert_eq!(entry, &None, "the entry became the timeout");
    }
}

/// Sends a call with a timeout of `deadline`, then one with the `grpc-timeout` entry `entry`
/// naming the same: each must wait for room until its deadline, then fail `DEADLINE_EXCEEDED`
/// with no pushback.
async fn each_fails_at_its_deadline<S>(service: &S, deadline: Duration, entry: &str)
where
    S: Service<Call, Response = Response<Body>, Error = Status> + Clone,
{
    for waiting in [
        with_timeout("/s.Svc/Get", 0, deadline),
        with_grpc_timeout("/s.Svc/Get", 0, entry),
    ] {
        let started = Instant::now();
        let err = service
            .clone()
            .oneshot(waiting)
            .await
            .expect_err("deadline");
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
        assert_eq!(pushback_of(&err), None);
        assert_eq!(started.elapsed(), deadline);
    }
}

/// A rate limit of one token every 900 ms, no burst, waits up to 5 s; over [`recording`].
fn token_every_900ms() -> (
    impl Service<Call, Response = Response<Body>, Error = Status, Future: Send> + Clone,
    Seen,
) {
    let layer = RateLimitLayer::new(1, Duration::from_millis(900))
        .burst(1)
        .queue(WaitQueue::new(4, Duration::from_secs(5)));
    let (inner, sent) = recording();
    (layer.layer(inner), sent)
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_sends_a_call_that_waited_with_what_remains_of_its_deadline() {
    let layer = ConcurrencyLimitLayer::new()
        .others(1)
        .queue(WaitQueue::new(4, Duration::from_secs(5)));
    let (inner, sent) = recording();
    let service = layer.layer(inner);

    // The first finds room: sent at once, its timeout (and a grpc-timeout entry) untouched.
    let mut first = with_timeout("/s.Svc/Get", 900, SECOND);
    first
        .request_mut()
        .metadata_mut()
        .insert_str(sockrpc_protocol::GRPC_TIMEOUT_KEY, "5S")
        .expect("valid");
    let first = spawn(service.clone().oneshot(first));
    tokio::task::yield_now().await;
    assert_eq!(seen(&sent), [(Some(SECOND), Some("5S".to_owned()))]);

    // The next two wait 900 ms of their 1 s: each is sent with 100 ms left, the entry's too.
    let second = spawn(
        service
            .clone()
            .oneshot(with_timeout("/s.Svc/Get", 0, SECOND)),
    );
    let third = spawn(
        service
            .clone()
            .oneshot(with_grpc_timeout("/s.Svc/Get", 0, "1S")),
    );
    first.await.expect("join").expect("the first ran");
    second.await.expect("join").expect("the second ran");
    third.await.expect("join").expect("the third ran");
    let sent = seen(&sent);
    assert_eq!(sent.len(), 3, "{sent:?}");
    sent_with_what_remained(&sent[1..]);
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_fails_a_call_whose_deadline_passes_in_the_queue_unsent() {
    // max_wait (1 s) is longer than the deadlines (300 ms): the deadline ends the wait.
    let layer = ConcurrencyLimitLayer::new()
        .others(1)
        .queue(WaitQueue::new(4, SECOND));
    let (inner, sent) = recording();
    let service = layer.layer(inner);
    let hog = spawn(service.clone().oneshot(call("/s.Svc/Get", 2000)));
    tokio::task::yield_now().await;

    each_fails_at_its_deadline(&service, Duration::from_millis(300), "300m").await;
    // Past max_wait without a deadline: still refused as over the limit.
    let err = service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect_err("waited too long");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(seen(&sent).len(), 1, "only the hog was sent");
    hog.await.expect("join").expect("the hog ran");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_sends_a_call_that_waited_with_what_remains_of_its_deadline() {
    let (service, sent) = token_every_900ms();

    // A token now: sent at once, with its timeout as it was.
    service
        .clone()
        .oneshot(with_timeout("/s.Svc/Get", 0, SECOND))
        .await
        .expect("first token");
    assert_eq!(seen(&sent), [(Some(SECOND), None)]);

    // The next token is 900 ms away: sent with the 100 ms left of 1 s.
    let started = Instant::now();
    service
        .clone()
        .oneshot(with_timeout("/s.Svc/Get", 0, SECOND))
        .await
        .expect("second token");
    service
        .clone()
        .oneshot(with_grpc_timeout("/s.Svc/Get", 0, "1S"))
        .await
        .expect("third token");
    assert_eq!(started.elapsed(), Duration::from_millis(1800));
    let sent = seen(&sent);
    sent_with_what_remained(&sent[1..]);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_fails_a_call_whose_deadline_passes_in_the_queue_unsent() {
    let (service, sent) = token_every_900ms();
    service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("first token");

    // Each next token is exactly at the call's deadline: nothing is left to send it with.
    each_fails_at_its_deadline(&service, Duration::from_millis(900), "900m").await;
    assert_eq!(seen(&sent).len(), 1, "only the first was sent");
}

/// A streamed answer as a connection delivers it: one message that arrived compressed, then
/// trailers.
struct Arrived {
    message: Option<Bytes>,
    trailers: MetadataMap,
}

impl Incoming for Arrived {
    fn poll_message(&mut self, _cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Status>>> {
        Poll::Ready(self.message.take().map(Ok))
    }

    fn poll_message_flagged(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Bytes, bool), Status>>> {
        Poll::Ready(self.message.take().map(|message| Ok((message, true))))
    }

    fn trailers(&self) -> Option<&MetadataMap> {
        self.message.is_none().then_some(&self.trailers)
    }
}

#[tokio::test(start_paused = true)]
async fn a_held_stream_keeps_its_compression_flags_and_its_trailers() {
    let inner = tower::service_fn(|_call: Call| async {
        let mut trailers = MetadataMap::new();
        trailers.insert_str("x-count", "1").expect("valid");
        let arrived = Arrived {
            message: Some(Bytes::from_static(b"gzipped")),
            trailers,
        };
        Ok::<_, Status>(Response::new(Body::incoming(arrived)))
    });
    let limited = ConcurrencyLimitLayer::new().others(1).layer(inner);
    let shed = LoadShedLayer::new(1).layer(limited);
    let mut body = shed
        .oneshot(call("/pkg.Svc/Watch", 0))
        .await
        .expect("answer")
        .into_inner();
    // The client decodes it: the limits must hand it over as it arrived.
    let first = std::future::poll_fn(|cx| body.poll_message_flagged(cx)).await;
    assert_eq!(
        first.map(|m| m.ok()),
        Some(Some((Bytes::from_static(b"gzipped"), true)))
    );
    let end = std::future::poll_fn(|cx| body.poll_message_flagged(cx)).await;
    assert!(end.is_none());
    assert_eq!(
        body.trailers().and_then(|t| t.get_str("x-count")),
        Some("1"),
        "the trailers of a held stream"
    );
}

/// Sends `waiting` (it must wait for room in a queue of one place), drops it while it waits,
/// and hands back when that is done: the place it held must be free again.
async fn drop_while_waiting<S>(service: &S, waiting: Call)
where
    S: Service<Call, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    let dropped = spawn(service.clone().oneshot(waiting));
    tokio::task::yield_now().await;
    assert!(!dropped.is_finished(), "it waits for room");
    dropped.abort();
    let err = dropped.await.expect_err("dropped while it waited");
    assert!(err.is_cancelled(), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_gives_back_the_queue_place_of_a_call_dropped_or_past_its_deadline() {
    // One place in the queue: a place kept by a call that left would refuse every later one.
    let layer = ConcurrencyLimitLayer::new()
        .others(1)
        .queue(WaitQueue::new(1, Duration::from_secs(5)));
    let service = layer.layer(slow());
    let hog = spawn(service.clone().oneshot(call("/s.Svc/Get", 1000)));
    tokio::task::yield_now().await;

    drop_while_waiting(&service, call("/s.Svc/Get", 0)).await;
    let err = service
        .clone()
        .oneshot(with_timeout("/s.Svc/Get", 0, Duration::from_millis(300)))
        .await
        .expect_err("its deadline passes in the queue");
    assert_eq!(
        err.code(),
        Code::DeadlineExceeded,
        "queued, not refused: {err:?}"
    );
    service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("queued, then run after the hog");
    hog.await.expect("join").expect("the hog ran");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_gives_back_the_queue_place_of_a_call_dropped_or_past_its_deadline() {
    // One token every 900 ms and one place in the queue (tokens reserved are not given back).
    let layer = RateLimitLayer::new(1, Duration::from_millis(900))
        .burst(1)
        .queue(WaitQueue::new(1, Duration::from_secs(5)));
    let service = layer.layer(slow());
    service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("first token");

    // The next token (900 ms) is the dropped call's; the one after (1.8 s) is at the deadline.
    drop_while_waiting(&service, call("/s.Svc/Get", 0)).await;
    let err = service
        .clone()
        .oneshot(with_timeout("/s.Svc/Get", 0, Duration::from_millis(1800)))
        .await
        .expect_err("its deadline passes in the queue");
    assert_eq!(
        err.code(),
        Code::DeadlineExceeded,
        "queued, not refused: {err:?}"
    );
    service
        .clone()
        .oneshot(call("/s.Svc/Get", 0))
        .await
        .expect("queued for the next token");
}
