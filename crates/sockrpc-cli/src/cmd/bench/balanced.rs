//! `sockrpc bench` against several servers through one balanced channel: `--target
//! tcp://A,tcp://B,…` or `--target dns://NAME:PORT` (with `--dns-server`), `--balance
//! p2c|round-robin|pick-first|hash`. Each row (`sockrpc-balanced`) reports latency as the other rows do,
//! plus the calls each server answered, so a slow or dead server's share shows.

use super::plan::Plan;
use super::rows::measure;
use super::{BenchArgs, DEFAULT_SECS};
use crate::load::Budget;
use crate::proto::{bench::bench_client::BenchClient, RpcCaller};
use crate::report::{self, Group, Machine, Row, Setup};
use clap::ValueEnum;
use sockrpc::service::balance::{
    BalanceBuilder, Balanced, HashKey, HashRing, P2c, PickFirst, RoundRobin,
};
use sockrpc::service::discovery::{self, dns::DnsDiscovery, Discovery};
use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A `--balance` picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Balance {
    /// Power of two choices on peak-EWMA latency × calls in flight.
    P2c,
    /// Each server in turn.
    RoundRobin,
    /// Every call to the first server that can take it, kept until it fails (grpc-go's default).
    PickFirst,
    /// A consistent hash ring keyed by a per-call counter (keys spread evenly).
    Hash,
}

/// Whether the run is a balanced one: several targets, a dns:// target, or --balance.
pub(super) fn wanted(args: &BenchArgs) -> bool {
    args.balance.is_some()
        || args
            .target
            .as_deref()
            .is_some_and(|t| t.contains(',') || t.starts_with("dns:"))
}

fn discovery(target: &str, dns_server: Option<SocketAddr>) -> Result<Discovery, String> {
    if let Some(rest) = target.strip_prefix("dns:") {
        let (name, port, server) = dns_target(rest, dns_server)
            .map_err(|e| format!("{target}: {e} (want dns://NAME:PORT, dns:///NAME:PORT or dns://DNS-IP[:PORT]/NAME:PORT)"))?;
        let mut dns = DnsDiscovery::ip(name, port);
        if let Some(server) = server {
            dns = dns.server(server);
        }
        return dns
            .start()
            .map_err(|s| format!("{target}: {}", s.message()));
    }
    discovery::fixed(target.split(',').map(str::trim).filter(|t| !t.is_empty()))
        .map_err(|s| format!("{target}: {}", s.message()))
}

/// A `dns:` target's name, port and DNS server, in grpc's forms: `dns://NAME:PORT` (ours),
/// `dns:///NAME:PORT` and `dns:NAME:PORT` (no authority: the system's resolver) and
/// `dns://DNS-IP[:PORT]/NAME:PORT` (that DNS server, port 53 by default). `--dns-server`
/// names the server too; not both.
fn dns_target(
    rest: &str,
    flag: Option<SocketAddr>,
) -> Result<(String, u16, Option<SocketAddr>), String> {
    let (authority, host_port) = match rest.strip_prefix("//") {
        Some(rest) => rest.split_once('/').unwrap_or(("", rest)),
        // grpc's `dns:NAME:PORT`, no authority.
        None => ("", rest),
    };
    let from_authority = match authority {
        "" => None,
        a => Some(match a.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => SocketAddr::new(
                a.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| format!("DNS server {a:?} is not IP[:PORT]"))?,
                53,
            ),
        }),
    };
    let server = match (from_authority, flag) {
        (Some(_), Some(_)) => return Err("a DNS server in the target and --dns-server".into()),
        (a, f) => a.or(f),
    };
    let (name, port) = host_port.rsplit_once(':').ok_or("no port")?;
    let port: u16 = port.parse().map_err(|e| format!("bad port: {e}"))?;
    if name.is_empty() {
        return Err("no name".into());
    }
    Ok((name.to_owned(), port, server))
}

fn channel(args: &BenchArgs, target: &str) -> Result<Balanced, String> {
    let builder = BalanceBuilder::default();
    let builder = match args.balance.unwrap_or(Balance::P2c) {
        Balance::P2c => builder.picker(P2c),
        Balance::RoundRobin => builder.picker(RoundRobin::new()),
        Balance::PickFirst => builder.picker(PickFirst::new()),
        Balance::Hash => {
            let counter = Arc::new(AtomicU64::new(0));
            builder.picker(HashRing::new(HashKey::Function(Arc::new(move |_| {
                Some(
                    counter
                        .fetch_add(1, Ordering::Relaxed)
                        .to_le_bytes()
                        .to_vec(),
                )
            }))))
        }
    };
    Ok(builder.build(discovery(target, args.dns_server)?))
}

fn balance_name(args: &BenchArgs) -> &'static str {
    match args.balance.unwrap_or(Balance::P2c) {
        Balance::P2c => "p2c",
        Balance::RoundRobin => "round-robin",
        Balance::PickFirst => "pick-first",
        Balance::Hash => "hash",
    }
}

