//! Each source's share of the server's calls in flight: a host that sends calls which never end
//! holds its share of the call slots and no more; its calls past it are refused unrun, and said
//! to be (`NOT_PROCESSED`), and another host's calls are still served over UDP.

use crate::at_most_once::HandBuilt;
use crate::support::{request, BOUND, ECHO, SLEEP};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sockrpc::service::udp::datagram::{self, Header, Kind, COOKIE_LEN};
use sockrpc::service::udp::{
    ReplyCacheConfig, UdpClient, UdpClientConfig, UdpOutcome, UdpServerConfig,
};
use sockrpc::MetadataMap;
use sockrpc_tests::echo::{EchoRequest, SleepRequest};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The cookie the server gives `socket`'s address (a COOKIE_REQUEST, sent again if lost).
pub(crate) async fn cookie_for(socket: &UdpSocket) -> [u8; COOKIE_LEN] {
    let mut ask = BytesMut::new();
    datagram::encode_cookie_request(&mut ask, 0x0BAD);
    let mut buf = vec![0u8; 65536];
    for _ in 0..20 {
        socket.send(&ask).await.expect("send");
        let wait = Duration::from_millis(500);
        if let Ok(Ok(n)) = tokio::time::timeout(wait, socket.recv(&mut buf)).await {
            let header = Header::parse(&buf[..n]).expect("server header");
            if header.kind == Kind::Cookie {
                return header.cookie;
            }
        }
    }
    panic!("no COOKIE within 20 attempts");
}

/// A `Sleep` REQUEST (held by the handler until released) from a verified source.
fn held_call(call_id: u32, cookie: [u8; COOKIE_LEN]) -> BytesMut {
    held_call_of(0x0BAD, call_id, cookie)
}

