//! A balanced channel's member lost its connection; its pool reconnects by itself (the
//! connection had carried calls) while the connect task the driver's upkeep started makes an
//! attempt of its own. The pool's connection came up first and took a call; the attempt came
//! up after it and its channel was set in place of the working one, whose pool was let go with
//! that call still on it. The balanced channel no longer knew of it: `close_now` did not cancel
//! the call, and `closed` did not wait for its connection. Now a task whose attempt comes up
//! to a member connected again keeps the pool's channel (as the task that wakes from its
//! backoff to one does, `balance_kept.rs`), and a channel replaced all the same (the pool's
//! connection came up between the look and the set) has its connections with calls on them
//! kept for the channel's close, as a removed member's are.
//!
//! The server is a switch in front of a real echo server whose connections are each held until
//! the test releases that one, and that counts the bytes each one's client sent.

use crate::support::{bounded, start_echo, EchoImpl};
use sockrpc::service::balance::{BalanceBuilder, Balanced, PickFirst};
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::transport::Endpoint;
use sockrpc::{Code, Request};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the switch knows of one connection it accepted.
#[derive(Default)]
struct Held {
    /// Bytes its client sent, forwarded or waiting.
    sent: AtomicUsize,
    /// Its client closed it.
    closed: AtomicBool,
}

/// The switch: connections in the order accepted, each held until `released` reaches its
/// index, then forwarded for as long as either side keeps it; every one up to `released`
/// ended by a bump of `kill`.
struct Switch {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<Held>>>>,
    /// Connections with an index below this are forwarded.
    released: watch::Sender<usize>,
    kill: watch::Sender<u64>,
}

impl Switch {
    fn accepted(&self) -> usize {
        self.conns.lock().expect("lock").len()
    }

    fn conn(&self, at: usize) -> Arc<Held> {
        Arc::clone(&self.conns.lock().expect("lock")[at])
    }
}

/// Copies `from` to `to`, counting into `held` when given; notes `from`'s end there.
async fn copy(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    held: Option<&Held>,
) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(held) = held {
            held.sent.fetch_add(n, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if let Some(held) = held {
        held.closed.store(true, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

async fn switch(backend: SocketAddr) -> Switch {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let conns: Arc<Mutex<Vec<Arc<Held>>>> = Arc::default();
    let (released, _) = watch::channel(0usize);
    let (kill, _) = watch::channel(0u64);
    let (list, releases, kills) = (Arc::clone(&conns), released.subscribe(), kill.subscribe());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let held = Arc::new(Held::default());
            let at = {
                let mut list = list.lock().expect("lock");
                list.push(Arc::clone(&held));
                list.len() - 1
            };
            let (mut releases, mut kills) = (releases.clone(), kills.clone());
            tokio::spawn(async move {
                let generation = *kills.borrow_and_update();
                if releases.wait_for(|released| *released > at).await.is_err() {
                    return;
                }
                let Ok(upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                let (client_read, client_write) = stream.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::select! {
                    () = async {
                        tokio::join!(
                            copy(client_read, server_write, Some(&held)),
                            copy(server_read, client_write, None),
                        );
                    } => {}
                    _ = kills.wait_for(|now| *now != generation) => {}
                }
            });
        }
    });
    Switch {
        addr,
        conns,
        released,
        kill,
    }
}

fn echo(id: u64) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        payload: vec![1].into(),
        id,
    });
    request.set_timeout(Duration::from_secs(5));
    request
}

/// Waits (bounded) until `test` holds, looking every 10 ms.
async fn until(what: &str, test: impl Fn() -> bool) {
    bounded(what, async {
        while !test() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn connected(channel: &Balanced) -> bool {
    channel.stats().first().is_some_and(|m| m.connected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_the_pools_connection_is_cancelled_by_close_now_when_an_attempt_raced_it() {
    raced(BalanceBuilder::default()).await;
}

/// The same with pick first, whose pass (`in_order.rs`) attempts the endpoint while the
/// pool of the channel it kept reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_first_pass_that_raced_the_pool_keeps_its_channel() {
    raced(BalanceBuilder::default().picker(PickFirst::new())).await;
}

/// The race, on a balanced channel `builder` makes.
async fn raced(builder: BalanceBuilder) {
    let echo_impl = EchoImpl::default();
    let sleeping = Arc::clone(&echo_impl.sleeping);
    let server = start_echo(echo_impl);
    let switch = switch(server.addr).await;
    let endpoint =
        Endpoint::new("127.0.0.1", switch.addr.port()).connect_timeout(Duration::from_secs(30));
    let insert = Change::insert(switch.addr.to_string(), endpoint);
    let discovery = Discovery::new(futures_util::stream::iter([insert]));
    let channel = builder.build(discovery);
    let mut client = EchoClient::new(channel.clone());
    switch.released.send_replace(1);
    until("the first connection", || connected(&channel)).await;
    bounded("a call proves the server", client.echo(echo(1)))
        .await
        .expect("answered");

    // The connection goes: its pool reconnects at once (it carried a call), then the upkeep's
    // connect task (or pick first's pass) attempts (no backoff: the connection proved the server). Both are held.
    switch.kill.send_modify(|generation| *generation += 1);
    until("the pool's and the task's connections", || {
        switch.accepted() >= 3
    })
    .await;
    let (pool, task) = (1, 2);
    // The pool's comes up, and a long call goes on it.
    switch.released.send_replace(task);
    until("the pool's own connection", || connected(&channel)).await;
    let mut sleeper = client.clone();
    let long = tokio::spawn(async move {
        let request = Request::new(SleepRequest {
            millis: 60_000,
            token: String::new(),
        });
        sleeper.sleep(request).await
    });
    bounded("the long call reaches the server", sleeping.notified()).await;
    assert!(switch.conn(pool).sent.load(Ordering::SeqCst) > 0);

    // The task's attempt comes up: its channel is let go (its client closes it), or, were it
    // set in place of the pool's, the next call goes on it.
    switch.released.send_replace(task + 1);
    let attempt = switch.conn(task);
    bounded("the attempt's channel let go or used", async {
        for id in 2.. {
            let handshake_only = attempt.sent.load(Ordering::SeqCst) < 48;
            if attempt.closed.load(Ordering::SeqCst) || !handshake_only {
                break;
            }
            client.echo(echo(id)).await.expect("answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        attempt.closed.load(Ordering::SeqCst),
        "the attempt's channel was set in place of the pool's, which carries a call"
    );

    // Closed at once: the long call is cancelled wherever it runs, and `closed` waits for it.
    channel.close_now();
    bounded("the balanced channel closed", channel.closed()).await;
    let status = bounded("the long call ends with the close", long)
        .await
        .expect("task")
        .expect_err("cancelled");
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    drop((client, channel));
    server.stop().await;
}
