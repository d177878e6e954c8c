//! A balanced channel's member whose connection the server ended before it proved itself waits
//! out a backoff, counted failing (`balance_flapping.rs`); meanwhile its pool reconnects by
//! itself, and the member is connected again. That connection was judged by no one: the member
//! kept its grown backoff and its failure (hidden while connected) until its next connection,
//! so once that connection, which had served calls for as long as it lived, went away, the
//! member was shown failing at once, with the old reason, and a fail-fast call failed at once
//! on it. grpc-go resets a subchannel's backoff on READY; here the driver's upkeep judges the
//! connection it finds up by the rule of `reconnect.rs`, and once it proved the server (a call
//! answered) the backoff starts over and the failure is cleared. The same holds for pick
//! first's members, whose failures its passes record (`in_order.rs`).
//!
//! The server is a switch in front of a real echo server: its first connection is hung up as
//! a call opens on it (the pool, which saw a call start, reconnects at once; the member, which
//! saw none answered, counts a failed attempt), or forwarded, the next ones are held until
//! released and then forwarded, and a kill ends them all.

use crate::raw::{OPEN, PREFACE};
use crate::support::{bounded, start_echo, EchoImpl};
use sockrpc::protocol::frame::encode_settings;
use sockrpc::service::balance::{BalanceBuilder, Balanced, EndpointStats, PickFirst};
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::transport::backoff::Backoff;
use sockrpc::transport::Endpoint;
use sockrpc::Request;
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::EchoRequest;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The switch's controls (also `balance_kept.rs`'s).
pub(super) struct Switch {
    pub(super) addr: SocketAddr,
    /// Whether forwarded connections may reach the echo server yet (held until then).
    pub(super) open: watch::Sender<bool>,
    /// Bumped to end every forwarded connection.
    pub(super) kill: watch::Sender<u64>,
    /// Connections accepted so far.
    pub(super) accepted: Arc<AtomicUsize>,
}

/// The first connection: a server's preface and SETTINGS, then hung up as the client opens a
/// call on it (its frames read one by one, within the bound of the test).
async fn hang_up_on_call(mut stream: TcpStream) {
    let mut hello = bytes::BytesMut::new();
    hello.extend_from_slice(&sockrpc::protocol::frame::PREFACE);
    encode_settings(&mut hello, 0, 100);
    if stream.write_all(&hello).await.is_err() {
        return;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut at = PREFACE.len();
    loop {
        while got.len() >= at + 12 {
            if got[at + 4] == OPEN {
                return;
            }
            let len = u32::from_be_bytes([got[at], got[at + 1], got[at + 2], got[at + 3]]);
            at += 12 + len as usize;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// A switch in front of `backend`: its first connection hangs up on a call
/// ([`hang_up_on_call`]) when `hang_up_first`; every other is held until [`Switch::open`] says
/// so, then forwarded, each until the next [`Switch::kill`].
pub(super) async fn switch(backend: SocketAddr, hang_up_first: bool) -> Switch {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    // Set once the first connection was taken: later ones are forwarded.
    let taken = Arc::new(AtomicBool::new(!hang_up_first));
    let (open, _) = watch::channel(!hang_up_first);
    let (kill, _) = watch::channel(0u64);
    let (opened, killed) = (open.subscribe(), kill.subscribe());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            if !taken.swap(true, Ordering::SeqCst) {
                tokio::spawn(hang_up_on_call(stream));
                continue;
            }
            let (mut opened, mut killed) = (opened.clone(), killed.clone());
            tokio::spawn(async move {
                let generation = *killed.borrow_and_update();
                let mut stream = stream;
                tokio::select! {
                    _ = opened.wait_for(|open| *open) => {}
                    _ = killed.changed() => return,
                }
                let Ok(mut upstream) = TcpStream::connect(backend).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream) => {}
                    _ = killed.wait_for(|now| *now != generation) => {}
                }
            });
        }
    });
    Switch {
        addr,
        open,
        kill,
        accepted,
    }
}

/// A fail-fast echo call with a deadline.
fn echo(id: u64) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        payload: vec![1].into(),
        id,
    });
    request.set_timeout(Duration::from_secs(2));
    request
}

