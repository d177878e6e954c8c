//! Edges of a channel's close: a server that is down, several tasks waiting on `closed()`,
//! and many channels closed in a row (nothing left behind).

use super::*;

/// A lazy channel to a port nobody listens on, with a wait-for-ready call retrying across
/// failed attempts: `close` fails the call at once, stops the reconnect backoff and lets
/// `closed()` resolve, for every task waiting on it, under tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn close_stops_a_channel_whose_server_is_down() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let mut backoff = sockrpc::client::Backoff::default();
    backoff.initial = Duration::from_secs(60);
    backoff.max = Duration::from_secs(60);
    let endpoint = Endpoint::new("127.0.0.1", port).backoff(backoff);
    let channel = Channel::lazy(endpoint).expect("endpoint");
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.closed().await })
        })
        .collect();
    let mut client = Client::new(channel.clone());
    let pending = tokio::spawn(async move {
        let mut request = Request::new(unary(1));
        request.set_wait_for_ready(true);
        client.unary(request).await
    });
    // Long enough for the first attempt to fail and the backoff to start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!pending.is_finished(), "a wait-for-ready call waits");
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "closed() waits for a close"
    );
    let started = Instant::now();
    channel.close();
    assert_closed_status(bounded("the waiting call", pending).await.expect("task"));
    for waiter in waiters {
        bounded("closed() in each task", waiter)
            .await
            .expect("task");
    }
    bounded("closed() once more", channel.closed()).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "closing waited out the backoff"
    );
}

/// Open file descriptors of this process (Linux).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// What a test that counts descriptors prints once it counted (the proof that it ran).
const COUNTED: &str = "descriptors open: ";

/// Whether to run `test`, which counts this process's descriptors, here: the other tests of
/// the binary run meanwhile under `cargo test`, and a test that opened sockets after the count
/// before and holds them past the wait failed this one (or one that closed its own made a leak
/// pass). So it runs in a process of its own (`sockrpc_tests::child::alone`), and here only
/// checks that it passed there.
fn counted_alone(test: &str) -> bool {
    let name = sockrpc_tests::child::test_name(module_path!(), test);
    sockrpc_tests::child::alone(&name, COUNTED)
}

/// Fifty channels, each used then closed and waited for: none leaves a socket or a task.
#[tokio::test]
async fn fifty_closed_channels_leave_no_socket_behind() {
    if !counted_alone("fifty_closed_channels_leave_no_socket_behind") {
        return;
    }
    let server = Running::start().await;
    server.gate.release.send_replace(true);
    let before = open_fds();
    for seq in 0..50 {
        let channel = bounded("connect", Channel::connect(server.endpoint(2)))
            .await
            .expect("connect");
        let mut client = Client::new(channel.clone());
        bounded("a call", client.unary(unary(seq)))
            .await
            .expect("answered");
        if seq % 2 == 0 {
            channel.close();
        } else {
            channel.close_now();
        }
        bounded("closed()", channel.closed()).await;
    }
    eventually("the server sees every connection end", || {
        server.proxy.open() == 0
    })
    .await;
    // The proxy's and the server's ends close as they see ours close: give them a moment.
    eventually("as many descriptors as before", || open_fds() <= before).await;
    eprintln!("{COUNTED}{} after, {before} before", open_fds());
}

/// A channel used and closed (gracefully, a call still in flight) on a runtime that then
/// shuts down: `closed()` awaited on another runtime resolves, and nothing reconnects there.
#[test]
fn closed_resolves_after_the_runtime_that_closed_the_channel_ended() {
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("server runtime");
    let server = servers.block_on(Running::start());
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("first runtime");
    let channel = first.block_on(async {
        let channel = bounded("connect", Channel::connect(server.endpoint(2)))
            .await
            .expect("connect");
        let mut client = Client::new(channel.clone());
        tokio::spawn(async move { client.unary(unary(1)).await });
        eventually("the call reaches its handler", || server.entered() == 1).await;
        channel.close();
        channel
    });
    drop(first);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("second runtime");
    second.block_on(async {
        bounded("closed() on another runtime", channel.closed()).await;
        assert_closed_status(Client::new(channel.clone()).unary(unary(2)).await);
        let accepted = server.proxy.accepted();
        assert_no_reconnect(&server.proxy, accepted).await;
    });
    servers.block_on(async {
        eventually("the server sees every connection end", || {
            server.proxy.open() == 0
        })
        .await;
    });
}

