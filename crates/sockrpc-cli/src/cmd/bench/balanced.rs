//! `sockrpc bench` against several servers through one balanced channel: `--target
//! tcp://A,tcp://B,…` or `--target dns://NAME:PORT` (with `--dns-server`), `--balance
//! p2c|round-robin|pick-first|hash`. Each row (`sockrpc-balanced`) reports latency as the other rows do,
//! plus the calls each server answered, so a slow or dead server's share shows.

use super::plan::Plan;
use super::rows::measure;
use super::BenchArgs;
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
    if target.starts_with("dns:") {
        return dns_discovery(target, dns_server)?
            .start()
            .map_err(|s| format!("{target}: {}", s.message()));
    }
    discovery::fixed(target.split(',').map(str::trim).filter(|t| !t.is_empty()))
        .map_err(|s| format!("{target}: {}", s.message()))
}

/// A `dns:` target in gRPC's forms (`DnsDiscovery::target`: `dns:///NAME[:PORT]`,
/// `dns://DNS-SERVER[:PORT]/NAME[:PORT]`) or ours, `dns://NAME:PORT`. `--dns-server` names the DNS
/// server too; not both.
fn dns_discovery(target: &str, flag: Option<SocketAddr>) -> Result<DnsDiscovery, String> {
    let dns = DnsDiscovery::target(target).map_err(|s| s.message().to_owned())?;
    let Some(server) = flag else {
        return Ok(dns);
    };
    let names_server = target
        .strip_prefix("dns://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(authority, _)| !authority.is_empty());
    if names_server {
        return Err(format!(
            "{target}: a DNS server in the target and --dns-server"
        ));
    }
    Ok(dns.server(server))
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
pub(super) fn run(
    args: &BenchArgs,
    saved: Option<&super::compare::Saved>,
) -> Result<(), Box<dyn Error>> {
    let target = args
        .target
        .clone()
        .ok_or("--balance needs --target tcp://A,tcp://B,… or dns://NAME:PORT")?;
    let plan = Plan {
        budget: args.budget(),
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
    // Pick first connects to one server only (as grpc-go's `pick_first`).
    let one = matches!(args.balance, Some(Balance::PickFirst));
    let expected = if one || target.starts_with("dns:") {
        1
    } else {
        // One endpoint per distinct server: `tcp://A,tcp://A` is one.
        target
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let channel = runtime.block_on(async {
        let channel = channel(args, &target)?;
        if let Err(status) = channel.ready(expected, Duration::from_secs(10)).await {
            // A server down among live ones is what a balancer is for: measure on those that
            // are up, and say so (the calls per server show who answered).
            channel
                .ready(1, Duration::from_millis(1))
                .await
                .map_err(|_| {
                    let why = crate::out::one_line(status.message());
                    format!("servers not reachable: {why}")
                })?;
            crate::out::errln!(
                "sockrpc bench: not every server is reachable ({}): measuring on those that are",
                crate::out::one_line(status.message())
            );
        }
        // DNS may list more than the one waited for: give the rest a moment to connect.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, String>(channel)
    })?;
    crate::out::outln!(
        "sockrpc bench: {} servers ({}), balance {}",
        channel.stats().len(),
        target,
        balance_name(args)
    );
    crate::out::outln!();
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
            crate::out::outln!("{}", report::table(&group, &plan.describe()));
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
                crate::out::outln!("calls per server: {}\n", shares.join(", "));
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
        super::outputs::write_file(path, || {
            report::write_json(path, &Machine::this(), &setup, &groups)
        })?;
    }
    // `--plot` was taken and then dropped without a word before: the rows are the other runs'.
    super::outputs::finish(args, &groups, saved)
}

async fn row(
    channel: &Balanced,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &indicatif::ProgressBar,
) -> Row {
    let new_row = || {
        Row::empty(
            "sockrpc-balanced",
            "tcp",
            payload,
            concurrency,
            channel.stats().len(),
        )
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
    use super::dns_discovery;

    #[test]
    fn dns_targets_take_the_server_from_the_target_or_the_flag_not_both() {
        let flag = Some("127.0.0.1:5353".parse().expect("addr"));
        for ok in [
            "dns://svc.test:50051",
            "dns:///svc.test:50051",
            "dns:svc.test:1",
        ] {
            assert!(dns_discovery(ok, flag).is_ok(), "{ok}");
        }
        assert!(dns_discovery("dns://127.0.0.9/svc.test:7", None).is_ok());
        assert!(
            dns_discovery("dns://127.0.0.9/svc.test:7", flag).is_err(),
            "two servers"
        );
        for bad in ["dns://:50051", "dns://x/svc.test:99999", "dns://svc.test:0"] {
            assert!(dns_discovery(bad, None).is_err(), "{bad}");
        }
    }
}
