//! Server limits against real clients: each refuses with the right code and recovers. And a
//! limit on a client: the wait for room counts against the call's deadline.

use super::*;
use held::sleep_holding;
use sockrpc::middleware::limit::{ConcurrencyLimitLayer, LoadShedLayer, RateLimitLayer, WaitQueue};
use sockrpc::ReadyQueue;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::echo_server::EchoServer;
use tower::Layer;

const SLEEP: &str = "/sockrpc.test.Echo/Sleep";

async fn echo_server<L: Finish + Send + 'static>(
    builder: ServerBuilder<L>,
) -> (Running, EchoClient) {
    let server = Running::start(builder.add_service(EchoServer::new(Plain))).await;
    let client = EchoClient::new(server.channel().await);
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_a_busy_method_and_recovers() {
    let limit = ConcurrencyLimitLayer::new()
        .method(SLEEP, 1)
        .queue(WaitQueue::none());
    let (server, client) = echo_server(sockrpc::Server::builder().layer(limit)).await;

    let mut hog = client.clone();
    // The hog holds the one slot for 2 s: a call refused "at once" is answered long before.
    const HOG: &str = "concurrency-limit-refuses-hog";
    let running = tokio::spawn(async move { hog.sleep(sleep_holding(2000, HOG)).await });
    held::wait_running(HOG).await;
    let err = bounded("Sleep", client.clone().sleep(sleep_request(0)))
        .await
        .expect_err("Sleep is at its limit");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(pushback(&err), Some(Duration::from_millis(100)));
    // Another method is not limited.
    bounded("Echo", client.clone().echo(whoami()))
        .await
        .expect("Echo is not limited");

    running.await.expect("join").expect("the first Sleep ran");
    bounded("Sleep", client.clone().sleep(sleep_request(0)))
        .await
        .expect("room again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_queues_a_call_until_room_frees() {
    let limit = ConcurrencyLimitLayer::new()
        .method(SLEEP, 1)
        .queue(WaitQueue::new(4, Duration::from_secs(2)));
    let (server, client) = echo_server(sockrpc::Server::builder().layer(limit)).await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.sleep(sleep_request(100)).await })
        })
        .collect();
    for call in calls {
        bounded("Sleep", call)
            .await
            .expect("join")
            .expect("each waits its turn");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "one at a time"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refuses_with_resource_exhausted_and_recovers() {
    let rate = RateLimitLayer::new(5, Duration::from_secs(1))
        .burst(1)
        .queue(WaitQueue::none());
    let (server, mut client) = echo_server(sockrpc::Server::builder().layer(rate)).await;
    bounded("first", client.echo(whoami()))
        .await
        .expect("first call");
    let err = bounded("second", client.echo(whoami()))
        .await
        .expect_err("no token yet");
    assert_eq!(err.code(), Code::ResourceExhausted);
    let wait = pushback(&err).expect("pushback");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_millis(200),
        "{wait:?}"
    );
    tokio::time::sleep(wait).await;
    bounded("third", client.echo(whoami()))
        .await
        .expect("a token came back");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_shed_refuses_at_once_over_its_cap_and_recovers() {
    let shed = LoadShedLayer::new(1).pushback(Duration::from_millis(250));
    let (server, client) = echo_server(sockrpc::Server::builder().layer(shed)).await;
    let mut hog = client.clone();
    // The hog holds the one slot for 2 s: a call refused "at once" is answered while the hog's
    // handler still runs. (Not a bound on the time taken: a call queued behind the hog would
    // be answered only after its handler ended, which a loaded machine cannot change.)
    const HOG: &str = "load-shed-hog";
    let running = tokio::spawn(async move { hog.sleep(sleep_holding(2000, HOG)).await });
    held::wait_running(HOG).await;
    let err = bounded("Echo", client.clone().echo(whoami()))
        .await
        .expect_err("shed");
    assert!(
        held::still_running(HOG),
        "at once, not queued behind the hog"
    );
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(pushback(&err), Some(Duration::from_millis(250)));
    running.await.expect("join").expect("the admitted call ran");
    bounded("Echo", client.clone().echo(whoami()))
        .await
        .expect("recovered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_from_tower_on_the_server_waits_in_the_ready_queue_then_sheds() {
    // tower's ConcurrencyLimitLayer says "not ready" when full. The server queues such calls
    // (here for up to 1 s) instead of failing them on the spot...
    let (server, client) = echo_server(
        sockrpc::Server::builder()
            .ready_queue(ReadyQueue::new(8, Duration::from_secs(1)))
            .layer(tower::limit::ConcurrencyLimitLayer::new(1)),
    )
    .await;
    let started = std::time::Instant::now();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move { client.sleep(sleep_request(200)).await })
        })
        .collect();
    for call in calls {
        bounded("Sleep", call)
            .await
            .expect("join")
            .expect("queued, then ran");
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.stop().await;

    // ...and sheds them, with a pushback, when the wait is over.
    let (server, client) = echo_server(
        sockrpc::Server::builder()
            .ready_queue(ReadyQueue::new(8, Duration::from_millis(50)))
            .layer(tower::limit::ConcurrencyLimitLayer::new(1)),
    )
    .await;
    let mut hog = client.clone();
    const HOG: &str = "ready-queue-sheds-hog";
    let running = tokio::spawn(async move { hog.sleep(sleep_holding(1000, HOG)).await });
    held::wait_running(HOG).await;
    let started = std::time::Instant::now();
    let err = bounded("Sleep", client.clone().sleep(sleep_request(0)))
        .await
        .expect_err("shed after its wait");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(pushback(&err).is_some());
    assert!(started.elapsed() >= Duration::from_millis(50));
    running.await.expect("join").expect("the first ran");
    bounded("Sleep", client.clone().sleep(sleep_request(0)))
        .await
        .expect("recovered");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_timeout_ends_calls_that_set_no_deadline() {
    let (server, mut client) =
        echo_server(sockrpc::Server::builder().timeout(Duration::from_millis(100))).await;
    // The handler would take 60 s: a timeout that waited for its answer fails `bounded` (20 s).
    let started = std::time::Instant::now();
    let err = bounded("Sleep", client.sleep(sleep_request(60_000)))
        .await
        .expect_err("the server's timeout ends it");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    // At the server's 100 ms, not the handler's 60 s; 10 s leaves room for a stall of a loaded
    // CI machine (`cargo test` runs this binary's tests at once on 2 cores).
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // A client deadline that is sooner still wins.
    let mut request = Request::new(sleep_request(5_000));
    request.set_timeout(Duration::from_millis(20));
    let err = bounded("Sleep", client.sleep(request))
        .await
        .expect_err("the client's own deadline");
    assert_eq!(err.code(), Code::DeadlineExceeded);
    bounded("short Sleep", client.sleep(sleep_request(10)))
        .await
        .expect("calls within the timeout are untouched");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_on_a_client_counts_the_wait_against_the_deadline() {
    let server =
        Running::start(sockrpc::Server::builder().add_service(EchoServer::new(Plain))).await;
    // A queue that keeps a caller longer than its deadline (the default keeps one 1 s).
    let channel = ConcurrencyLimitLayer::new()
        .others(1)
        .queue(WaitQueue::new(4, Duration::from_secs(10)))
        .layer(server.channel().await);

    // The first holds the one permit for 1.5 s of its 4 s.
    let mut first = EchoClient::new(channel.clone());
    const FIRST: &str = "client-limit-first";
    let mut first_sleep = Request::new(sleep_holding(1_500, FIRST));
    first_sleep.set_timeout(Duration::from_secs(4));
    let running = tokio::spawn(async move { first.sleep(first_sleep).await });
    held::wait_running(FIRST).await;
    // The second waits ~1.48 s for the permit, so its 5 s sleep is sent with the ~0.5 s left
    // of its 2 s: it ends at its deadline, not 2 s after it got the permit (~3.5 s). What it
    // was sent with is checked, not how long it took: on a loaded machine (`cargo test` runs
    // this binary's tests at once on CI's 2 cores) a call that ends right can end 1 s late.
    // It can only be sent once the first's handler has ended, so it had at most what remained
    // of its deadline then. The deadline is fixed here, as its method would fix it on entry,
    // so that the test knows it.
    const SECOND: &str = "client-limit-second";
    let mut second = Request::new(sleep_holding(5_000, SECOND));
    second.set_timeout(Duration::from_secs(2));
    let deadline = second.fix_deadline().expect("a timeout was set");
    let started = std::time::Instant::now();
    let err = bounded("Sleep", EchoClient::new(channel).sleep(second))
        .await
        .expect_err("it outlives its deadline");
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(elapsed >= Duration::from_millis(1_900), "took {elapsed:?}");
    let sent_with = held::sent_with(SECOND).expect("the second reached the server with a timeout");
    let first_ended = held::ended_at(FIRST).expect("the first's handler ended before");
    let left = deadline.into_std().saturating_duration_since(first_ended);
    assert!(
        sent_with <= left,
        "sent with {sent_with:?}, more than the {left:?} left when the permit came free"
    );
    bounded("the first Sleep", running)
        .await
        .expect("join")
        .expect("the first ran within its deadline");
    server.stop().await;
}
