//! UDP calls in flight through a channel whose UDP client (its socket registered with one
//! runtime's reactor) was made on a runtime that ends while the calls' lives on: two tests
//! sharing a static channel with UDP, the first returning mid-call. The call must end
//! `UNAVAILABLE` at once (no answer can be read any more; it may have run, so it is not sent
//! again), not at its deadline, and the next call must go over UDP again, on a client of the
//! calls' runtime.

use super::slow::{Options, SlowServer};
use super::support::{on_runtime, serving, Flavor};
use super::together::{by_deadline, Beside};
use super::unary_in_flight::{echo, slow};
use sockrpc::{Channel, Code, Endpoint};
use std::time::Duration;
use tokio::time::Instant;

#[test]
fn a_udp_call_in_flight_ends_and_the_next_goes_over_udp() {
    let serving = serving();
    let server = serving.block_on(SlowServer::start(Options {
        tls: None,
        udp: true,
    }));
    let udp = server.udp.expect("UDP");
    let endpoint = Endpoint::from_uri(&format!("tcp://{}", server.tcp))
        .expect("endpoint")
        .udp(udp);
    let (beside, channel) = Beside::start(Flavor::Current, move || async move {
        let channel = Channel::connect(endpoint).await.expect("connect");
        echo(&channel, 1).await.expect("the first runtime's call");
        assert_eq!(channel.udp_stats().map(|s| s.replies), Some(1), "over UDP");
        channel
    });
    on_runtime(Flavor::Current, "second runtime", || async {
        let deadline = Instant::now() + Duration::from_secs(5);
        let before = server.sleeps();
        let call = tokio::spawn(slow(channel.clone()));
        // In flight: the server has it. Waited for, not assumed after 300 ms: a call a stalled
        // machine had not sent yet when the runtime ended would go over a new UDP client and
        // succeed after 3 s.
        server
            .sleeping(before + 1, deadline, "the UDP call in flight")
            .await;
        beside.end().await;
        let ended = by_deadline("a UDP call in flight", deadline, call)
            .await
            .expect("call task");
        let status = ended.expect_err("the server answers after 3 s");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(Instant::now() < deadline, "the call ended at its deadline");
        let next = echo(&channel, 2).await;
        assert_eq!(next.ok(), Some(2), "the next call on the second runtime");
        let stats = channel.udp_stats().expect("a UDP client on this runtime");
        assert_eq!(stats.replies, 1, "the next call went over UDP: {stats:?}");
    });
    drop(server);
    drop(serving);
}
