//! DNS discovery against a second real DNS server daemon, Knot DNS (`knot_process.rs`), an
//! authoritative server serving a zone file: what grpc-go's `dns` resolver meets when it asks
//! such a server directly (`dns://SERVER/NAME:PORT`), case by case. A and AAAA together, CNAME
//! chains, NXDOMAIN and NODATA, TTLs and a look again when a connection fails, a service config
//! in TXT records (several strings, several records, choices read as grpc-go reads them),
//! SERVFAIL, REFUSED and a server gone while the channel serves, an answer too long for UDP.
//! With the tests package's `real-dns` feature, which `.ci/run` turns on.

use super::dns_daemon::{endpoints_when, fails_saying, follow, follow_discovery, keys_become};
use super::knot_process::{Knot, Serving};
use super::support::{hello, run_calls, shares, Server};
use sockrpc::service::discovery::ServiceConfigFeed;
use sockrpc::Channel;
use std::net::SocketAddr;
use std::time::Duration;

/// A server on 127.0.0.1 and one on ::1, on one port (A and AAAA records carry no port).
async fn dual_stack() -> (Server, Server) {
    for _ in 0..20 {
        let v4 = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = v4.local_addr().expect("addr").port();
        if let Ok(v6) = tokio::net::TcpListener::bind(("::1", port)).await {
            return (
                Server::on(v4, Duration::ZERO),
                Server::on(v6, Duration::ZERO),
            );
        }
    }
    panic!("no port free on 127.0.0.1 and ::1 in 20 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_together_through_cname_chains_asked_over_ipv4_or_ipv6() {
    let (v4, v6) = dual_stack().await;
    let port = v4.addr.port();
    let knot = Knot::start(
        "both A 127.0.0.1\nboth AAAA ::1\nalias CNAME hop\nhop CNAME both\n\
         loop1 CNAME loop2\nloop2 CNAME loop1\ndangling CNAME nowhere\n\
         away CNAME svc.elsewhere.example.\n",
    )
    .await;
    let both = [format!("127.0.0.1:{port}"), format!("[::1]:{port}")];
    // Both families' addresses, and calls reach both servers.
    let channel = follow(&format!("dns://{}/both.scale.test:{port}", knot.addr));
    keys_become(&channel, &both).await;
    channel
        .ready(2, Duration::from_secs(10))
        .await
        .expect("both up");
    let answered = shares(&run_calls(&channel, 40, 4, |_| {}).await);
    assert_eq!(answered.len(), 2, "calls reach both families: {answered:?}");

    // A chain of two CNAMEs, which Knot writes out in one answer; the DNS server asked over
    // IPv6 (`dns://[::1]:PORT/`).
    let alias = follow(&format!("dns://{}/alias.scale.test:{port}", knot.addr6));
    keys_become(&alias, &both).await;

    // grpc-go's `:PORT`, for the DNS server (`localhost`: Knot listens at both of its
    // addresses) and for the name (`localhost`, from the hosts file: this machine).
    let local = follow(&format!(
        "dns://:{}/both.scale.test:{port}",
        knot.addr.port()
    ));
    keys_become(&local, &both).await;
    let this_machine = follow(&format!("dns:///:{port}"));
    let stats = endpoints_when(&this_machine, "localhost's addresses", |s| !s.is_empty()).await;
    assert!(stats.iter().all(|s| both.contains(&s.key)), "{stats:?}");
    assert!(hello(&this_machine, None).await.is_ok());

    // A CNAME loop has no address (BIND answers it SERVFAIL); a CNAME to a name that does not
    // exist is NXDOMAIN.
    let looping = follow(&format!("dns://{}/loop1.scale.test:{port}", knot.addr));
    fails_saying(&looping, "loop1.scale.test has no A or AAAA records").await;
    let dangling = follow(&format!("dns://{}/dangling.scale.test:{port}", knot.addr));
    fails_saying(&dangling, "dangling.scale.test does not exist (NXDOMAIN)").await;
    // A CNAME to a name outside the zone: Knot answers the CNAME alone, and REFUSED for the
    // name it names, which the resolver asks next. An error (the last addresses would stay),
    // naming where the chain led; grpc-go, which does not follow a CNAME itself, finds no
    // address.
    let away = follow(&format!("dns://{}/away.scale.test:{port}", knot.addr));
    fails_saying(
        &away,
        "A away.scale.test.: the DNS server answered Query Refused (5) for \
         svc.elsewhere.example., where a CNAME led",
    )
    .await;
    v4.shutdown().await;
    v6.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_nodata_and_a_name_added_later() {
    let mut knot = Knot::start("txtonly TXT \"v=spf1 -all\"\n").await;
    let server = Server::start("127.0.0.1", Duration::ZERO).await;
    let port = server.addr.port();
    let gone = follow(&format!("dns://{}/late.scale.test:{port}", knot.addr));
    fails_saying(&gone, "late.scale.test does not exist (NXDOMAIN)").await;
    let nodata = follow(&format!("dns://{}/txtonly.scale.test:{port}", knot.addr));
    fails_saying(&nodata, "txtonly.scale.test has no A or AAAA records").await;
    // The zone's negative TTL (1 s) bounds the wait for a name that appears.
    knot.set_records("txtonly TXT \"v=spf1 -all\"\nlate A 127.0.0.1\n");
    keys_become(&gone, &[server.addr.to_string()]).await;
    assert_eq!(hello(&gone, None).await, Ok(server.addr));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_ttls_are_followed_and_a_failed_connection_looks_again_before_a_long_one() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let [one, two, three] = listeners.map(|l| Server::on(l, Duration::ZERO));
    let port = one.addr.port();
    let at = |ip: &str| format!("{ip}:{port}");
    let mut knot =
        Knot::start("short 1 A 127.0.0.1\nlong 3600 A 127.0.0.1\nlong 3600 A 127.0.0.2\n").await;
    let lookups = |name: &str| {
        Channel::balance(
            follow_discovery(&format!("dns://{}/{name}.scale.test:{port}", knot.addr))
                .max_ttl(Duration::from_secs(600))
                .start()
                .expect("dns discovery"),
        )
    };
    let short = lookups("short");
    let long = lookups("long");
    keys_become(&short, &[at("127.0.0.1")]).await;
    keys_become(&long, &[at("127.0.0.1"), at("127.0.0.2")]).await;
    long.ready(2, Duration::from_secs(10))
        .await
        .expect("two up");
    knot.set_records("short 1 A 127.0.0.3\nlong 3600 A 127.0.0.1\nlong 3600 A 127.0.0.3\n");
    // The 1 s TTL runs out: looked up again.
    keys_become(&short, &[at("127.0.0.3")]).await;
    // The hour-long TTL holds, until a connection to one of its addresses fails.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        long.stats().len(),
        2,
        "the TTL of 3600 s was not followed: {:?}",
        long.stats()
    );
    two.shutdown().await;
    keys_become(&long, &[at("127.0.0.1"), at("127.0.0.3")]).await;
    one.shutdown().await;
    three.shutdown().await;
}

/// `text` as a TXT record's character-strings in a zone file: quoted, 200 bytes each.
fn txt_strings(text: &str) -> String {
    text.as_bytes()
        .chunks(200)
        .map(|chunk| {
            let chunk = std::str::from_utf8(chunk).expect("ASCII");
            format!("\"{}\"", chunk.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// This machine's host name, as the discovery reads it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("host name")
        .trim()
        .to_owned()
}

/// The first config published into `feed` (polled for up to 10 s).
async fn published(feed: &ServiceConfigFeed) -> String {
    for _ in 0..200 {
        if let (_, Some(config)) = feed.current() {
            return config.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no service config published within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_config_in_several_strings_chosen_by_language_host_and_percentage() {
    let timeout = |marker: &str| {
        format!(
            r#"{{"methodConfig": [{{"name": [{{"service": "helloworld.Greeter"}}], "timeout": "7s"}}], "x-marker": "{marker}{}"}}"#,
            "-".repeat(150)
        )
    };
    // Each choice but the last passes this client over: another language, another host (in
    // grpc-go's spelling, `clientHostName`: JSON keys are matched regardless of case there),
    // a percentage of 0.
    let choices = format!(
        r#"grpc_config=[{{"clientLanguage": ["go"], "serviceConfig": {}}},
                        {{"clientHostName": ["not-{host}"], "serviceConfig": {}}},
                        {{"percentage": 0, "serviceConfig": {}}},
                        {{"clientLanguage": ["rust"], "clientHostname": ["{host}"],
                          "percentage": 100, "serviceConfig": {}}}]"#,
        timeout("go"),
        timeout("other-host"),
        timeout("never"),
        timeout("ours"),
        host = hostname(),
    )
    .replace('\n', " ");
    assert!(choices.len() > 600, "the record spans several strings");
    let knot = Knot::start(&format!(
        "svc A 127.0.0.1\n_grpc_config.svc TXT {}\n_grpc_config.svc TXT \"v=spf1 -all\"\n",
        txt_strings(&choices)
    ))
    .await;
    let feed = ServiceConfigFeed::new();
    let channel = Channel::balance(
        follow_discovery(&format!("dns://{}/svc.scale.test:50051", knot.addr))
            .service_config(&feed)
            .start()
            .expect("dns discovery"),
    );
    let config = published(&feed).await;
    assert!(config.contains("ours---"), "{config}");
    assert!(config.contains("\"7s\""), "{config}");
    drop(channel);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_refused_and_a_server_gone_keep_the_last_addresses() {
    let listeners = sockrpc_tests::rebind::listeners_on_one_port().await;
    let servers = listeners.map(|l| Server::on(l, Duration::ZERO));
    let port = servers[0].addr.port();
    let at = |ip: &str| format!("{ip}:{port}");
    let mut knot = Knot::start("svc A 127.0.0.1\n").await;
    let channel = follow(&format!("dns://{}/svc.scale.test:{port}", knot.addr));
    keys_become(&channel, &[at("127.0.0.1")]).await;
    for (what, serving) in [
        ("SERVFAIL", Some(Serving::Broken)),
        ("REFUSED", Some(Serving::Nothing)),
        ("gone", None),
    ] {
        match serving {
            Some(serving) => knot.restart(serving).await,
            None => knot.stop(),
        }
        // Several lookups (every 200 ms to 2 s) meet the failure: the address stays.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            hello(&channel, None).await,
            Ok(servers[0].addr),
            "{what}: {:?}",
            channel.stats()
        );
        let keys: Vec<String> = channel.stats().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, [at("127.0.0.1")], "{what}");
    }
    // Back, with another address: followed.
    knot.set_records("svc A 127.0.0.2\n");
    knot.restart(Serving::Zone).await;
    keys_become(&channel, &[at("127.0.0.2")]).await;
    assert_eq!(hello(&channel, None).await, Ok(servers[1].addr));
    for server in servers {
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_too_long_for_udp_comes_over_tcp() {
    // 150 A records (2.4 kB): over UDP Knot sends TC with no records; over TCP all of them.
    let records: String = (1..=150).map(|n| format!("big A 127.1.0.{n}\n")).collect();
    let knot = Knot::start(&records).await;
    let channel = Channel::balance(
        follow_discovery(&format!("dns://{}/big.scale.test:9", knot.addr))
            .max_endpoints(1000)
            .start()
            .expect("dns discovery"),
    );
    let stats = endpoints_when(&channel, "150 endpoints", |s| s.len() == 150).await;
    let addr: SocketAddr = "127.1.0.150:9".parse().expect("addr");
    assert!(stats.iter().any(|s| s.key == addr.to_string()));
}
