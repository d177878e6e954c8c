//! DNS discovery against a real DNS server (`dns_server.rs`) whose records change during the
//! test, and which can be made to fail A queries (SERVFAIL).

use super::dns_server::{name, Dns};
use super::support::{hello, run_calls, shares, Server};
use hickory_server::proto::rr::rdata::{A, AAAA, SRV};
use hickory_server::proto::rr::{RData, RecordType};
use sockrpc::service::balance::{BalanceBuilder, RoundRobin};
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::transport::backoff::Backoff;
use sockrpc::transport::endpoint::Endpoint;
use sockrpc::Channel;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Established TCP connections to `addr`, from /proc/net/tcp (IPv4 loopback only).
fn established_to(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else { return 0 };
    let ip = u32::from_le_bytes(v4.ip().octets());
    let remote = format!("{ip:08X}:{:04X}", v4.port());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && cols[2] == remote && cols[3] == "01"
        })
        .count()
}

/// Three servers on one port at 127.0.0.1, .2 and .3 (A records carry no port).
async fn three_on_one_port() -> [Server; 3] {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    listeners.map(|l| Server::on(l, Duration::ZERO))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_added_and_removed_mid_test_follow_the_ttl() {
    let dns = Dns::start().await;
    let servers = three_on_one_port().await;
    let port = servers[0].addr.port();
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    dns.set(&[ip(1), ip(2)]).await;

    let discovery = DnsDiscovery::ip("svc.scale.test.", port)
        .server(dns.addr)
        .min_ttl(Duration::from_millis(200))
        .max_ttl(Duration::from_secs(5))
        .start()
        .expect("dns discovery");
    let channel = BalanceBuilder::default()
        .picker(RoundRobin::new())
        .build(discovery);
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("two from DNS");
    let first = shares(&run_calls(&channel, 200, 4, |_| {}).await);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(!first.contains_key(&servers[2].addr));

    // A third record: it takes calls once the TTL (1 s) has run out and DNS was asked again.
    dns.set(&[ip(1), ip(2), ip(3)]).await;
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("third after re-resolution");
    let added = shares(&run_calls(&channel, 300, 4, |_| {}).await);
    assert!(
        added.get(&servers[2].addr).copied().unwrap_or(0) > 50,
        "{added:?}"
    );

    // 127.0.0.2 leaves DNS: no new calls, and its connections close.
    dns.set(&[ip(1), ip(3)]).await;
    let gone = servers[1].addr;
    let mut left = false;
    for _ in 0..100 {
        if channel.stats().iter().all(|s| s.key != gone.to_string()) {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        left,
        "removed record still in the set: {:?}",
        channel.stats()
    );
    let results = run_calls(&channel, 300, 4, |_| {}).await;
    assert!(results.iter().all(Result::is_ok));
    let after = shares(&results);
    assert!(!after.contains_key(&gone), "{after:?}");
    let mut drained = false;
    for _ in 0..100 {
        if established_to(gone) == 0 {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(drained, "connections to the removed address stayed open");
    assert!(established_to(servers[0].addr) > 0, "the kept ones stay");
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_priorities_fail_over_and_weights_add_up() {
    let dns = Dns::start().await;
    let servers = [
        Server::start("127.0.0.1", Duration::ZERO).await,
        Server::start("127.0.0.2", Duration::ZERO).await,
        Server::start("127.0.0.3", Duration::ZERO).await,
    ];
    let hosts = ["a.scale.test.", "b.scale.test.", "c.scale.test."];
    for (host, server) in hosts.iter().zip(&servers) {
        let SocketAddr::V4(v4) = server.addr else {
            unreachable!("bound on IPv4")
        };
        dns.set_records(&name(host), RecordType::A, 1, vec![RData::A(A(*v4.ip()))])
            .await;
    }
    let ports: Vec<u16> = servers.iter().map(|s| s.addr.port()).collect();
    let srv = |priority, weight, i: usize| {
        RData::SRV(SRV::new(priority, weight, ports[i], name(hosts[i])))
    };
    let service = name("_greeter._tcp.scale.test.");
    dns.set_records(
        &service,
        RecordType::SRV,
        1,
        // Two records name the first server: their weights add up (3 + 2).
        vec![srv(10, 3, 0), srv(10, 2, 0), srv(10, 1, 1), srv(20, 1, 2)],
    )
    .await;
    let channel = sockrpc::Channel::balance(
        DnsDiscovery::srv("_greeter._tcp.scale.test.")
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("srv discovery"),
    );
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("all three up");
    let places: Vec<(String, u32, u32)> = channel
        .stats()
        .into_iter()
        .map(|s| (s.key, s.weight, s.priority))
        .collect();
    let [one, two, three] = servers;
    let (a, b, c) = (one.addr, two.addr, three.addr);
    assert_eq!(
        places,
        vec![
            (a.to_string(), 5, 10),
            (b.to_string(), 1, 10),
            (c.to_string(), 1, 20)
        ]
    );
    // Priority 20 takes no call while priority 10 has a server up.
    let results = run_calls(&channel, 200, 8, |_| {}).await;
    let answered = shares(&results);
    assert_eq!(answered.values().sum::<usize>(), 200, "{results:?}");
    assert!(!answered.contains_key(&c), "priority 20 used: {answered:?}");

    // Both priority 10 servers stop: the records stay, and calls fail over to priority 20
    // (RFC 2782: a worse priority when none of the better can be reached).
    one.shutdown().await;
    two.shutdown().await;
    let mut failed_over = false;
    for _ in 0..100 {
        if hello(&channel, None).await == Ok(c) {
            failed_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failed_over, "never failed over: {:?}", channel.stats());
    let results = run_calls(&channel, 50, 4, |_| {}).await;
    assert_eq!(shares(&results).get(&c), Some(&50), "{results:?}");

    // The first one comes back on its address: calls return to priority 10.
    let listener = sockrpc_tests::rebind::rebind(a).await;
    let back = Server::on(listener, Duration::ZERO);
    let mut returned = false;
    for _ in 0..300 {
        if hello(&channel, None).await == Ok(a) {
            returned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(returned, "never went back: {:?}", channel.stats());

    // Priority 10's records go: only the priority 20 endpoint is left.
    dns.set_records(&service, RecordType::SRV, 1, vec![srv(20, 1, 2)])
        .await;
    wait_for_keys(&channel, &[c.to_string()]).await;
    back.shutdown().await;
    three.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connection_makes_dns_look_again_before_the_ttl() {
    let dns = Dns::start().await;
    let servers = three_on_one_port().await;
    let port = servers[0].addr.port();
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let svc = dns.name.clone();
    let a = |ips: &[u8]| ips.iter().map(|n| RData::A(A(ip(*n)))).collect::<Vec<_>>();
    // A 60 s TTL: without the early look, the change below would wait a minute.
    dns.set_records(&svc, RecordType::A, 60, a(&[1, 2])).await;
    let channel = sockrpc::Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", port)
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("dns discovery"),
    );
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("two up");
    dns.set_records(&svc, RecordType::A, 60, a(&[1, 3])).await;
    let [one, two, three] = servers;
    let started = tokio::time::Instant::now();
    two.shutdown().await;
    let want = three.addr.to_string();
    let mut seen = false;
    for _ in 0..200 {
        if channel.stats().iter().any(|s| s.key == want) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "no early lookup: {:?}", channel.stats());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    one.shutdown().await;
    three.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_keep_failing_do_not_make_dns_look_again_every_min_ttl() {
    let dns = Dns::start().await;
    // A port nothing listens on, at 20 addresses: 20 endpoints whose connections keep failing,
    // tried again every 50 ms (each failure a reason to look again early), for a name whose
    // answer does not change.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let records = (1..=20)
        .map(|n| RData::A(A(Ipv4Addr::new(127, 0, 0, n))))
        .collect();
    dns.set_records(&dns.name, RecordType::A, 300, records)
        .await;
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", port)
            .server(dns.addr)
            .min_ttl(Duration::from_millis(100))
            .endpoint(|addr| {
                let again = Duration::from_millis(50);
                Endpoint::new(addr.ip().to_string(), addr.port())
                    .backoff(Backoff::starting_at(again).max(again))
            })
            .start()
            .expect("dns discovery"),
    );
    for _ in 0..200 {
        if channel.stats().len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(channel.stats().len(), 20, "{:?}", channel.stats());
    let before = dns.asked.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Early lookups that find nothing new back off from `min_ttl` ×1.6 (± 20 %) towards
    // grpc-go's 30 s: about 6 lookups in 3 s, an A and an AAAA query each. One every `min_ttl`
    // would be 30 lookups, 60 queries.
    let asked = dns.asked.load(Ordering::SeqCst) - before;
    assert!((2..=30).contains(&asked), "{asked} queries in 3 s");
    drop(channel);
}

/// The endpoint keys a balanced channel holds once they equal `want`, within 10 s.
async fn wait_for_keys(channel: &sockrpc::service::balance::Balanced, want: &[String]) {
    let mut keys = Vec::new();
    for _ in 0..200 {
        keys = channel.stats().into_iter().map(|s| s.key).collect();
        if keys == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("endpoints {keys:?}, want {want:?}");
}

/// A name with A and AAAA records gets both (hickory's default asks AAAA only when A has
/// none); an A query that fails (SERVFAIL) keeps the last answer whole instead of leaving the
/// IPv6 half; a name with nothing to answer says why in the status of a call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_both_count_and_a_failed_half_keeps_the_last_answer() {
    let dns = Dns::start().await;
    let v4 = Ipv4Addr::new(127, 0, 0, 2);
    dns.set(&[v4]).await;
    dns.set_records(
        &dns.name,
        RecordType::AAAA,
        1,
        vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))],
    )
    .await;
    let channel = BalanceBuilder::default()
        .wait_for_endpoint(Duration::from_millis(300))
        .build(
            DnsDiscovery::ip("svc.scale.test.", 50051)
                .server(dns.addr)
                .min_ttl(Duration::from_millis(100))
                .start()
                .expect("discovery"),
        );
    let both = ["127.0.0.2:50051".to_owned(), "[::1]:50051".to_owned()];
    wait_for_keys(&channel, &both).await;
    // A fails from now on: the next lookups (TTL 1 s) fail, and the set stays whole.
    dns.fail_a.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        if dns.failed.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dns.failed.load(Ordering::SeqCst) >= 2,
        "two A lookups failed"
    );
    let keys: Vec<String> = channel.stats().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, both, "a failed A query keeps the last answer");

    // A name whose only records are A, failing: a call says why nothing can take it.
    let lonely = name("lonely.scale.test.");
    dns.set_records(&lonely, RecordType::A, 1, vec![RData::A(A(v4))])
        .await;
    let channel = BalanceBuilder::default()
        .wait_for_endpoint(Duration::from_millis(300))
        .build(
            DnsDiscovery::ip("lonely.scale.test.", 50051)
                .server(dns.addr)
                .start()
                .expect("discovery"),
        );
    let error = channel
        .ready(1, Duration::from_secs(5))
        .await
        .expect_err("no endpoint");
    let want = "DNS lookup failed: A lonely.scale.test.: the DNS server answered Server Failure";
    assert!(error.message().contains(want), "{error:?}");

    // With no answer yet, the half that came is used: a name whose A fails and whose AAAA
    // answers resolves to its IPv6 address (a server that never answers one type must not keep
    // a name from ever resolving), and says what failed.
    let half = name("half.scale.test.");
    dns.set_records(&half, RecordType::A, 1, vec![RData::A(A(v4))])
        .await;
    dns.set_records(
        &half,
        RecordType::AAAA,
        1,
        vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))],
    )
    .await;
    let channel = Channel::balance(
        DnsDiscovery::ip("half.scale.test.", 50051)
            .server(dns.addr)
            .start()
            .expect("discovery"),
    );
    wait_for_keys(&channel, &["[::1]:50051".to_owned()]).await;
}

/// A server answering `svc.scale.test.` A 127.0.0.1 and SERVFAIL to every AAAA query, and a
/// channel following the name (port 50051), once it holds 127.0.0.1.
async fn svc_at_127_0_0_1_with_aaaa_failing() -> (Dns, sockrpc::service::balance::Balanced) {
    let dns = Dns::start().await;
    dns.fail_aaaa.store(true, Ordering::SeqCst);
    dns.set(&[Ipv4Addr::LOCALHOST]).await;
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("discovery"),
    );
    wait_for_keys(&channel, &["127.0.0.1:50051".to_owned()]).await;
    (dns, channel)
}

