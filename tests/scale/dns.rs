//! DNS discovery against a real DNS server (hickory-server, in process, UDP on port 0) whose
//! A records change during the test.

use super::support::{run_calls, shares, Server};
use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use sockrpc::service::balance::{BalanceBuilder, RoundRobin};
use sockrpc::service::discovery::dns::DnsDiscovery;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// A one-zone DNS server whose `svc.scale.test.` A records the test sets.
struct Dns {
    addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    name: Name,
    _server: ServerFuture<Catalog>,
}

impl Dns {
    async fn start() -> Dns {
        let origin = Name::from_str("scale.test.").expect("origin");
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_str("ns.scale.test.").expect("ns"),
            Name::from_str("admin.scale.test.").expect("admin"),
            1,
            60,
            60,
            60,
            1,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        let object: Arc<dyn AuthorityObject> = zone.clone();
        catalog.upsert(LowerName::from(&origin), vec![object]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        Dns {
            addr,
            zone,
            name: Name::from_str("svc.scale.test.").expect("name"),
            _server: server,
        }
    }

    /// Sets the A records of `svc.scale.test.`, TTL 1 s.
    async fn set(&self, ips: &[Ipv4Addr]) {
        let data = ips.iter().map(|ip| RData::A(A(*ip))).collect();
        self.set_records(&self.name.clone(), RecordType::A, 1, data)
            .await;
    }

    /// Replaces the `kind` records of `name` (an empty list removes them).
    async fn set_records(&self, name: &Name, kind: RecordType, ttl: u32, data: Vec<RData>) {
        let key = RrKey::new(LowerName::from(name), kind);
        let mut records = self.zone.records_mut().await;
        if data.is_empty() {
            records.remove(&key);
            return;
        }
        let mut set = RecordSet::with_ttl(name.clone(), kind, ttl);
        for rdata in data {
            set.add_rdata(rdata);
        }
        records.insert(key, Arc::new(set));
    }
}

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
    for _ in 0..20 {
        let first = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = first.local_addr().expect("addr").port();
        let (Ok(second), Ok(third)) = (
            tokio::net::TcpListener::bind(("127.0.0.2", port)).await,
            tokio::net::TcpListener::bind(("127.0.0.3", port)).await,
        ) else {
            continue;
        };
        return [first, second, third].map(|l| Server::on(l, Duration::ZERO));
    }
    panic!("no port free on 127.0.0.1, .2 and .3 in 20 tries");
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

fn name(text: &str) -> Name {
    Name::from_str(text).expect("a DNS name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_uses_the_best_priority_and_its_weights() {
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
    let srv = |priority, weight, i: usize| {
        RData::SRV(SRV::new(
            priority,
            weight,
            servers[i].addr.port(),
            name(hosts[i]),
        ))
    };
    let service = name("_greeter._tcp.scale.test.");
    dns.set_records(
        &service,
        RecordType::SRV,
        1,
        vec![srv(10, 3, 0), srv(10, 1, 1), srv(20, 1, 2)],
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
        .ready(2, Duration::from_secs(10))
        .await
        .expect("priority 10 up");
    let weights: Vec<(String, u32)> = channel
        .stats()
        .into_iter()
        .map(|s| (s.key, s.weight))
        .collect();
    assert_eq!(
        weights,
        vec![
            (servers[0].addr.to_string(), 3),
            (servers[1].addr.to_string(), 1)
        ],
        "priority 20 stays out while priority 10 resolves"
    );
    // Priority 10 gone: the priority 20 record takes over.
    dns.set_records(&service, RecordType::SRV, 1, vec![srv(20, 1, 2)])
        .await;
    let mut keys = Vec::new();
    for _ in 0..100 {
        keys = channel.stats().into_iter().map(|s| s.key).collect();
        if keys == [servers[2].addr.to_string()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(keys, [servers[2].addr.to_string()]);
    for server in servers {
        server.shutdown().await;
    }
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
