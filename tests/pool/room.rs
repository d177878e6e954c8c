//! Unary calls past the server's limit of calls in flight per connection wait for room on the
//! client, unsent, as an HTTP/2 client holds streams back at the peer's stream limit: none is
//! refused with `RESOURCE_EXHAUSTED`, a waiting call gives up at its deadline, and one that is
//! dropped while waiting leaves its turn to the next.

use super::{loopback, wait_until, TestServer, BOUND};
use sockrpc::server::PingPolicy;
use sockrpc::{Code, Endpoint};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::SleepRequest;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinSet;

/// A channel of one connection to `server`, once that connection has the server's limit.
async fn channel(server: &TestServer, limit: usize) -> sockrpc::Channel {
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr)).expect("endpoint");
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    wait_until("the server's SETTINGS arrived", || {
        channel
            .connections()
            .iter()
            .all(|conn| conn.max_calls() == Some(limit))
    })
    .await;
    channel
}

fn sleep(millis: u64) -> SleepRequest {
    SleepRequest {
        millis,
        token: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_servers_limit_wait_for_room_instead_of_failing() {
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 2).expect("server");
    let channel = channel(&server, 2).await;
    let mut calls = JoinSet::new();
    for _ in 0..8 {
        let mut client = EchoClient::new(channel.clone());
        calls.spawn(async move { client.sleep(sleep(100)).await });
    }
    let mut ok = 0;
    while let Some(result) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("calls finish")
    {
        let result = result.expect("task");
        assert!(result.is_ok(), "a call past the limit failed: {result:?}");
        ok += 1;
    }
    assert_eq!(ok, 8);
    assert_eq!(server.service.served.load(Ordering::SeqCst), 8);
    assert_eq!(
        server.service.peak.load(Ordering::SeqCst),
        2,
        "the server ran at most its limit at once, and reached it"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_waiting_for_room_gives_up_at_its_deadline() {
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 1).expect("server");
    let channel = channel(&server, 1).await;
    let mut holder = EchoClient::new(channel.clone());
    let holding = tokio::spawn(async move { holder.sleep(sleep(2_000)).await });
    let running = &server.service.running;
    wait_until("the holder runs", || running.load(Ordering::SeqCst) == 1).await;

    let mut client = EchoClient::new(channel.clone());
    let mut request = sockrpc::Request::new(sleep(0));
    request.set_timeout(Duration::from_millis(200));
    let status = tokio::time::timeout(BOUND, client.sleep(request))
        .await
        .expect("the waiting call ends")
        .expect_err("no room came before its deadline");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("waiting for room"), "{status:?}");
    // The call was never sent: the server saw only the holder.
    assert_eq!(channel.connections()[0].calls_started(), 1);

    tokio::time::timeout(BOUND, holding)
        .await
        .expect("the holder ends")
        .expect("task")
        .expect("the holder's call");
    client.sleep(sleep(0)).await.expect("room again");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_call_that_is_dropped_leaves_its_turn_to_the_next() {
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 1).expect("server");
    let channel = channel(&server, 1).await;
    let mut holder = EchoClient::new(channel.clone());
    let holding = tokio::spawn(async move { holder.sleep(sleep(300)).await });
    let running = &server.service.running;
    wait_until("the holder runs", || running.load(Ordering::SeqCst) == 1).await;

    // Two calls wait; the first is dropped while it waits.
    let mut first = EchoClient::new(channel.clone());
    let dropped = tokio::spawn(async move { first.sleep(sleep(0)).await });
    let mut second = EchoClient::new(channel.clone());
    let waiting = tokio::spawn(async move { second.sleep(sleep(0)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !dropped.is_finished() && !waiting.is_finished(),
        "both wait"
    );
    dropped.abort();

    tokio::time::timeout(BOUND, holding)
        .await
        .expect("the holder ends")
        .expect("task")
        .expect("the holder's call");
    tokio::time::timeout(BOUND, waiting)
        .await
        .expect("the second call gets the room")
        .expect("task")
        .expect("the second call");
    assert_eq!(server.service.served.load(Ordering::SeqCst), 2);
    server.stop().await;
}

// One thread: a woken task runs only after the task that woke it yields, so the looping task
// always reaches the freed room first unless the room is kept for the call that waits.
#[tokio::test(flavor = "current_thread")]
async fn a_waiting_call_is_not_starved_by_a_caller_in_a_tight_loop() {
    // The server takes one call at a time. One task calls back to back; each time its call
    // ends it starts the next at once. The room its call frees is kept for the call already
    // waiting, so the waiting call gets its turn, well before its deadline.
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 1).expect("server");
    let channel = channel(&server, 1).await;
    let mut looping = EchoClient::new(channel.clone());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_loop = std::sync::Arc::clone(&stop);
    let looper = tokio::spawn(async move {
        let mut calls = 0;
        while !stop_loop.load(Ordering::SeqCst) && calls < 20_000 {
            looping.sleep(sleep(1)).await.expect("looping call");
            calls += 1;
        }
        calls
    });
    let running = &server.service.running;
    wait_until("the loop runs", || running.load(Ordering::SeqCst) == 1).await;

    let mut client = EchoClient::new(channel.clone());
    let mut request = sockrpc::Request::new(sleep(0));
    request.set_timeout(Duration::from_secs(5));
    let waited = tokio::time::timeout(BOUND, client.sleep(request))
        .await
        .expect("the waiting call ends");
    stop.store(true, Ordering::SeqCst);
    let looped = tokio::time::timeout(BOUND, looper)
        .await
        .expect("the loop ends")
        .expect("task");
    assert!(waited.is_ok(), "the waiting call was starved: {waited:?}");
    assert!(
        looped < 20_000,
        "the loop ran to its bound: the waiting call came last"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_with_and_without_deadlines_all_end_and_none_is_refused() {
    // 400 calls at once over a pool of two connections to a server that takes four per
    // connection: half give up after 50 ms, half wait as long as it takes. Every call ends, and
    // none is refused for the server's limit (that would fail it RESOURCE_EXHAUSTED).
    let server = TestServer::start_with(loopback(), PingPolicy::default(), 4).expect("server");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.addr))
        .expect("endpoint")
        .pool_size(2);
    let channel = sockrpc::Channel::connect(endpoint).await.expect("connect");
    wait_until("both connections have the server's limit", || {
        let conns = channel.connections();
        conns.len() == 2 && conns.iter().all(|conn| conn.max_calls() == Some(4))
    })
    .await;
    let mut calls = JoinSet::new();
    for i in 0..400 {
        let mut client = EchoClient::new(channel.clone());
        calls.spawn(async move {
            let mut request = sockrpc::Request::new(sleep(2));
            if i % 2 == 0 {
                request.set_timeout(Duration::from_millis(50));
            }
            client.sleep(request).await
        });
    }
    let (mut ok, mut expired) = (0, 0);
    while let Some(result) = tokio::time::timeout(BOUND, calls.join_next())
        .await
        .expect("every call ends")
    {
        match result.expect("task") {
            Ok(_) => ok += 1,
            Err(status) if status.code() == Code::DeadlineExceeded => expired += 1,
            Err(status) => panic!("a call failed otherwise: {status:?}"),
        }
    }
    assert_eq!(ok + expired, 400);
    assert!(ok >= 200, "every call without a deadline succeeds: {ok} ok");
    // (No check of the handlers' peak here: a call that expires is counted out on the server
    // when its CANCEL arrives, and its handler's task is dropped a moment later.)
    server.stop().await;
}
