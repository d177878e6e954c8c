//! A call picked for an endpoint whose connection has just gone (a server shutting down
//! gracefully, between the pick and the write) was never written anywhere: its member's pool
//! could get no connection. grpc-go picks again when a picked connection is no longer ready, so
//! a graceful stop costs no call; here such a call goes to another endpoint
//! (`Status::never_sent`) instead of failing `UNAVAILABLE`.
//!
//! The window between the pick and the write is microseconds wide (a probe saw one or two
//! failed calls per graceful stop under load), so the test opens it on purpose: a picker that
//! picks the server that went away once, whatever the balancer says is usable.

use super::support::{hello, Server};
use sockrpc::service::balance::{BalanceBuilder, Members, Picker};
use sockrpc::service::discovery;
use sockrpc::Call;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Picks the member keyed `gone` once, then the first usable one.
struct PicksTheGoneOnce {
    gone: String,
    picked: AtomicBool,
}

impl Picker for PicksTheGoneOnce {
    fn pick(
        &self,
        members: &Members,
        _call: &Call,
        usable: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let list = members.list();
        let gone = list.iter().position(|m| m.key().contains(&self.gone));
        match gone {
            Some(i) if !self.picked.swap(true, Ordering::Relaxed) => Some(i),
            _ => (0..list.len()).find(|&i| usable(i)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_picked_for_a_server_gone_goes_to_another() {
    let gone = Server::start("127.0.0.1", Duration::ZERO).await;
    let other = Server::start("127.0.0.2", Duration::ZERO).await;
    let (gone_addr, other_addr) = (gone.addr, other.addr);
    let picker = PicksTheGoneOnce {
        gone: gone_addr.to_string(),
        picked: AtomicBool::new(false),
    };
    let channel = BalanceBuilder::default().picker(picker).build(
        discovery::fixed([gone_addr, other_addr].map(|a| format!("tcp://{a}"))).expect("endpoints"),
    );
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("both endpoints up");
    // Gone: its listener closed, so its member's pool can get no connection.
    gone.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(gone_addr).await.is_err(),
        "the server's port still takes connections"
    );
    let answered = hello(&channel, None).await;
    assert_eq!(answered.as_ref().ok(), Some(&other_addr), "{answered:?}");
    drop(other);
}