/// A lazy channel whose first connection is still in its handshake (the server accepted and
/// never answers) with a call waiting for it: `close` fails the call, ends the attempt and its
/// socket, and `closed()` resolves, well before the connect timeout.
#[tokio::test]
async fn close_ends_a_connection_still_in_its_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let endpoint = Endpoint::new("127.0.0.1", port).connect_timeout(Duration::from_secs(600));
    let channel = Channel::lazy(endpoint).expect("endpoint");
    let mut client = Client::new(channel.clone());
    let pending = tokio::spawn(async move {
        let mut request = Request::new(unary(1));
        request.set_wait_for_ready(true);
        client.unary(request).await
    });
    let (mut socket, _) = bounded("the channel connects", listener.accept())
        .await
        .expect("accept");
    channel.close();
    assert_closed_status(bounded("the waiting call", pending).await.expect("task"));
    bounded("closed()", channel.closed()).await;
    // Within STEP (10 s), not 500 ms: the FIN is on its way when `closed()` resolves, but
    // `cargo test` runs this binary's tests at once on CI's 2 cores, where a stall of seconds
    // happens. A connection left to its handshake would stay up for the 600 s connect timeout.
    let mut buf = [0u8; 256];
    let end = tokio::time::timeout(STEP, async {
        while tokio::io::AsyncReadExt::read(&mut socket, &mut buf)
            .await
            .is_ok_and(|n| n > 0)
        {}
    })
    .await;
    assert!(end.is_ok(), "the connection outlived closed()");
}

/// Fifty balanced channels, each used, closed and waited for while a clone is kept: no task
/// (discovery, connect, health, connection) and no socket outlives them.
#[tokio::test]
async fn fifty_closed_balanced_channels_leave_no_task_behind() {
    if !counted_alone("fifty_closed_balanced_channels_leave_no_task_behind") {
        return;
    }
    let servers = vec![Running::start().await];
    servers[0].gate.release.send_replace(true);
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let (tasks_before, fds_before) = (tasks(), open_fds());
    let mut kept = Vec::new();
    for seq in 0..50 {
        let balanced = Channel::balance(fixed(&servers, 2));
        let mut client = StreamerClient::new(balanced.clone());
        bounded("a call", client.unary(unary(seq)))
            .await
            .expect("answered");
        if seq % 2 == 0 {
            balanced.close();
        } else {
            balanced.close_now();
        }
        bounded("closed()", balanced.closed()).await;
        kept.push(balanced);
    }
    eventually("the server sees every connection end", || {
        servers[0].proxy.open() == 0
    })
    .await;
    eventually("as many tasks as before", || tasks() <= tasks_before).await;
    eventually("as many descriptors as before", || open_fds() <= fds_before).await;
    eprintln!("{COUNTED}{} after, {fds_before} before", open_fds());
}

/// A balanced channel whose only endpoint is down, its connect task in a 60 s backoff:
/// `closed()`, awaited before the close by two tasks, resolves once it is closed, without
/// waiting out the backoff (paused clock).
#[tokio::test(start_paused = true)]
async fn a_balanced_channel_to_a_server_that_is_down_closes_at_once() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let mut backoff = sockrpc::client::Backoff::default();
    backoff.initial = Duration::from_secs(60);
    backoff.max = Duration::from_secs(60);
    let endpoint = Endpoint::new("127.0.0.1", port).backoff(backoff);
    let balanced = Channel::balance(discovery::fixed([endpoint]).expect("discovery"));
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let balanced = balanced.clone();
            tokio::spawn(async move { balanced.closed().await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        waiters.iter().all(|w| !w.is_finished()),
        "closed() waits for a close"
    );
    let started = Instant::now();
    balanced.close_now();
    for waiter in waiters {
        bounded("closed() in each task", waiter)
            .await
            .expect("task");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "closing waited out the backoff"
    );
}
