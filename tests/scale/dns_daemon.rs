//! DNS discovery against a real DNS server daemon, dnsmasq (`dnsmasq_process.rs`), not only the
//! in-process hickory-server the other DNS tests use: a server written by others, answering as
//! deployments see it (TTL 0, negative answers without an SOA, REFUSED outside its zone, a
//! truncated UDP answer and the whole one over TCP, a long TXT string cut into 255-byte
//! strings). With the tests package's `real-dns` feature, which `.ci/run` turns on.

use super::dnsmasq_process::Dnsmasq;
use super::support::{hello, run_calls, shares, Server};
use sockrpc::service::balance::{Balanced, EndpointStats};
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::service::discovery::ServiceConfigFeed;
use sockrpc::{Channel, Code};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

/// Follows `target` (a `dns://` target naming the daemon) with lookups every 200 ms to 2 s.
pub(super) fn follow(target: &str) -> Balanced {
    Channel::balance(follow_discovery(target).start().expect("dns discovery"))
}

pub(super) fn follow_discovery(target: &str) -> DnsDiscovery {
    DnsDiscovery::target(target)
        .expect("a valid target")
        .min_ttl(Duration::from_millis(200))
        .max_ttl(Duration::from_secs(2))
}

/// The channel's endpoints once `want` holds of them (polled for up to 10 s).
pub(super) async fn endpoints_when(
    channel: &Balanced,
    what: &str,
    want: impl Fn(&[EndpointStats]) -> bool,
) -> Vec<EndpointStats> {
    for _ in 0..200 {
        let stats = channel.stats();
        if want(&stats) {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: {:?}", channel.stats());
}

/// Waits until the channel's endpoint keys are exactly `keys`.
pub(super) async fn keys_become(channel: &Balanced, keys: &[String]) {
    let want: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    endpoints_when(channel, &format!("want {want:?}"), |stats| {
        stats
            .iter()
            .map(|s| s.key.as_str())
            .collect::<BTreeSet<_>>()
            == want
    })
    .await;
}

/// A call fails at once (well within its 5 s deadline), `UNAVAILABLE`, saying `why`.
pub(super) async fn fails_saying(channel: &Balanced, why: &str) {
    let started = tokio::time::Instant::now();
    let status = hello(channel, None).await.expect_err("no endpoint");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(why), "want {why:?} in {status:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "not at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_only_aaaa_only_and_both_in_any_case_with_or_without_the_trailing_dot() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let servers = listeners.map(|l| Server::on(l, Duration::ZERO));
    let port = servers[0].addr.port();
    let dns = Dnsmasq::start(
        &[
            // Two lines for one name: two A records.
            "host-record=v4.scale.test,127.0.0.1",
            "host-record=v4.scale.test,127.0.0.2",
            "host-record=v6.scale.test,::1",
            "host-record=both.scale.test,127.0.0.3,::1",
        ],
        "",
    )
    .await;
    let at = |ip: &str| format!("{ip}:{port}");
    let v4 = follow(&format!("dns://{}/v4.scale.test:{port}", dns.addr));
    keys_become(&v4, &[at("127.0.0.1"), at("127.0.0.2")]).await;
    v4.ready(2, Duration::from_secs(10)).await.expect("both up");
    let answered = shares(&run_calls(&v4, 100, 4, |_| {}).await);
    assert_eq!(
        answered.len(),
        2,
        "calls reach both addresses: {answered:?}"
    );

    // AAAA only (the A query is NODATA): calls reach the server on ::1. And both families.
    let six = Server::start("::1", Duration::ZERO).await;
    let v6 = follow(&format!(
        "dns://{}/v6.scale.test:{}",
        dns.addr,
        six.addr.port()
    ));
    keys_become(&v6, &[format!("[::1]:{}", six.addr.port())]).await;
    assert_eq!(hello(&v6, None).await, Ok(six.addr));
    let both = follow(&format!("dns://{}/both.scale.test:{port}", dns.addr));
    keys_become(&both, &[at("127.0.0.3"), at("[::1]")]).await;

    // The DNS server named by host name (`localhost`: the hosts file's 127.0.0.1, perhaps ::1
    // too, where nothing answers).
    let named = follow(&format!(
        "dns://localhost:{}/v4.scale.test:{port}",
        dns.addr.port()
    ));
    keys_become(&named, &[at("127.0.0.1"), at("127.0.0.2")]).await;

    // DNS names are case-insensitive, and a trailing dot names the same (fully qualified)
    // name; the CLI's `dns://NAME:PORT` form with `.server` asks the same daemon.
    for name in ["V4.Scale.TEST", "v4.scale.test.", "V4.SCALE.TEST."] {
        let channel = follow(&format!("dns://{}/{name}:{port}", dns.addr));
        keys_become(&channel, &[at("127.0.0.1"), at("127.0.0.2")]).await;
        let channel = Channel::balance(
            follow_discovery(&format!("dns://{name}:{port}"))
                .server(dns.addr)
                .start()
                .expect("dns discovery"),
        );
        keys_become(&channel, &[at("127.0.0.1"), at("127.0.0.2")]).await;
    }
    for server in servers {
        server.shutdown().await;
    }
    six.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_nodata_and_refused_each_say_what_the_daemon_answered() {
    let dns = Dnsmasq::start(&["txt-record=textonly.scale.test,\"v=spf1 -all\""], "").await;
    // A name of the zone the daemon does not know: NXDOMAIN (no SOA with it).
    let gone = follow(&format!("dns://{}/gone.scale.test:50051", dns.addr));
    fails_saying(&gone, "gone.scale.test does not exist (NXDOMAIN)").await;
    // A name with records, none of them addresses: NOERROR with no answer (NODATA).
    let textonly = follow(&format!("dns://{}/textonly.scale.test:50051", dns.addr));
    fails_saying(&textonly, "textonly.scale.test has no A or AAAA records").await;
    // A name outside the daemon's zone, which it has nowhere to forward: REFUSED, an error.
    let outside = follow(&format!("dns://{}/svc.elsewhere.example:50051", dns.addr));
    fails_saying(&outside, "the DNS server answered Query Refused (5)").await;
    // An SRV name that does not exist.
    let srv = Channel::balance(
        DnsDiscovery::srv("_none._tcp.scale.test")
            .server(dns.addr)
            .start()
            .expect("dns discovery"),
    );
    fails_saying(&srv, "SRV _none._tcp.scale.test does not exist (NXDOMAIN)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_file_changed_under_the_daemon_is_followed() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let servers = listeners.map(|l| Server::on(l, Duration::ZERO));
    let port = servers[0].addr.port();
    let at = |ip: &str| format!("{ip}:{port}");
    let dns = Dnsmasq::start(&[], "127.0.0.1 svc.scale.test\n127.0.0.2 svc.scale.test\n").await;
    let channel = follow(&format!("dns://{}/svc.scale.test:{port}", dns.addr));
    keys_become(&channel, &[at("127.0.0.1"), at("127.0.0.2")]).await;

    // One address replaced (SIGHUP: dnsmasq reads its hosts files again).
    dns.set_hosts("127.0.0.2 svc.scale.test\n127.0.0.3 svc.scale.test\n");
    keys_become(&channel, &[at("127.0.0.2"), at("127.0.0.3")]).await;
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("both up");
    let answered = shares(&run_calls(&channel, 100, 4, |_| {}).await);
    let expected: BTreeSet<SocketAddr> = [servers[1].addr, servers[2].addr].into();
    assert_eq!(answered.keys().copied().collect::<BTreeSet<_>>(), expected);

    // The name leaves the daemon: NXDOMAIN empties the set, and calls say why.
    dns.set_hosts("");
    keys_become(&channel, &[]).await;
    fails_saying(&channel, "svc.scale.test does not exist (NXDOMAIN)").await;

    // It comes back.
    dns.set_hosts("127.0.0.1 svc.scale.test\n");
    keys_become(&channel, &[at("127.0.0.1")]).await;
    assert_eq!(hello(&channel, None).await, Ok(servers[0].addr));
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_down_keeps_the_last_addresses_and_a_restarted_one_is_followed() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let servers = listeners.map(|l| Server::on(l, Duration::ZERO));
    let port = servers[0].addr.port();
    let at = |ip: &str| format!("{ip}:{port}");
    let mut dns = Dnsmasq::start(&[], "127.0.0.1 svc.scale.test\n").await;
    let channel = follow(&format!("dns://{}/svc.scale.test:{port}", dns.addr));
    keys_become(&channel, &[at("127.0.0.1")]).await;

    // Down: each lookup fails at once ("connection refused"), and the address stays.
    dns.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(hello(&channel, None).await, Ok(servers[0].addr));
    let keys: Vec<String> = channel.stats().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, [at("127.0.0.1")]);

    // Back on the same port with another address: followed within the backoff (≤ 2 s here).
    dns.write_hosts("127.0.0.2 svc.scale.test\n");
    dns.restart().await;
    keys_become(&channel, &[at("127.0.0.2")]).await;
    assert_eq!(hello(&channel, None).await, Ok(servers[1].addr));
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_targets_weights_priorities_and_a_target_of_several_addresses() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let servers = listeners.map(|l| Server::on(l, Duration::ZERO));
    let shared = servers[0].addr.port();
    let backup = Server::start("127.0.0.4", Duration::ZERO).await;
    let other = backup.addr.port();
    // dnsmasq's order: target, port, priority, weight. `a` twice at priority 10: weights add
    // up (3 + 2); `b` has two addresses; `c` is the backup, priority 20.
    let dns = Dnsmasq::start(
        &[
            &format!("srv-host=_greeter._tcp.scale.test,a.scale.test,{shared},10,3"),
            &format!("srv-host=_greeter._tcp.scale.test,a.scale.test,{shared},10,2"),
            &format!("srv-host=_greeter._tcp.scale.test,b.scale.test,{shared},10,1"),
            &format!("srv-host=_greeter._tcp.scale.test,c.scale.test,{other},20,1"),
            "host-record=a.scale.test,127.0.0.1",
            "host-record=b.scale.test,127.0.0.2",
            "host-record=b.scale.test,127.0.0.3",
            "host-record=c.scale.test,127.0.0.4",
        ],
        "",
    )
    .await;
    let channel = Channel::balance(
        DnsDiscovery::srv("_greeter._tcp.scale.test")
            .server(dns.addr)
            .min_ttl(Duration::from_millis(200))
            .start()
            .expect("srv discovery"),
    );
    let stats = endpoints_when(&channel, "four endpoints", |s| s.len() == 4).await;
    let mut places: Vec<(String, u32, u32)> = stats
        .into_iter()
        .map(|s| (s.key, s.weight, s.priority))
        .collect();
    places.sort();
    let at = |ip: &str, port: u16| format!("{ip}:{port}");
    assert_eq!(
        places,
        [
            (at("127.0.0.1", shared), 5, 10),
            (at("127.0.0.2", shared), 1, 10),
            (at("127.0.0.3", shared), 1, 10),
            (at("127.0.0.4", other), 1, 20),
        ]
    );
    // The best priority takes the calls.
    channel
        .ready(3, Duration::from_secs(10))
        .await
        .expect("priority 10 up");
    let answered = shares(&run_calls(&channel, 140, 4, |_| {}).await);
    assert!(!answered.contains_key(&backup.addr), "{answered:?}");
    assert_eq!(answered.len(), 3, "{answered:?}");
    for server in servers {
        server.shutdown().await;
    }
    backup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_config_longer_than_one_txt_string_is_read_whole() {
    // 300 bytes of a pattern no other part of the config has: dnsmasq cuts the record's text
    // into strings of 255 bytes, and the reader joins them with nothing between (gRFC A2).
    let marker: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let config = format!(
        r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter"}}], "timeout": "7s"}}], "x-marker": "{marker}"}}"#
    );
    let record = format!(
        r#"grpc_config=[{{"clientLanguage": ["go"], "serviceConfig": {{}}}}, {{"serviceConfig": {config}}}]"#
    );
    let escaped = record.replace('"', "\\\"");
    let dns = Dnsmasq::start(
        &[
            "host-record=svc.scale.test,127.0.0.1",
            &format!("txt-record=_grpc_config.svc.scale.test,\"{escaped}\""),
            // Another TXT record of the same name, not ours.
            "txt-record=_grpc_config.svc.scale.test,\"v=spf1 -all\"",
        ],
        "",
    )
    .await;
    let feed = ServiceConfigFeed::new();
    let channel = Channel::balance(
        follow_discovery(&format!("dns://{}/svc.scale.test:50051", dns.addr))
            .service_config(&feed)
            .start()
            .expect("dns discovery"),
    );
    let mut published = None;
    for _ in 0..200 {
        if let (_, Some(config)) = feed.current() {
            published = Some(config);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let published = published.expect("no service config published within 10 s");
    assert!(
        published.contains(&marker),
        "cut or joined wrong: {published}"
    );
    assert!(published.contains("\"7s\""), "{published}");
    drop(channel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_long_for_udp_is_asked_again_over_tcp() {
    // 150 A records: dnsmasq sends 75 of them over UDP with TC set, all 150 over TCP.
    let hosts: String = (1..=150)
        .map(|n| format!("127.1.0.{n} big.scale.test\n"))
        .collect();
    let dns = Dnsmasq::start(&[], &hosts).await;
    let channel = Channel::balance(
        follow_discovery(&format!("dns://{}/big.scale.test:9", dns.addr))
            .max_endpoints(1000)
            .start()
            .expect("dns discovery"),
    );
    endpoints_when(&channel, "150 endpoints", |s| s.len() == 150).await;
}
