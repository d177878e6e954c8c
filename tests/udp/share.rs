//! Each source's share of the reply cache: a host that floods calls under fresh client
//! instances, never saying it is done with their answers, fills its own share and no more, and
//! other hosts' calls still run over UDP.

use crate::at_most_once::HandBuilt;
use crate::in_flight_share::cookie_for;
use crate::support::{eventually, raw_echo_request, request, BOUND, ECHO};
use sockrpc::service::udp::datagram::{self, Header, COOKIE_LEN, HEADER_LEN};
use sockrpc::service::udp::{
    ReplyCacheConfig, UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig,
};
use sockrpc_tests::echo::EchoRequest;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_host_fills_its_share_of_the_reply_cache_not_everyone_s() {
    const SHARE: usize = 16;
    const FLOOD: u64 = 40;
    let mut cache = ReplyCacheConfig::default();
    cache.max_entries = 64;
    cache.max_entries_per_source = SHARE;
    let server = HandBuilt::start(UdpServerConfig::default(), cache).await;

    // The flooding host: 127.0.0.2, verified (an unverified one draws on the pool of all
    // unverified sources instead: `spoofed.rs`), a new client instance per request (each call 1
    // of a new client, as a flood of fresh instances looks to the server), no watermark ever.
    let flooder = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    flooder.connect(server.addr).await.expect("connect");
    let cookie = cookie_for(&flooder).await;
    for instance in 1..=FLOOD {
        let mut call = raw_echo_request(instance, 1, 0);
        call[HEADER_LEN - COOKIE_LEN..HEADER_LEN].copy_from_slice(&cookie);
        flooder.send(&call).await.expect("send");
    }
    eventually("every flooded request handled", || {
        let c = server.counters();
        c.executed + c.over_share >= FLOOD
    })
    .await;
    let flooded = server.counters();
    assert_eq!(flooded.executed, SHARE as u64, "{flooded:?}");
    assert_eq!(flooded.over_share, FLOOD - SHARE as u64, "{flooded:?}");
    assert_eq!(flooded.cache_full, 0, "{flooded:?}");
    assert_eq!(server.cache.len(), SHARE);
    // The refusals say the calls did not run, so a real client would carry them over TCP.
    let mut buf = vec![0u8; 65536];
    let mut refused = 0;
    for _ in 0..FLOOD {
        let Ok(Ok(n)) = tokio::time::timeout(BOUND, flooder.recv(&mut buf)).await else {
            break;
        };
        let header = Header::parse(&buf[..n]).expect("server header");
        if header.flags & datagram::FLAG_NOT_PROCESSED != 0 {
            refused += 1;
        }
    }
    assert_eq!(refused, FLOOD - SHARE as u64);

    // Another host's calls still run over UDP, and none is refused.
    let client = UdpClient::connect(server.addr, UdpClientConfig::default())
        .await
        .expect("client");
    for id in 0..20u64 {
        let call = request(&EchoRequest {
            payload: bytes::Bytes::from_static(b"hi"),
            id,
        });
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        match client.call(&ECHO, &call, deadline).await {
            UdpOutcome::Reply(Ok(_)) => {}
            other => panic!("call {id}: {other:?}"),
        }
    }
    let after = server.counters();
    assert_eq!(after.over_share, flooded.over_share, "{after:?}");
    assert_eq!(after.executed, flooded.executed + 20, "{after:?}");
    server.shutdown().await;
}
