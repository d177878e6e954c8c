//! Names that DNS answers with nothing: a name deleted from DNS (NXDOMAIN), a name with no
//! address records, SRV records whose targets are "." or have no address. Each is an answer,
//! an empty one, as grpc-go's resolver takes "not found": the endpoints leave, a fail-fast
//! call fails at once with `UNAVAILABLE` and the reason (not at its deadline), and the name
//! works again when its records come back.

use super::dns_server::{name, Dns};
use super::support::{hello, Server};
use hickory_server::proto::rr::rdata::{A, SRV};
use hickory_server::proto::rr::{RData, RecordType};
use sockrpc::service::balance::Balanced;
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::{Channel, Code};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Follows `discovery` with lookups at least every 2 s (an empty answer without a negative
/// TTL would otherwise stand for 30 s).
fn follow(discovery: DnsDiscovery, dns: &Dns) -> Balanced {
    Channel::balance(
        discovery
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .max_ttl(Duration::from_secs(2))
            .start()
            .expect("dns discovery"),
    )
}

/// Waits (at most 10 s) until `channel` holds no endpoint.
async fn wait_until_empty(channel: &Balanced) {
    for _ in 0..200 {
        if channel.stats().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("endpoints stayed: {:?}", channel.stats());
}

/// A call (5 s deadline) fails at once, `UNAVAILABLE`, saying `why`.
async fn fails_saying(channel: &Balanced, why: &str) {
    let status = hello(channel, None).await.expect_err("no endpoint");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(why), "want {why:?} in {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_deleted_from_dns_takes_its_endpoints_with_it() {
    let dns = Dns::start().await;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let SocketAddr::V4(addr) = server.addr else {
        unreachable!("bound on IPv4")
    };
    dns.set(&[*addr.ip()]).await;
    let channel = follow(DnsDiscovery::ip("svc.scale.test.", addr.port()), &dns);
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up from DNS");
    assert_eq!(hello(&channel, None).await, Ok(server.addr));

    // The name's only records go: NXDOMAIN. Its endpoint leaves, and calls say why.
    dns.set(&[]).await;
    wait_until_empty(&channel).await;
    fails_saying(&channel, "svc.scale.test. does not exist (NXDOMAIN)").await;

    // It comes back.
    dns.set(&[*addr.ip()]).await;
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("back from DNS");
    assert_eq!(hello(&channel, None).await, Ok(server.addr));

    // A name that exists with no address records (here, only SRV ones): NOERROR, no answer.
    let srv_only = name("_only._tcp.scale.test.");
    let target = RData::SRV(SRV::new(1, 1, addr.port(), name("svc.scale.test.")));
    dns.set_records(&srv_only, RecordType::SRV, 1, vec![target])
        .await;
    let channel = follow(DnsDiscovery::ip("_only._tcp.scale.test.", 1), &dns);
    fails_saying(&channel, "_only._tcp.scale.test. has no A or AAAA records").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_with_no_usable_target_fail_calls_at_once_with_the_reason() {
    let dns = Dns::start().await;
    let server = Server::start("127.0.0.2", Duration::ZERO).await;
    let port = server.addr.port();
    let srv = |target: &str| RData::SRV(SRV::new(10, 1, port, name(target)));

    // RFC 2782's "decidedly not available": the only target is ".".
    let closed = name("_closed._tcp.scale.test.");
    dns.set_records(&closed, RecordType::SRV, 1, vec![srv(".")])
        .await;
    let channel = follow(DnsDiscovery::srv("_closed._tcp.scale.test."), &dns);
    fails_saying(&channel, "the service is not available at this domain").await;

    // An SRV name that does not exist.
    let channel = follow(DnsDiscovery::srv("_none._tcp.scale.test."), &dns);
    fails_saying(
        &channel,
        "SRV _none._tcp.scale.test. does not exist (NXDOMAIN)",
    )
    .await;

    // Targets that have no address.
    let service = name("_greeter._tcp.scale.test.");
    let targets = vec![srv("a.scale.test."), srv("b.scale.test.")];
    dns.set_records(&service, RecordType::SRV, 1, targets).await;
    let channel = follow(DnsDiscovery::srv("_greeter._tcp.scale.test."), &dns);
    fails_saying(
        &channel,
        "none of the SRV targets of _greeter._tcp.scale.test. has an address \
         (a.scale.test., b.scale.test.)",
    )
    .await;

    // One target gets an address: the service works.
    let ip = Ipv4Addr::new(127, 0, 0, 2);
    dns.set_records(
        &name("b.scale.test."),
        RecordType::A,
        1,
        vec![RData::A(A(ip))],
    )
    .await;
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("a target with an address");
    assert_eq!(hello(&channel, None).await, Ok(server.addr));

    // The SRV records are removed: the endpoint leaves.
    dns.set_records(&service, RecordType::SRV, 1, Vec::new())
        .await;
    wait_until_empty(&channel).await;
    fails_saying(
        &channel,
        "SRV _greeter._tcp.scale.test. does not exist (NXDOMAIN)",
    )
    .await;
    server.shutdown().await;
}

/// A name that does not exist yet is asked again soon (from `min_ttl`, backing off), not after
/// its negative TTL (an hour here, as many zones' SOA says): created later, it is seen within
/// seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_created_late_is_seen_within_seconds_whatever_its_negative_ttl() {
    let dns = Dns::with_negative_ttl(3600).await;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let SocketAddr::V4(addr) = server.addr else {
        unreachable!("bound on IPv4")
    };
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", addr.port())
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("dns discovery"),
    );
    fails_saying(&channel, "svc.scale.test. does not exist (NXDOMAIN)").await;
    dns.set(&[*addr.ip()]).await;
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("seen once created");
    assert_eq!(hello(&channel, None).await, Ok(server.addr));
    server.shutdown().await;
}

/// The negative TTL of the half a name lacks (no AAAA, SOA minimum 1 s) does not shorten the
/// wait on the half it has (A, TTL 60 s): no lookup for 2.5 s after the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_half_does_not_shorten_the_ttl_of_the_other() {
    let dns = Dns::start().await;
    // A server that is up: a failing connection would make the discovery look again early.
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let SocketAddr::V4(addr) = server.addr else {
        unreachable!("bound on IPv4")
    };
    let svc = dns.name.clone();
    dns.set_records(&svc, RecordType::A, 60, vec![RData::A(A(*addr.ip()))])
        .await;
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", addr.port())
            .server(dns.addr)
            .min_ttl(Duration::from_millis(100))
            .start()
            .expect("dns discovery"),
    );
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up from DNS");
    let asked = dns.asked.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = dns.asked.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(later, asked, "looked up again before the A record's TTL");
    server.shutdown().await;
}
