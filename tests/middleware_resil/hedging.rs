//! Hedging against a real server: the faster copy answers, the slower one is cancelled there.

use super::*;
use sockrpc::middleware::hedge::{HedgeLayer, HedgingPolicy};
use sockrpc_tests::counter::counter_client::CounterClient;
use tower::Layer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_returns_the_faster_answer_and_cancels_the_other() {
    let (flaky, server) = flaky_server().await;
    flaky.0.stall_first.store(true, Ordering::SeqCst);
    let hedge = HedgeLayer::new(HedgingPolicy::new(2, Duration::from_millis(50)));
    let mut client = CounterClient::new(hedge.layer(server.channel().await));

    // The first copy stalls 5 s, then answers total 1: only the hedged copy answers 2, and a
    // call that waited for the first copy leaves it finished, not cancelled (checked below).
    // That proves which copy answered with no bound on the time, which a loaded CI machine
    // (`cargo test` runs this binary's tests at once on 2 cores) can stretch by seconds.
    let response = bounded("Get", client.get(GetRequest {}))
        .await
        .expect("the second copy answers");
    assert_eq!(
        response.into_inner().total,
        2,
        "answered by the second attempt"
    );
    let seen = flaky.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].previous.as_deref(), Some("1"));
    // The stalled first copy was cancelled on the server (CANCEL frame → handler dropped).
    bounded("cancellation", async {
        while flaky.0.cancelled.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Add is not NO_SIDE_EFFECTS: never hedged.
    bounded("Add", client.add(AddRequest { amount: 1 }))
        .await
        .expect("Add");
    assert_eq!(flaky.attempts(), 3);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_stays_within_a_grpc_timeout_entry() {
    // Copy 1 fails after 500 ms; copy 2, sent at 400 ms, stalls. The entry's 800 ms cover
    // both: copy 2 is sent with what remains (400 ms at most), so the call ends at its 800 ms,
    // not 800 ms after copy 2 began (1.2 s). What copy 2 was sent with is checked, not how
    // long the call took past 800 ms: on a loaded machine (`cargo test` runs this binary's
    // tests at once on CI's 2 cores) the end can be late by more than the 400 ms between the
    // right end and the wrong one, and the test failed for it; copy 2 sent late has less left.
    let (flaky, server) = flaky_server().await;
    flaky.0.slow_first_then_stall.store(500, Ordering::SeqCst);
    let hedge = HedgeLayer::new(HedgingPolicy::new(2, Duration::from_millis(400)));
    let mut client = CounterClient::new(hedge.layer(server.channel().await));
    ends_at_its_deadline(
        client.get(get_with_grpc_timeout("800m")),
        Duration::from_millis(800),
        Duration::from_secs(4),
    )
    .await;
    let seen = flaky.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let sent_with = seen[1].timeout.expect("copy 2 has a deadline");
    assert!(sent_with <= Duration::from_millis(400), "{seen:?}");
    server.stop().await;
}

/// A later copy that this side refuses (its `grpc-previous-rpc-attempts` entry pushes metadata
/// just under the limit over it) ends the hedging, not the call: the first copy, in flight,
/// still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_copy_refused_before_sending_leaves_the_first_to_answer() {
    use sockrpc_tests::echo::echo_client::EchoClient;
    use sockrpc_tests::echo::echo_server::EchoServer;

    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    let channel = server.channel().await;
    // 16 KiB of metadata, each entry counted with 32 bytes beyond its key and value: 10 to
    // spare, where the attempt count's entry needs 59.
    let full = || {
        let mut request = Request::new(sleep_request(300));
        let value = "v".repeat(16 * 1024 - 10 - "x-fill".len() - 32);
        request
            .metadata_mut()
            .insert_str("x-fill", &value)
            .expect("ascii");
        request
    };
    // Sent alone, it fits.
    bounded("Sleep", EchoClient::new(channel.clone()).sleep(full()))
        .await
        .expect("fits the limit");
    let hedge = HedgeLayer::methods_only().method(
        "/sockrpc.test.Echo/Sleep",
        HedgingPolicy::new(3, Duration::from_millis(50)),
    );
    let mut client = EchoClient::new(hedge.layer(channel));
    bounded("Sleep", client.sleep(full()))
        .await
        .expect("the first copy answers");
    server.stop().await;
}

/// gRFC A6: every call to the server earns `tokenRatio` back, whatever its method, so a
/// hedging layer alone counts the successes of the calls it does not hedge too. A drained
/// throttle that only hedged calls could refill stops hedging for as long as hedged reads
/// keep failing, however many other calls succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_a_hedging_layer_sends_once_earn_its_throttle_back() {
    use sockrpc::middleware::retry::RetryThrottle;

    let (flaky, server) = flaky_server().await;
    // 4 tokens, 1 back per success: hedges go while more than 2 are left. A copy goes only
    // when the one before fails (the delay is far beyond the test), so no step hangs on time.
    let throttle = RetryThrottle::new(4, 1.0);
    let hedge = HedgeLayer::new(HedgingPolicy::new(2, Duration::from_secs(60)))
        .throttle(Some(throttle.clone()));
    let mut client = CounterClient::new(hedge.layer(server.channel().await));

    // Both copies of a read fail: two failures, 2 tokens left, no more hedges.
    flaky.fail_next(2);
    let err = bounded("Get", client.get(GetRequest {}))
        .await
        .expect_err("both copies fail");
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(flaky.attempts(), 2);
    assert_eq!(throttle.tokens(), 2.0);

    // Two writes (IDEMPOTENT, not hedged) succeed: each earns a token back.
    for amount in 1..=2 {
        bounded("Set", client.set(AddRequest { amount }))
            .await
            .expect("Set");
    }
    assert_eq!(flaky.attempts(), 4);
    assert_eq!(throttle.tokens(), 4.0, "the unhedged successes count");

    // So the next read that fails once is hedged again, and its second copy answers.
    flaky.fail_next(1);
    bounded("Get", client.get(GetRequest {}))
        .await
        .expect("the second copy answers");
    let seen = flaky.seen();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[5].previous.as_deref(), Some("1"), "{seen:?}");
    server.stop().await;
}
