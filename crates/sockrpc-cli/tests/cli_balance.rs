//! `sockrpc bench` over several servers (`--target tcp://A,tcp://B,…` and `dns://NAME:PORT`,
//! `--balance`), `serve --delay`, and the health service `serve` registers. Servers run on
//! 127.0.0.1, .2 and .3; every wait is bounded, and no test asserts a speed.

mod support;

use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryAuthority;
use sockrpc_health::pb::health_client::HealthClient;
use sockrpc_health::pb::HealthCheckRequest;
use sockrpc_health::ServingStatus;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use support::*;

/// `sockrpc serve --tcp ADDR [extra]`: the child and its sockrpc address.
fn serve(addr: &str, extra: &[&str]) -> (Server, SocketAddr) {
    let (server, lines) = spawn_server(
        sockrpc()
            .args(["serve", "--tcp", addr, "--workers", "1"])
            .args(extra),
    );
    let line = first_line(&lines);
    let addr = tcp_addr(&line);
    (server, addr)
}

/// Runs a balanced bench and returns its one row's `servers` map.
fn balanced_bench(target: &str, balance: &str, extra: &[&str]) -> BTreeMap<String, u64> {
    let json = temp_path(&format!("balance-{balance}.json"));
    run_ok(
        sockrpc()
            .args(["bench", "--target", target, "--balance", balance])
            .args(["--calls", "1500", "--warmup", "100", "--concurrency", "4"])
            .args(["--payload", "64", "--json"])
            .arg(&json)
            .args(extra),
    );
    let report = read_json(&json);
    let row = clean_row(&report, "sockrpc-balanced", 64);
    let servers: BTreeMap<String, u64> = row["servers"]
        .as_object()
        .unwrap_or_else(|| panic!("no servers in {row:#}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect();
    assert_eq!(
        servers.values().sum::<u64>(),
        row["calls"].as_u64().expect("calls"),
        "{row:#}"
    );
    servers
}

#[test]
fn bench_spreads_calls_and_p2c_avoids_the_slow_server() {
    let (_a, a) = serve("127.0.0.1:0", &[]);
    let (_b, b) = serve("127.0.0.2:0", &[]);
    let (_c, slow) = serve("127.0.0.3:0", &["--delay", "5ms"]);
    let target = format!("tcp://{a},tcp://{b},tcp://{slow}");

    let rr = balanced_bench(&target, "round-robin", &[]);
    assert_eq!(rr.len(), 3, "{rr:?}");
    for (server, calls) in &rr {
        assert!((400..=600).contains(calls), "{server}: {calls} of 1500");
    }
    let p2c = balanced_bench(&target, "p2c", &[]);
    let slow_calls = p2c.get(&slow.to_string()).copied().unwrap_or(0);
    assert!(
        slow_calls < 300,
        "p2c sent the slow server {slow_calls} of 1500: {p2c:?}"
    );
    let hash = balanced_bench(&target, "hash", &[]);
    assert_eq!(hash.len(), 3, "{hash:?}");
    // Every call on the first server of the target that takes calls.
    let first = balanced_bench(&target, "pick-first", &[]);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first.contains_key(&a.to_string()), "{first:?}");
}

#[test]
fn bench_follows_a_dns_name() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Two servers on one port (A records carry none) at 127.0.0.1 and .2.
    let (servers, port) = (0..20)
        .find_map(|_| {
            let (first, a) = serve("127.0.0.1:0", &[]);
            let second = std::net::TcpListener::bind(("127.0.0.2", a.port())).ok()?;
            drop(second);
            let (second, _) = serve(&format!("127.0.0.2:{}", a.port()), &[]);
            Some(([first, second], a.port()))
        })
        .expect("a port free on both addresses");
    let dns = runtime.block_on(async {
        let origin = Name::from_str("bench.test.").expect("origin");
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let ns = Name::from_str("ns.bench.test.").expect("ns");
        let soa = SOA::new(ns.clone(), ns, 1, 60, 60, 60, 1);
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        let name = Name::from_str("svc.bench.test.").expect("name");
        let mut set = RecordSet::with_ttl(name.clone(), RecordType::A, 30);
        for last in [1, 2] {
            set.add_rdata(RData::A(A::new(127, 0, 0, last)));
        }
        zone.records_get_mut().insert(
            RrKey::new(LowerName::from(&name), RecordType::A),
            Arc::new(set),
        );
        let mut catalog = Catalog::new();
        let zone: Arc<dyn AuthorityObject> = Arc::new(zone);
        catalog.upsert(LowerName::from(&origin), vec![zone]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = socket.local_addr().expect("addr");
        let mut server = hickory_server::ServerFuture::new(catalog);
        server.register_socket(socket);
        (server, addr)
    });
    let target = format!("dns://svc.bench.test.:{port}");
    let servers_seen = balanced_bench(
        &target,
        "round-robin",
        &["--dns-server", &dns.1.to_string()],
    );
    assert_eq!(servers_seen.len(), 2, "{servers_seen:?}");
    drop(servers);
}

#[test]
fn serve_registers_health_for_its_bench_service() {
    let (_server, addr) = serve("127.0.0.1:0", &[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = HealthClient::connect(format!("tcp://{addr}"))
            .await
            .expect("connect");
        for service in ["", "sockrpc.bench.Bench"] {
            let mut request = sockrpc::Request::new(HealthCheckRequest {
                service: service.into(),
            });
            request.set_timeout(Duration::from_secs(5));
            let answer = client.check(request).await.expect("check").into_inner();
            assert_eq!(answer.status(), ServingStatus::Serving, "{service:?}");
        }
    });
}

#[test]
fn bad_balance_flags_are_clear_errors() {
    let cases: [(&[&str], &str); 3] = [
        (&["bench", "--balance", "p2c"], "--target"),
        (
            &["bench", "--target", "dns://svc.test:99999"],
            "is not a port",
        ),
        (&["serve", "--delay", "5 parsecs"], "unit"),
    ];
    for (args, expected) in cases {
        let output = run(sockrpc().args(args));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
