//! What a grpc-go user expects of `dns:` targets and of the answers behind them, against a
//! real DNS server (`dns_server.rs`): the target forms (`dns://DNS-IP:PORT/NAME:PORT` asking
//! that server, upper case, no trailing dot; a DNS server named by host name), CNAME chains and a CNAME to a name that does not
//! exist, and an answer too long for UDP (100 addresses) that the resolver asks again over TCP.

use super::dns_server::{name, Dns};
use super::support::{hello, Server};
use hickory_server::proto::rr::rdata::{A, CNAME};
use hickory_server::proto::rr::{RData, RecordType};
use sockrpc::service::balance::Balanced;
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::{Channel, Code};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Follows `discovery`, looking up at least every 2 s.
fn follow(discovery: DnsDiscovery) -> Balanced {
    Channel::balance(
        discovery
            .min_ttl(Duration::from_millis(200))
            .max_ttl(Duration::from_secs(2))
            .start()
            .expect("dns discovery"),
    )
}

/// A server on 127.0.0.1 and its port.
async fn server() -> (Server, u16) {
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let port = server.addr.port();
    (server, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_go_s_target_forms_ask_the_server_they_name() {
    let dns = Dns::start().await;
    let (server, port) = server().await;
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    // The DNS server in the authority; the name in upper case and without its trailing dot.
    let target = format!("dns://{}/SVC.Scale.TEST:{port}", dns.addr);
    let channel = follow(DnsDiscovery::target(&target).expect("a DNS target"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up from the DNS server the target names");
    assert_eq!(hello(&channel, None).await.expect("a call"), server.addr);
    // An IP literal, IPv4 or IPv6 in brackets: used as it is, no query.
    for literal in [
        format!("dns:///127.0.0.1:{port}"),
        format!("dns:[::1]:{port}"),
    ] {
        let channel = follow(DnsDiscovery::target(&literal).expect("a literal"));
        let want = if literal.contains("::1") {
            format!("[::1]:{port}")
        } else {
            format!("127.0.0.1:{port}")
        };
        let mut seen = false;
        for _ in 0..100 {
            if channel.stats().iter().any(|s| s.key == want) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "{literal}: {:?}", channel.stats());
    }
    // Malformed: refused at once, saying why.
    let status = DnsDiscovery::target("dns:///svc.scale.test:http").expect_err("bad port");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("not a port"), "{status:?}");
    server.shutdown().await;
}

/// grpc-go's dialer looks a DNS server's name up (`dns://localhost:5353/…`): so does the
/// lookup task. A name with no address says so when the call gives up, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_named_by_host_name_is_asked() {
    let dns = Dns::start().await;
    let (server, port) = server().await;
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    let target = format!("dns://localhost:{}/svc.scale.test:{port}", dns.addr.port());
    let channel = follow(DnsDiscovery::target(&target).expect("a DNS target"));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up from the DNS server named localhost");
    assert_eq!(hello(&channel, None).await.expect("a call"), server.addr);
    // A DNS server's name that does not resolve (`.invalid`, RFC 6761): the call waits for
    // the first answer and says what it waited for.
    let target = format!(
        "dns://nowhere.invalid:{}/svc.scale.test:{port}",
        dns.addr.port()
    );
    let channel = follow(DnsDiscovery::target(&target).expect("a DNS target"));
    let error = hello(&channel, None).await.expect_err("no DNS server");
    assert!(
        error.message().contains("nowhere.invalid"),
        "the call names the DNS server: {error:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_chain_resolves_and_a_cname_to_nowhere_empties_the_set() {
    let dns = Dns::start().await;
    let (server, port) = server().await;
    // alias -> middle -> svc (A 127.0.0.1).
    let cname = |to: &str| vec![RData::CNAME(CNAME(name(to)))];
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    dns.set_records(
        &name("middle.scale.test."),
        RecordType::CNAME,
        1,
        cname("svc.scale.test."),
    )
    .await;
    dns.set_records(
        &name("alias.scale.test."),
        RecordType::CNAME,
        1,
        cname("middle.scale.test."),
    )
    .await;
    let channel = follow(DnsDiscovery::ip("alias.scale.test.", port).server(dns.addr));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up through two CNAMEs");
    assert_eq!(hello(&channel, None).await.expect("a call"), server.addr);

    // The chain's end goes: the alias now points at a name that does not exist. As grpc-go
    // takes "not found", an empty answer: the endpoint leaves and calls fail at once saying so.
    dns.set_records(&name("svc.scale.test."), RecordType::A, 1, Vec::new())
        .await;
    let mut empty = false;
    for _ in 0..200 {
        if channel.stats().is_empty() {
            empty = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(empty, "the endpoint stayed: {:?}", channel.stats());
    let status = hello(&channel, None).await.expect_err("no address");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("alias.scale.test"), "{status:?}");

    // Back: the chain resolves again.
    dns.set_records(
        &name("svc.scale.test."),
        RecordType::A,
        1,
        vec![RData::A(A(Ipv4Addr::LOCALHOST))],
    )
    .await;
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("back through the chain");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_long_for_udp_is_asked_again_over_tcp() {
    let dns = Dns::with_tcp().await;
    let (server, port) = server().await;
    // 100 A records: about 1.6 KB, beyond the 1232-byte EDNS payload the resolver offers.
    let ips: Vec<Ipv4Addr> = (1..=100).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    dns.set(&ips).await;
    let channel = follow(DnsDiscovery::ip("svc.scale.test.", port).server(dns.addr));
    let mut count = 0;
    for _ in 0..200 {
        count = channel.stats().len();
        if count == ips.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count,
        ips.len(),
        "every address, not the truncated UDP answer's"
    );
    let want: SocketAddr = server.addr;
    assert!(channel.stats().iter().any(|s| s.key == want.to_string()));
    // 50 leave: the set follows.
    dns.set(&ips[..50]).await;
    for _ in 0..200 {
        count = channel.stats().len();
        if count == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count, 50, "{:?}", channel.stats().len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_addresses_come_in_one_udp_answer() {
    // UDP only: 50 A records (about 850 bytes) must fit the answer the resolver reads.
    let dns = Dns::start().await;
    let ips: Vec<Ipv4Addr> = (1..=50).map(|n| Ipv4Addr::new(127, 0, 0, n)).collect();
    dns.set(&ips).await;
    let channel = follow(DnsDiscovery::ip("svc.scale.test.", 9).server(dns.addr));
    let mut count = 0;
    for _ in 0..100 {
        count = channel.stats().len();
        if count == ips.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = match count {
        50 => String::new(),
        _ => format!("{:?}", hello(&channel, None).await),
    };
    assert_eq!(count, ips.len(), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_on_an_address_dns_drops_finishes() {
    let dns = Dns::start().await;
    // Each call takes 3 s: long enough for the record to go (TTL 1 s) while one is in flight.
    let server = Server::start("127.0.0.1", Duration::from_secs(3)).await;
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    let channel = follow(DnsDiscovery::ip("svc.scale.test.", server.addr.port()).server(dns.addr));
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("up from DNS");
    let in_flight = tokio::spawn({
        let channel = channel.clone();
        async move { hello(&channel, None).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    dns.set(&[]).await;
    let mut gone = false;
    for _ in 0..200 {
        if channel.stats().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the address stayed: {:?}", channel.stats());
    assert!(
        !in_flight.is_finished(),
        "the call ended before its address left"
    );
    let answered = in_flight.await.expect("call task");
    assert_eq!(answered.expect("the call in flight finishes"), server.addr);
    server.shutdown().await;
}
