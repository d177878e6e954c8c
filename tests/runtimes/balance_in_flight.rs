//! Calls in flight through a balanced channel whose members' connections were made on a
//! runtime that ends while the calls' lives on (two tests sharing a static balanced client):
//! each call fails `UNAVAILABLE` at once (the balancer's members reconnect on the calls'
//! runtime), and the next calls work, on every member.

use super::slow::{Options, SlowServer};
use super::support::{on_runtime, serving, Flavor, BOUND};
use super::together::{by_deadline, Beside};
use sockrpc::service::balance::{BalanceBuilder, Balanced, RoundRobin};
use sockrpc::service::discovery::from_addrs;
use sockrpc::{Code, Endpoint, Request, Status};
use sockrpc_tests::echo::echo_client::EchoClient;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::time::Duration;
use tokio::time::Instant;

/// Each call's deadline.
const DEADLINE: Duration = Duration::from_secs(5);

async fn echo(channel: &Balanced, id: u64) -> Result<u64, Status> {
    let mut request = Request::new(EchoRequest {
        payload: Default::default(),
        id,
    });
    request.set_timeout(DEADLINE);
    let reply = EchoClient::new(channel.clone()).echo(request).await?;
    Ok(reply.into_inner().id)
}

async fn slow(channel: Balanced) -> Result<(), Status> {
    let mut request = Request::new(SleepRequest {
        millis: 3_000,
        token: String::new(),
    });
    request.set_timeout(DEADLINE);
    EchoClient::new(channel).sleep(request).await.map(drop)
}

#[test]
fn balanced_calls_in_flight_fail_unavailable_and_the_next_work() {
    let serving = serving();
    let servers: Vec<SlowServer> = serving.block_on(async {
        vec![
            SlowServer::start(Options::default()).await,
            SlowServer::start(Options::default()).await,
        ]
    });
    let addrs: Vec<_> = servers.iter().map(|s| s.tcp).collect();
    let (beside, channel) = Beside::start(Flavor::Current, move || async move {
        let discovery = from_addrs(addrs, |addr| Endpoint::new("127.0.0.1", addr.port()));
        let channel = BalanceBuilder::default()
            .picker(RoundRobin::new())
            .build(discovery);
        channel.ready(2, BOUND / 2).await.expect("two members");
        for id in 0..4 {
            echo(&channel, id).await.expect("the first runtime's calls");
        }
        channel
    });
    on_runtime(Flavor::Current, "second runtime", || async {
        let deadline = Instant::now() + DEADLINE;
        // Round robin: two calls, one on each member's connection.
        let calls: Vec<_> = (0..2)
            .map(|_| tokio::spawn(slow(channel.clone())))
            .collect();
        // In flight: the servers have both. Waited for (bounded by the calls' deadline), not
        // assumed after 300 ms: a call a stalled machine had not sent yet when the runtime
        // ended would go on a new connection and succeed after 3 s.
        while servers.iter().map(SlowServer::sleeps).sum::<usize>() < 2 {
            assert!(
                Instant::now() < deadline,
                "the calls did not reach the servers"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        beside.end().await;
        for (n, call) in calls.into_iter().enumerate() {
            let what = format!("call {n} in flight");
            let ended = by_deadline(&what, deadline, call).await.expect("call task");
            let status = ended.expect_err("the server never answered it");
            assert_eq!(status.code(), Code::Unavailable, "{what}: {status:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the calls ended at their deadline"
        );
        for id in 0..20 {
            let answer = echo(&channel, id).await;
            assert_eq!(answer.ok(), Some(id), "call {id} after the switch");
        }
    });
    drop(servers);
    drop(serving);
}
