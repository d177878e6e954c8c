//! Retries and throttling against a real server.

use super::*;
use sockrpc::middleware::limit::LoadShedLayer;
use sockrpc::middleware::retry::{RetryLayer, RetryPolicy};
use sockrpc_tests::counter::counter_client::CounterClient;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use tower::Layer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_a_no_side_effects_method_succeeds_after_the_server_fails_the_first_attempts() {
    let (flaky, server) = flaky_server().await;
    // No configuration: the generated client says Get is NO_SIDE_EFFECTS.
    let mut client = CounterClient::new(RetryLayer::new().layer(server.channel().await));
    flaky.fail_next(2);
    let response = bounded("Get", client.get(GetRequest {}))
        .await
        .expect("the third attempt succeeds");
    let seen = flaky.seen();
    let previous: Vec<Option<&str>> = seen.iter().map(|s| s.previous.as_deref()).collect();
    assert_eq!(previous, [None, Some("1"), Some("2")], "{seen:?}");
    assert_eq!(
        response
            .metadata()
            .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY),
        Some("2")
    );

    // IDEMPOTENT methods too; and the policy's 4 attempts are the most.
    flaky.fail_next(10);
    let err = bounded("Set", client.set(AddRequest { amount: 3 }))
        .await
        .expect_err("fails four times");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(flaky.attempts(), 3 + 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_never_resends_a_non_idempotent_call_the_server_started() {
    let (flaky, server) = flaky_server().await;
    let mut client = CounterClient::new(RetryLayer::new().layer(server.channel().await));
    flaky.fail_next(1);
    let err = bounded("Add", client.add(AddRequest { amount: 5 }))
        .await
        .expect_err("Add ran, failed, and is not sent again");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(flaky.attempts(), 1);
    // A method-specific policy is the owner's explicit word, and is followed.
    let mut client = CounterClient::new(
        RetryLayer::new()
            .method("/sockrpc.test.counter.Counter/Add", RetryPolicy::new(2))
            .layer(server.channel().await),
    );
    flaky.fail_next(1);
    bounded("Add", client.add(AddRequest { amount: 5 }))
        .await
        .expect("retried under its own policy");
    assert_eq!(flaky.attempts(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_caps_attempts_per_call_when_the_server_fails_every_call() {
    let (flaky, server) = flaky_server().await;
    flaky.0.fail_all.store(true, Ordering::SeqCst);
    let layer = RetryLayer::new();
    let client = CounterClient::new(layer.layer(server.channel().await));
    let calls = 100;
    for _ in 0..calls {
        let err = bounded("Get", client.clone().get(GetRequest {}))
            .await
            .expect_err("the server fails everything");
        assert_eq!(err.code(), Code::Unavailable);
    }
    let per_call = flaky.attempts() as f64 / calls as f64;
    assert!(per_call <= 1.1, "{per_call} attempts per call");
    let throttle = layer.get_throttle().expect("a throttle by default");
    assert!(!throttle.allows_retry(), "tokens {}", throttle.tokens());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_waits_for_the_pushback_of_a_shedding_server() {
    // The server sheds past one call in flight, asking for 150 ms; the client's policy for
    // Sleep retries RESOURCE_EXHAUSTED, and waits exactly as asked before each retry.
    //
    // The hog holds the one place for 400 ms from when its handler begins (waited for, not
    // guessed: a 20 ms guess was outlasted under load and the call was admitted at once).
    // The call, sent just after, is shed and retried every 150 ms until the hog is done: once,
    // twice or (the hog's 400 ms, all of them still ahead) three times, which the policy's
    // five attempts allow. Only a stall of 400 ms between the hog's start and the call's
    // first attempt would let it in at once.
    let server = Running::start(
        sockrpc::Server::builder()
            .layer(LoadShedLayer::new(1).pushback(Duration::from_millis(150)))
            .add_service(EchoServer::new(Plain)),
    )
    .await;
    let channel = RetryLayer::new()
        .method(
            "/sockrpc.test.Echo/Sleep",
            RetryPolicy::new(5).retryable([Code::ResourceExhausted]),
        )
        .layer(server.channel().await);
    let mut busy = EchoClient::new(channel.clone());
    const HOG: &str = "retry-pushback-hog";
    let hog = tokio::spawn(async move { busy.sleep(super::held::sleep_holding(400, HOG)).await });
    super::held::wait_running(HOG).await;
    let started = std::time::Instant::now();
    let response = bounded("Sleep", EchoClient::new(channel).sleep(sleep_request(0)))
        .await
        .expect("admitted on a retry");
    let took = started.elapsed();
    let retries: u32 = response
        .metadata()
        .get_str(sockrpc::service::PREVIOUS_ATTEMPTS_KEY)
        .expect("admitted on a retry, not the first attempt")
        .parse()
        .expect("a count");
    assert!((1..=3).contains(&retries), "{retries} retries");
    assert!(
        took >= Duration::from_millis(150) * retries,
        "{retries} retries after {took:?}: each waits the pushback"
    );
    hog.await.expect("join").expect("the first call ran");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_stays_within_a_grpc_timeout_entry() {
    // The first attempt fails after 500 ms; the retry stalls. The entry's 800 ms cover both:
    // the retry is sent with what remains (300 ms at most), so the call ends at its 800 ms,
    // not 800 ms after the retry began (1.3 s or more). What the retry was sent with is
    // checked, not how long the call took past 800 ms: on a loaded machine (`cargo test` runs
    // this binary's tests at once on CI's 2 cores) the end can be late by more than the 350 ms
    // the bound allowed; a retry sent late has less left.
    let (flaky, server) = flaky_server().await;
    flaky.0.slow_first_then_stall.store(500, Ordering::SeqCst);
    let mut client = CounterClient::new(RetryLayer::new().layer(server.channel().await));
    ends_at_its_deadline(
        client.get(get_with_grpc_timeout("800m")),
        Duration::from_millis(800),
        Duration::from_secs(4),
    )
    .await;
    let seen = flaky.seen();
    let previous: Vec<Option<&str>> = seen.iter().map(|s| s.previous.as_deref()).collect();
    assert_eq!(previous, [None, Some("1")], "{seen:?}");
    let sent_with = seen[1].timeout.expect("the retry has a deadline");
    assert!(sent_with <= Duration::from_millis(300), "{seen:?}");
    server.stop().await;
}

/// The connection's own limits (a request message past `max_encoding_message_size`, metadata
/// past 16 KiB) refuse a call before anything is sent: a policy that retries or hedges on
/// `RESOURCE_EXHAUSTED` makes no second attempt, which would be refused the same way. The
/// same code from the server is retried and hedged (the policies are in force).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_sending_are_neither_retried_nor_hedged() {
    use sockrpc::middleware::hedge::{HedgeLayer, HedgingPolicy};
    use sockrpc::service::PREVIOUS_ATTEMPTS_KEY;

    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let endpoint =
        sockrpc::Endpoint::new("127.0.0.1", server.addr.port()).max_encoding_message_size(1000);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    let quick = Duration::from_millis(5);
    let retry = RetryPolicy::new(3)
        .retryable([Code::ResourceExhausted])
        .backoff(quick, quick, 1.0);
    let retrying = EchoClient::new(
        RetryLayer::new()
            .service("sockrpc.test.Echo", retry)
            .layer(channel.clone()),
    );
    let hedging = EchoClient::new(
        HedgeLayer::methods_only()
            .service(
                "sockrpc.test.Echo",
                HedgingPolicy::new(3, quick).non_fatal([Code::ResourceExhausted]),
            )
            .layer(channel),
    );
    let big = || EchoRequest {
        payload: Bytes::from(vec![1u8; 2000]),
        id: 1,
    };
    let loud = || {
        let mut request = Request::new(EchoRequest {
            payload: Bytes::from_static(b"small"),
            id: 2,
        });
        let value = "v".repeat(20 * 1024);
        request
            .metadata_mut()
            .insert_str("x-loud", &value)
            .expect("ascii");
        request
    };
    // The two clients differ in type: one body for both.
    macro_rules! one_attempt_each {
        ($name:expr, $client:expr) => {{
            let (name, client) = ($name, $client);
            for (what, request) in [("message", Request::new(big())), ("metadata", loud())] {
                let status = bounded("refused", client.clone().echo(request))
                    .await
                    .expect_err("over a limit");
                assert_eq!(
                    status.code(),
                    Code::ResourceExhausted,
                    "{name}, {what}: {status:?}"
                );
                assert!(
                    status.is_refused_before_sending(),
                    "{name}, {what}: {status:?}"
                );
                assert_eq!(
                    status.metadata().get_str(PREVIOUS_ATTEMPTS_KEY),
                    None,
                    "{name}, {what}: one attempt"
                );
            }
            let from_server = FailRequest {
                code: Code::ResourceExhausted as i32,
                message: "busy".into(),
                ..Default::default()
            };
            let status = bounded("failed", client.clone().fail(from_server))
                .await
                .expect_err("the server fails it");
            assert!(!status.is_refused_before_sending(), "{name}: {status:?}");
            assert_eq!(
                status.metadata().get_str(PREVIOUS_ATTEMPTS_KEY),
                Some("2"),
                "{name}: three attempts"
            );
        }};
    }
    one_attempt_each!("retry", retrying);
    one_attempt_each!("hedge", hedging);
    server.stop().await;
}

/// A retry this side refuses before sending (its `grpc-previous-rpc-attempts` entry pushes
/// metadata just under the limit over it) ends the call with the server's failure that asked
/// for it, not with the local refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_refused_before_sending_leaves_the_servers_failure() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let quick = Duration::from_millis(5);
    let mut client = EchoClient::new(
        RetryLayer::new()
            .method(
                "/sockrpc.test.Echo/Fail",
                RetryPolicy::new(3).backoff(quick, quick, 1.0),
            )
            .layer(server.channel().await),
    );
    // 16 KiB of metadata, each entry counted with 32 bytes beyond its key and value: 10 to
    // spare, where the attempt count's entry needs 59.
    let mut request = Request::new(FailRequest {
        code: Code::Unavailable as i32,
        message: "the server is down".into(),
        ..Default::default()
    });
    let value = "v".repeat(16 * 1024 - 10 - "x-fill".len() - 32);
    request
        .metadata_mut()
        .insert_str("x-fill", &value)
        .expect("ascii");
    let status = bounded("Fail", client.fail(request))
        .await
        .expect_err("the server fails it");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "the server is down");
    assert!(!status.is_refused_before_sending());
    server.stop().await;
}
