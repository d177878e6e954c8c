//! Answers large enough to hurt (found by a hostile-DNS-server probe): an answer of hundreds of
//! addresses gives at most `max_endpoints` of them, the same subset at every lookup; an SRV
//! answer of hundreds of records naming a few hosts asks each host once; and a lookup under way
//! stops asking when its channel is dropped.

use super::dns_server::{name, Dns};
use super::dns_silent::silent;
use hickory_server::proto::rr::rdata::{A, SRV};
use hickory_server::proto::rr::{RData, RecordType};
use sockrpc::service::balance::Balanced;
use sockrpc::service::discovery::dns::DnsDiscovery;
use sockrpc::Channel;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The channel's endpoints once there are `count` of them (polled for up to 10 s), sorted.
async fn endpoints(channel: &Balanced, count: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for _ in 0..200 {
        keys = channel.stats().into_iter().map(|s| s.key).collect();
        if keys.len() == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    keys.sort();
    assert_eq!(keys.len(), count, "{keys:?}");
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_gives_a_stable_subset_of_max_endpoints() {
    let dns = Dns::with_tcp().await;
    // 300 addresses (127.1.0.0 to 127.1.1.43): about 4.8 KB, over TCP.
    let ips: Vec<Ipv4Addr> = (0..300u32)
        .map(|n| Ipv4Addr::from(0x7f01_0000 + n))
        .collect();
    dns.set(&ips).await;
    let follow = || {
        Channel::balance(
            DnsDiscovery::ip("svc.scale.test.", 9)
                .server(dns.addr)
                .max_endpoints(40)
                .min_ttl(Duration::from_millis(200))
                .max_ttl(Duration::from_secs(1))
                .start()
                .expect("dns discovery"),
        )
    };
    let channel = follow();
    let first = endpoints(&channel, 40).await;
    let asked = dns.asked.load(Ordering::SeqCst);
    // Lookups go on (TTL 1 s); the subset stays.
    for _ in 0..100 {
        if dns.asked.load(Ordering::SeqCst) >= asked + 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        dns.asked.load(Ordering::SeqCst) >= asked + 4,
        "looked up again"
    );
    assert_eq!(endpoints(&channel, 40).await, first);
    // Another client takes another subset of the same answer.
    let other = follow();
    assert_ne!(endpoints(&other, 40).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_naming_few_hosts_ask_each_host_once() {
    let dns = Dns::with_tcp().await;
    let hosts = [
        "t0.scale.test.",
        "t1.scale.test.",
        "t2.scale.test.",
        "t3.scale.test.",
    ];
    for (i, host) in (1u8..).zip(hosts) {
        let ip = Ipv4Addr::new(127, 0, 2, i);
        dns.set_records(&name(host), RecordType::A, 60, vec![RData::A(A(ip))])
            .await;
    }
    // 200 records over 4 hosts, each on its own port: 200 endpoints.
    let records = (0..200u16)
        .map(|i| RData::SRV(SRV::new(10, 1, 1000 + i, name(hosts[usize::from(i % 4)]))))
        .collect();
    dns.set_records(
        &name("_many._tcp.scale.test."),
        RecordType::SRV,
        60,
        records,
    )
    .await;
    let channel = Channel::balance(
        DnsDiscovery::srv("_many._tcp.scale.test.")
            .server(dns.addr)
            .max_endpoints(1000)
            .min_ttl(Duration::from_secs(30))
            .start()
            .expect("srv discovery"),
    );
    endpoints(&channel, 200).await;
    // One lookup: the SRV query (UDP, then TCP: the answer is long) and A and AAAA of each host
    // once; one query per record before (401).
    let asked = dns.asked.load(Ordering::SeqCst);
    assert!(
        asked <= 12,
        "{asked} queries for one SRV lookup over 4 hosts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_under_way_stops_when_its_channel_is_dropped() {
    let (dns, asked, _task) = silent().await;
    // A lookup of 10 attempts, 200 ms apart: 2 s of queries, then TCP.
    let channel = Channel::balance(
        DnsDiscovery::ip("svc.scale.test.", 50051)
            .server(dns)
            .timeout(Duration::from_millis(200))
            .attempts(10)
            .start()
            .expect("dns discovery"),
    );
    for _ in 0..100 {
        if asked.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(channel);
    // The lookup task sees the drop at once; a query already on its way may still land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_drop = asked.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = asked.load(Ordering::SeqCst);
    assert_eq!(after, at_drop, "queries after the channel was dropped");
}