/// Runs the balanced bench.
pub(super) fn run(args: &BenchArgs) -> Result<(), Box<dyn Error>> {
    let target = args
        .target
        .clone()
        .ok_or("--balance needs --target tcp://A,tcp://B,… or dns://NAME:PORT")?;
    let plan = Plan {
        budget: match (args.calls, args.duration) {
            (Some(calls), _) => Budget::Calls(calls),
            (None, Some(time)) => Budget::Time(time),
            (None, None) => Budget::Time(Duration::from_secs_f64(DEFAULT_SECS)),
        },
        warmup: args.warmup,
        connections: args.connections,
        calls_per_connection: args.calls_per_connection,
        idle_connections: 0,
        rounds: 1,
        embedded: false,
        timeout: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let expected = if target.starts_with("dns:") {
        1
    } else {
        target.split(',').filter(|t| !t.trim().is_empty()).count()
    };
    let channel = runtime.block_on(async {
        let channel = channel(args, &target)?;
        channel
            .ready(expected, Duration::from_secs(10))
            .await
            .map_err(|s| format!("servers not reachable: {}", s.message()))?;
        // DNS may list more than the one waited for: give the rest a moment to connect.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, String>(channel)
    })?;
    println!(
        "sockrpc bench: {} servers ({}), balance {}",
        channel.stats().len(),
        target,
        balance_name(args)
    );
    println!();
    let progress = indicatif::ProgressBar::hidden();
    let mut groups = Vec::new();
    for &payload in &args.payload {
        for &concurrency in &args.concurrency {
            let row = runtime.block_on(row(&channel, &plan, payload, concurrency, &progress));
            let group = Group {
                payload_bytes: payload,
                concurrency,
                rows: vec![row],
                skipped: Vec::new(),
            };
            println!("{}", report::table(&group, &plan.describe()));
            if let Some(servers) = &group.rows[0].servers {
                let total: u64 = servers.values().sum();
                let shares: Vec<String> = servers
                    .iter()
                    .map(|(server, calls)| {
                        format!(
                            "{server} {calls} ({:.1} %)",
                            100.0 * *calls as f64 / total.max(1) as f64
                        )
                    })
                    .collect();
                println!("calls per server: {}\n", shares.join(", "));
            }
            groups.push(group);
        }
    }
    drop(channel);
    drop(runtime);
    if let Some(path) = &args.json {
        let setup = Setup::new(
            format!("{target} (balance {})", balance_name(args)),
            None,
            plan.budget,
            plan.warmup,
            1,
        );
        report::write_json(path, &Machine::this(), &setup, &groups)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(report::failures(&groups)?)
}

async fn row(
    channel: &Balanced,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> Row {
    let new_row = || Row {
        name: "sockrpc-balanced",
        transport: "tcp",
        payload_bytes: payload,
        concurrency,
        connections: channel.stats().len(),
        hist: hdrhistogram::Histogram::new(3)
            .unwrap_or_else(|_| unreachable!("3 significant figures are valid")),
        errors: 0,
        elapsed: Duration::ZERO,
        note: None,
        servers: None,
        failed: None,
    };
    let callers = || {
        let client = BenchClient::new(channel.clone());
        Ok((0..concurrency)
            .map(|_| RpcCaller::new(client.clone(), payload))
            .collect::<Vec<_>>())
    };
    if plan.warmup > 0 {
        let warm = Plan {
            budget: Budget::Calls(plan.warmup),
            warmup: 0,
            ..*plan
        };
        let _ = measure(callers(), new_row(), &warm, progress).await;
    }
    let before = channel.answered();
    let measured = Plan {
        budget: plan.budget,
        warmup: 0,
        ..*plan
    };
    let mut row = measure(callers(), new_row(), &measured, progress).await;
    let after = channel.answered();
    let servers: BTreeMap<String, u64> = after
        .into_iter()
        .map(|(k, v)| {
            let was = before.get(&k).copied().unwrap_or(0);
            (k, v - was)
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    row.servers = Some(servers);
    row
}

#[cfg(test)]
mod tests {
    use super::dns_target;

    #[test]
    fn dns_targets_in_grpc_go_s_forms() {
        let flag = Some("127.0.0.1:5353".parse().expect("addr"));
        let ours = dns_target("//svc.test:50051", flag).expect("ours");
        assert_eq!(ours, ("svc.test".into(), 50051, flag));
        let none = dns_target("///svc.test:50051", None).expect("no authority");
        assert_eq!(none, ("svc.test".into(), 50051, None));
        let server = dns_target("//127.0.0.9/svc.test:7", None).expect("authority");
        assert_eq!(server.2, Some("127.0.0.9:53".parse().expect("addr")));
        let server = dns_target("//[::1]:5300/svc.test:7", None).expect("v6 authority");
        assert_eq!(server.2, Some("[::1]:5300".parse().expect("addr")));
        let literal = dns_target("///[::1]:50051", None).expect("literal");
        assert_eq!(literal.0, "[::1]");
        let bare = dns_target("svc.test:1", None).expect("dns:NAME:PORT");
        assert_eq!(bare, ("svc.test".into(), 1, None));
        for bad in ["//svc.test", "//:50051", "//x/svc.test:99999", "svc.test"] {
            assert!(dns_target(bad, None).is_err(), "{bad}");
        }
        assert!(
            dns_target("//127.0.0.9/svc.test:7", flag).is_err(),
            "two servers"
        );
    }
}