/// [`held_call`] from client instance `instance`.
pub(crate) fn held_call_of(instance: u64, call_id: u32, cookie: [u8; COOKIE_LEN]) -> BytesMut {
    let header = Header {
        kind: Kind::Request,
        flags: 0,
        client_instance: instance,
        call_id,
        cookie,
    };
    let message = SleepRequest {
        millis: 0,
        token: String::new(),
    }
    .encode_to_vec();
    let mut out = BytesMut::new();
    let metadata = MetadataMap::new();
    datagram::encode_request(&mut out, &header, None, None, &SLEEP, &metadata, &message);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_holding_calls_open_takes_its_share_of_the_slots_not_everyone_s() {
    const SHARE: u64 = 8;
    const SENT: u64 = 100;
    let mut config = UdpServerConfig::default();
    config.max_in_flight = 64;
    config.max_in_flight_per_source = SHARE as usize;
    let server = HandBuilt::start(config, ReplyCacheConfig::default()).await;

    // The hostile host: 127.0.0.2, verified (so never rate-limited), more calls that never
    // end than the server has slots for.
    let hostile = UdpSocket::bind("127.0.0.2:0")
        .await
        .expect("bind 127.0.0.2");
    hostile.connect(server.addr).await.expect("connect");
    let cookie = cookie_for(&hostile).await;
    for call_id in 1..=SENT as u32 {
        hostile
            .send(&held_call(call_id, cookie))
            .await
            .expect("send");
    }
    // Each call past the share is answered at once: UNAVAILABLE, NOT_PROCESSED.
    let mut buf = vec![0u8; 65536];
    let mut refused = 0;
    while refused < SENT - SHARE {
        let n = tokio::time::timeout(BOUND, hostile.recv(&mut buf))
            .await
            .expect("a refusal for each call past the share")
            .expect("recv");
        let header = Header::parse(&buf[..n]).expect("server header");
        assert_eq!(header.kind, Kind::Reply, "{header:?}");
        assert_ne!(header.flags & datagram::FLAG_NOT_PROCESSED, 0, "{header:?}");
        refused += 1;
    }
    let counters = server.counters();
    assert_eq!(counters.over_in_flight_share, SENT - SHARE, "{counters:?}");
    assert_eq!(counters.executed, SHARE, "{counters:?}");
    assert_eq!(server.handlers.held(), SHARE, "only the share runs");

    // Another host's calls are served over UDP meanwhile, none dropped or refused.
    let client = UdpClient::connect(server.addr, UdpClientConfig::default())
        .await
        .expect("client");
    for id in 0..20u64 {
        let call = request(&EchoRequest {
            payload: Bytes::from_static(b"still served"),
            id,
        });
        match client
            .call(&ECHO, &call, Some(Instant::now() + BOUND))
            .await
        {
            UdpOutcome::Reply(Ok(_)) => {}
            other => panic!("call {id} of the other host: {other:?}"),
        }
    }
    let after = server.counters();
    assert_eq!(after.overloaded, 0, "{after:?}");
    assert_eq!(after.over_in_flight_share, SENT - SHARE, "{after:?}");

    // Once its calls end, the host has its share again.
    for _ in 0..SHARE {
        server.handlers.release();
    }
    // A released call leaves its source's count as its task ends, a moment later: a call sent
    // at once may still be refused, so one more each 20 ms until one runs.
    let start = Instant::now();
    let mut call_id = SENT as u32;
    while server.handlers.held() < SHARE + 1 {
        assert!(start.elapsed() < BOUND, "{:?}", server.counters());
        call_id += 1;
        hostile
            .send(&held_call(call_id, cookie))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in SHARE..server.handlers.held() {
        server.handlers.release();
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_server_s_limit_is_refused_unrun_not_dropped() {
    const LIMIT: u32 = 8;
    const SHARE: u32 = 6;
    let mut config = UdpServerConfig::default();
    config.max_in_flight = LIMIT as usize;
    config.max_in_flight_per_source = SHARE as usize;
    let server = HandBuilt::start(config, ReplyCacheConfig::default()).await;

    // Two hosts, each within its share, between them hold every slot.
    let first = UdpSocket::bind("127.0.0.2:0").await.expect("bind");
    let second = UdpSocket::bind("127.0.0.3:0").await.expect("bind");
    first.connect(server.addr).await.expect("connect");
    second.connect(server.addr).await.expect("connect");
    let (first_cookie, second_cookie) = (cookie_for(&first).await, cookie_for(&second).await);
    for call_id in 1..=SHARE {
        first
            .send(&held_call(call_id, first_cookie))
            .await
            .expect("send");
    }
    for call_id in 1..=LIMIT - SHARE {
        second
            .send(&held_call_of(0x0B0B, call_id, second_cookie))
            .await
            .expect("send");
    }
    let start = Instant::now();
    while server.handlers.held() < u64::from(LIMIT) {
        assert!(start.elapsed() < BOUND, "{:?}", server.counters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The second host is under its share, but the server is full: its next call is answered
    // at once, NOT_PROCESSED, so its client can carry it over TCP instead of retransmitting
    // into a full server until the deadline.
    second
        .send(&held_call_of(0x0B0B, LIMIT, second_cookie))
        .await
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(BOUND, second.recv(&mut buf))
        .await
        .expect("a refusal, not silence")
        .expect("recv");
    let header = Header::parse(&buf[..n]).expect("server header");
    assert_eq!(header.kind, Kind::Reply, "{header:?}");
    assert_eq!(header.call_id, LIMIT, "{header:?}");
    assert_ne!(header.flags & datagram::FLAG_NOT_PROCESSED, 0, "{header:?}");
    let counters = server.counters();
    assert_eq!(counters.overloaded, 1, "{counters:?}");
    assert_eq!(counters.over_in_flight_share, 0, "{counters:?}");
    assert_eq!(counters.executed, u64::from(LIMIT), "{counters:?}");

    for _ in 0..LIMIT {
        server.handlers.release();
    }
    server.shutdown().await;
}
