//! The client's retransmission timeouts: a first transmission's jitter is drawn once per client,
//! so consecutive calls' timeouts never fall sooner than the one before (`Shared::first_jitter`).

use super::*;
use crate::test_runtime::runtime;
use std::collections::HashSet;

/// A client on a loopback socket connected to a bound one that never answers.
async fn client() -> (UdpClient, std::net::UdpSocket) {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let to = silent.local_addr().expect("address");
    socket.connect(to).await.expect("connect");
    let client = UdpClient::from_socket(socket, UdpClientConfig::default()).expect("client");
    (client, silent)
}

#[tokio::test]
async fn a_first_timeout_is_the_same_for_every_call_of_a_client() {
    let (client, _silent) = client().await;
    let shared = &client.inner.shared;
    let first = shared.backoff(0);
    // No sample yet: the initial RTO (100 ms), plus at most a quarter.
    assert!(first >= Duration::from_millis(100), "{first:?}");
    assert!(first < Duration::from_millis(125), "{first:?}");
    for _ in 0..50 {
        assert_eq!(shared.backoff(0), first);
    }
}

#[tokio::test]
async fn clients_differ_and_retransmissions_draw_each_time() {
    let mut firsts = HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, silent) = client().await;
        firsts.insert(client.inner.shared.backoff(0));
        clients.push((client, silent));
    }
    assert!(firsts.len() > 1, "16 clients drew one first jitter");
    let shared = &clients[0].0.inner.shared;
    let seconds: HashSet<Duration> = (0..50).map(|_| shared.backoff(1)).collect();
    assert!(
        seconds.len() > 1,
        "a retransmission's jitter was drawn once"
    );
    for second in seconds {
        assert!(second >= Duration::from_millis(200), "{second:?}");
        assert!(second < Duration::from_millis(250), "{second:?}");
    }
}

/// A client of the silent server above with a cookie already, so its calls send REQUESTs.
fn with_cookie(client: &UdpClient) {
    client
        .inner
        .shared
        .cookie
        .send_replace(Some([7; COOKIE_LEN]));
}

fn ping() -> (MethodPath, Request<Bytes>) {
    (
        MethodPath::from_static("/t.T/M"),
        Request::new(Bytes::from_static(b"ping")),
    )
}

/// Datagrams waiting in `socket`, read without waiting.
fn received(socket: &std::net::UdpSocket) -> usize {
    socket.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 2048];
    (0..1000)
        .take_while(|_| socket.recv(&mut buf).is_ok())
        .count()
}

#[tokio::test(start_paused = true)]
async fn the_timer_task_retransmits_until_the_deadline() {
    let (client, silent) = client().await;
    with_cookie(&client);
    let (path, request) = ping();
    let deadline = Instant::now() + Duration::from_secs(1);
    match client.call(&path, &request, Some(deadline)).await {
        UdpOutcome::Reply(Err(status)) => {
            assert_eq!(status.code(), sockrpc_protocol::Code::DeadlineExceeded)
        }
        other => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
    }
    assert!(Instant::now() >= deadline, "ended before its deadline");
    // Timeouts of 100, 200 and 400 ms (plus jitter) fit in a second: three retransmissions.
    let stats = client.stats();
    assert!((2..=3).contains(&stats.retransmits), "{stats:?}");
    assert_eq!(received(&silent) as u64, stats.retransmits + 1);
}

#[tokio::test(start_paused = true)]
async fn the_timer_task_and_the_runtime_watcher_end_with_their_client() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (client, _silent) = client().await;
    with_cookie(&client);
    let (path, request) = ping();
    let deadline = Instant::now() + Duration::from_millis(50);
    let _ = client.call(&path, &request, Some(deadline)).await;
    // The timer task, and the watcher of the client's runtime (`runtime_gone.rs`).
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 2,
        "the client's tasks run"
    );
    drop(client);
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the client's tasks outlived it");
}

/// One call of `client` with `deadline_ms`, on `runtime`; fails the test unless it ends with
/// DEADLINE_EXCEEDED within 5 s.
fn deadline_exceeded_on(runtime: &tokio::runtime::Runtime, client: &UdpClient, deadline_ms: u64) {
    let (path, request) = ping();
    let outcome = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_millis(deadline_ms);
        tokio::time::timeout(
            Duration::from_secs(5),
            client.call(&path, &request, Some(deadline)),
        )
        .await
    });
    match outcome {
        Ok(UdpOutcome::Reply(Err(status))) => {
            assert_eq!(status.code(), sockrpc_protocol::Code::DeadlineExceeded)
        }
        Ok(other) => panic!("expected DEADLINE_EXCEEDED, got {other:?}"),
        Err(_) => panic!("the call never ended"),
    }
}

#[test]
fn a_call_on_another_runtime_than_the_timer_tasks_keeps_its_deadline() {
    // The client and its timer task on `home`, which nobody drives once its `block_on` returns.
    let home = runtime(0);
    let (client, _silent) = home.block_on(client());
    with_cookie(&client);
    deadline_exceeded_on(&home, &client, 20);
    let other = runtime(1);
    deadline_exceeded_on(&other, &client, 200);
}

#[test]
fn after_the_timer_tasks_runtime_shut_down_the_next_call_starts_another() {
    let home = runtime(1);
    let (client, _silent) = home.block_on(client());
    with_cookie(&client);
    let first = runtime(0);
    deadline_exceeded_on(&first, &client, 20);
    drop(first);
    let second = runtime(0);
    let before = second.metrics().num_alive_tasks();
    deadline_exceeded_on(&second, &client, 20);
    assert_eq!(
        second.metrics().num_alive_tasks(),
        before + 1,
        "the timer task runs on the second runtime"
    );
}
