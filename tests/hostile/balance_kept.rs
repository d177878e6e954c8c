//! A balanced channel's member whose connect task's attempt failed waits out its backoff, and
//! meanwhile its pool reconnects by itself (the connection it lost had carried calls, so at
//! once): the member is connected again, and serves calls, when the task wakes. The task then
//! opened a second channel and set it in place of the working one, whose pool was let go: a
//! second connection to the server, the one carrying calls closed for it, and the pool's
//! connection judged by no one (the task's clears the failure on its handshake). grpc-go's
//! subchannel never has two transports racing for one address; a task that wakes to its member
//! connected now ends, and keeps that channel, judged by `reconnect.rs`'s rule.
//!
//! The server is the switch of `balance_reset.rs`: connections held while it is shut (the
//! task's attempt times out, the pool's waits for its preface), forwarded once it opens.

use crate::balance_reset::{serve_calls, switch, until};
use crate::support::{start_echo, EchoImpl};
use sockrpc::service::balance::BalanceBuilder;
use sockrpc::service::discovery::{Change, Discovery};
use sockrpc::transport::backoff::Backoff;
use sockrpc::transport::Endpoint;
use sockrpc_tests::echo::echo_client::EchoClient;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_its_pool_reconnected_keeps_that_channel_when_its_connect_task_wakes() {
    let server = start_echo(EchoImpl::default());
    let switch = switch(server.addr, false).await;
    // The task's attempt gives up after 500 ms and waits 2 s (±20 %) from its start; the
    // pool's connection waits for the server's preface for as long as it is held.
    let endpoint = Endpoint::new("127.0.0.1", switch.addr.port())
        .backoff(Backoff::starting_at(Duration::from_secs(2)))
        .connect_timeout(Duration::from_millis(500));
    let insert = Change::insert(switch.addr.to_string(), endpoint);
    let discovery = Discovery::new(futures_util::stream::iter([insert]));
    let channel = BalanceBuilder::default().build(discovery);
    let mut client = EchoClient::new(channel.clone());
    until(&channel, "the first connection", |m| m.connected).await;
    serve_calls(&mut client, 3).await;

    // The connection goes, later ones held: the pool (its connection carried calls)
    // reconnects at once and waits for the preface; the connect task the upkeep starts (the
    // last connection proved the server: no wait) times out, and waits out its backoff.
    switch.open.send_replace(false);
    switch.kill.send_modify(|generation| *generation += 1);
    until(&channel, "the task's attempt failed", |m| {
        m.failure.is_some()
    })
    .await;
    let accepted = switch.accepted.load(Ordering::SeqCst);
    // The pool's connection comes up while the task waits, and serves calls past the task's
    // wake (at most 1.9 s from now), and none fails meanwhile.
    switch.open.send_replace(true);
    until(&channel, "the pool's own connection", |m| m.connected).await;
    serve_calls(&mut client, 120).await;

    // The task woke to its member connected: no second connection was opened.
    let opened = switch.accepted.load(Ordering::SeqCst) - accepted;
    assert_eq!(
        opened,
        0,
        "connections opened to a member whose pool was connected: {:?}",
        channel.stats()
    );
    drop((client, channel));
    server.stop().await;
}