/// Makes `count` calls 25 ms apart, each answered, so that the upkeep (every 250 ms) sees the
/// connection up both before a call and after one.
pub(super) async fn serve_calls(client: &mut EchoClient<Balanced>, count: u64) {
    for id in 1..=count {
        bounded("a call", client.echo(echo(id)))
            .await
            .unwrap_or_else(|status| panic!("call {id} on the pool's connection: {status:?}"));
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Looks at the member for half a second: no failure shown.
async fn never_failing(channel: &Balanced, served: &str) {
    for _ in 0..50 {
        let stats = channel.stats();
        assert!(
            stats[0].failure.is_none(),
            "a member whose last connection {served} shown failing with a reason from before \
             it: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits (bounded) until `test` holds of the member's stats, looking every 10 ms.
pub(super) async fn until(channel: &Balanced, what: &str, test: impl Fn(&EndpointStats) -> bool) {
    bounded(what, async {
        while !channel.stats().first().is_some_and(&test) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_its_pool_reconnected_is_cleared_once_that_connection_proves_the_server() {
    let server = start_echo(EchoImpl::default());
    let switch = switch(server.addr, true).await;
    // A backoff long enough that the member's connect task still waits it out (from 6.4 s
    // after the first connection) when the test is done with it.
    let endpoint = Endpoint::new("127.0.0.1", switch.addr.port())
        .backoff(Backoff::starting_at(Duration::from_secs(8)))
        .connect_timeout(Duration::from_secs(30));
    let insert = Change::insert(switch.addr.to_string(), endpoint);
    let discovery = Discovery::new(futures_util::stream::iter([insert]));
    let channel = BalanceBuilder::default().build(discovery);
    let mut client = EchoClient::new(channel.clone());
    until(&channel, "the first connection", |m| m.connected).await;

    // A call opens on it and the server hangs up: the member counts a failed attempt and waits
    // out its backoff, while its pool (which saw a call start on it) reconnects at once.
    let _ = bounded("the call hung up on", client.echo(echo(0))).await;
    until(&channel, "the member failing", |m| m.failure.is_some()).await;
    // The pool's connection comes up, while the member's task still waits.
    switch.open.send_replace(true);
    until(&channel, "the pool's own connection", |m| m.connected).await;
    // It serves calls: proven. Some 1.5 s of them.
    serve_calls(&mut client, 60).await;

    // The connection goes (every later one held): the member is not connected, and its last
    // connection served calls, so nothing has failed since.
    switch.open.send_replace(false);
    switch.kill.send_modify(|generation| *generation += 1);
    until(&channel, "the connection gone", |m| !m.connected).await;
    never_failing(&channel, "served 60 calls").await;
    drop((client, channel));
    server.stop().await;
}

/// The same with pick first, whose endpoints are connected by passes in order (`in_order.rs`),
/// not by connect tasks: a pass's attempt fails while the member's pool reconnects by itself,
/// and the pool's connection then serves calls. It was never judged: the attempt's failure
/// stayed (hidden while connected), and the member was shown failing with it the moment that
/// connection went, a fail-fast call failing at once on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pick_first_member_its_pool_reconnected_is_cleared_once_that_connection_proves_it() {
    let server = start_echo(EchoImpl::default());
    let switch = switch(server.addr, false).await;
    // The pass's attempt gives up after 500 ms; the pool's (which waits the longer of its
    // backoff and that) and the next pass (from 6.4 s after this one) wait longer than the test.
    let endpoint = Endpoint::new("127.0.0.1", switch.addr.port())
        .backoff(Backoff::starting_at(Duration::from_secs(8)))
        .connect_timeout(Duration::from_millis(500));
    let insert = Change::insert(switch.addr.to_string(), endpoint);
    let discovery = Discovery::new(futures_util::stream::iter([insert]));
    let channel = BalanceBuilder::default()
        .picker(PickFirst::new())
        .build(discovery);
    let mut client = EchoClient::new(channel.clone());
    until(&channel, "the first connection", |m| m.connected).await;
    serve_calls(&mut client, 1).await;

    // The connection goes, later ones held: the pool (its connection carried a call)
    // reconnects at once and waits; the pass the upkeep starts times out, a failed attempt.
    switch.open.send_replace(false);
    switch.kill.send_modify(|generation| *generation += 1);
    until(&channel, "the pass's attempt failed", |m| {
        m.failure.is_some()
    })
    .await;
    // The pool's connection comes up while the pass waits out its backoff, and serves calls.
    switch.open.send_replace(true);
    until(&channel, "the pool's own connection", |m| m.connected).await;
    serve_calls(&mut client, 60).await;

    switch.open.send_replace(false);
    switch.kill.send_modify(|generation| *generation += 1);
    until(&channel, "the connection gone", |m| !m.connected).await;
    never_failing(&channel, "served 60 calls").await;
    drop((client, channel));
    server.stop().await;
}