/// An AAAA query that always fails does not freeze the IPv4 addresses: the half that answers
/// is taken (the failed half keeps its last addresses, none here), so a moved A record is
/// followed, as grpc-go follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aaaa_query_that_always_fails_does_not_freeze_the_ipv4_addresses() {
    let (dns, channel) = svc_at_127_0_0_1_with_aaaa_failing().await;
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    dns.set(&[ip(2)]).await;
    wait_for_keys(&channel, &["127.0.0.2:50051".to_owned()]).await;
    assert!(
        dns.failed.load(Ordering::SeqCst) >= 2,
        "AAAA failed each time"
    );
    // Nothing listens there: a call says so, and that discovery's last lookup failed in part.
    let status = hello(&channel, None).await.expect_err("nothing listens");
    assert_eq!(status.code(), sockrpc::Code::Unavailable, "{status:?}");
    let want = "DNS lookup failed: AAAA svc.scale.test.: the DNS server answered Server Failure";
    assert!(status.message().contains(want), "{status:?}");
}

/// With AAAA failing throughout, a name deleted from DNS still leaves (NXDOMAIN for A says it
/// does not exist), and an SRV target's moved A record is followed (one family of a target
/// failing does not freeze the SRV answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_aaaa_does_not_keep_a_deleted_name_nor_freeze_srv_targets() {
    let (dns, channel) = svc_at_127_0_0_1_with_aaaa_failing().await;
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    dns.set(&[]).await;
    wait_for_keys(&channel, &[]).await;

    let target = name("target.scale.test.");
    dns.set_records(&target, RecordType::A, 1, vec![RData::A(A(ip(1)))])
        .await;
    let service = name("_moved._tcp.scale.test.");
    let srv = RData::SRV(SRV::new(10, 1, 50051, target.clone()));
    dns.set_records(&service, RecordType::SRV, 1, vec![srv])
        .await;
    let channel = Channel::balance(
        DnsDiscovery::srv("_moved._tcp.scale.test.")
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("discovery"),
    );
    wait_for_keys(&channel, &["127.0.0.1:50051".to_owned()]).await;
    dns.set_records(&target, RecordType::A, 1, vec![RData::A(A(ip(2)))])
        .await;
    wait_for_keys(&channel, &["127.0.0.2:50051".to_owned()]).await;
}

#[test]
fn names_no_lookup_can_answer_are_refused_at_start() {
    for bad in ["", ".", "127.0.0.1:53/svc.test", "svc test"] {
        let status = DnsDiscovery::ip(bad, 1).start().expect_err(bad);
        assert_eq!(
            status.code(),
            sockrpc::Code::InvalidArgument,
            "{bad}: {status:?}"
        );
    }
}

/// Durations of `Duration::MAX` (a tonic user's "never") in the DNS discovery's setters look up
/// and wait, never panic: an SRV lookup's deadline for its targets was now plus the resolver's
/// timeout × attempts × 2, saturated at `Duration::MAX` and added to the clock, which panicked
/// the discovery's task before it named any endpoint; a `min_ttl` of it was added to the
/// lookup's time for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_discovery_with_durations_of_duration_max() {
    let dns = Dns::start().await;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let SocketAddr::V4(v4) = server.addr else {
        unreachable!("bound on IPv4")
    };
    let host = "a.scale.test.";
    dns.set_records(&name(host), RecordType::A, 1, vec![RData::A(A(*v4.ip()))])
        .await;
    let srv = RData::SRV(SRV::new(10, 1, server.addr.port(), name(host)));
    let service = "_greeter._tcp.scale.test.";
    dns.set_records(&name(service), RecordType::SRV, 1, vec![srv])
        .await;
    let channel = Channel::balance(
        DnsDiscovery::srv(service)
            .server(dns.addr)
            .timeout(Duration::MAX)
            .min_ttl(Duration::MAX)
            .max_ttl(Duration::MAX)
            .start()
            .expect("srv discovery"),
    );
    channel
        .ready(1, Duration::from_secs(10))
        .await
        .expect("the server found");
    assert_eq!(hello(&channel, None).await, Ok(server.addr));
    // `ready` up to `Duration::MAX` ("as long as it takes") too: it added `within` to the clock.
    tokio::time::timeout(Duration::from_secs(10), channel.ready(1, Duration::MAX))
        .await
        .expect("ready in time")
        .expect("ready");
    server.shutdown().await;
}
