//! `sockrpc bench`: unary echo latency of sockrpc against the raw-socket floor.
//!
//! The client runs on a current-thread runtime on the main thread; the embedded server on its own
//! multi-thread runtime (2 workers) on its own thread. That is the method the reference
//! figures for raw sockets, tarpc and tonic were taken with, so rows compare across stacks.
//!
//! For every payload and concurrency, rows run one after another, each on fresh connections:
//! `raw-tcp` (the floor every ratio refers to), `raw-tcp-pipelined` (concurrency > 1, for
//! scale), `raw-udp`, `sockrpc-tcp`, `sockrpc-uds`.
//!
//! A sockrpc row makes one `Channel` whose pool holds `--connections` connections; its tasks
//! share it, and each call goes to the connection with the fewest calls in flight.

use crate::load::{run_phase, Budget, Caller};
use crate::proto::{bench::bench_client::BenchClient, RpcCaller};
use crate::raw::{RawTcp, RawTcpPipelined, RawUdp, MAX_UDP_PAYLOAD};
use crate::report::{self, Group, Machine, Row, Setup, FLOOR};
use crate::server::{Embedded, DEFAULT_WORKERS};
use crate::{plot, server::Bound};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sockrpc::{Channel, Endpoint};
use std::{error::Error, io::IsTerminal, net::SocketAddr, path::PathBuf, time::Duration};

/// Largest payload: sockrpc's default message limit (4 MiB) less room for the protobuf field
/// header, so that a large payload is a measurement, not a stream of `ResourceExhausted`.
const MAX_PAYLOAD: usize = 4 * 1024 * 1024 - 64;

/// Seconds per row when neither `--duration` nor `--calls` is given: seven rows by default, so
/// the whole run takes about fifteen seconds.
const DEFAULT_SECS: f64 = 2.0;

/// How long a sockrpc row waits for its pool to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A transport name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// TCP: raw-tcp, raw-tcp-pipelined, sockrpc-tcp.
    Tcp,
    /// UDP: raw-udp (sockrpc-udp is not available yet).
    Udp,
    /// Unix domain sockets: sockrpc-uds.
    Uds,
    /// sockrpc's transport auto-selection (not available yet).
    Auto,
    /// Every transport above.
    All,
}

fn parse_payload(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .trim()
        .parse()
        .map_err(|err| format!("{text:?} is not a byte count: {err}"))?;
    if bytes > MAX_PAYLOAD {
        return Err(format!(
            "{bytes} bytes is over the largest payload, {MAX_PAYLOAD} (sockrpc's 4 MiB message \
             limit)"
        ));
    }
    Ok(bytes)
}

fn parse_positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".to_owned()),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) if secs > 0.0 && secs <= 86_400.0 => Ok(Duration::from_secs_f64(secs)),
        Ok(_) => Err("must be more than 0 and at most a day".to_owned()),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

/// `sockrpc bench` flags.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Transports to measure, comma-separated, or `all`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    transport: Vec<Transport>,
    /// Payload sizes in bytes, comma-separated: one table each.
    #[arg(long, value_name = "BYTES", value_delimiter = ',', default_value = "64,4096",
          value_parser = parse_payload)]
    payload: Vec<usize>,
    /// Calls in flight: N client tasks each looping calls. A comma-separated list makes one
    /// table per value.
    #[arg(long, value_name = "N", value_delimiter = ',', default_value = "1",
          value_parser = parse_positive)]
    concurrency: Vec<usize>,
    /// Connections in the pool of the one sockrpc channel the tasks share (each call takes the
    /// connection with the fewest calls in flight); at most --concurrency. Raw TCP cannot
    /// multiplex: its rows use one connection per task.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_positive)]
    connections: usize,
    /// Seconds each row runs [default: 2, unless --calls is given].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, conflicts_with = "calls")]
    duration: Option<Duration>,
    /// Calls each row makes, instead of running for --duration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    calls: Option<u64>,
    /// Calls made on each row's connections before measuring (0: none).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    warmup: u64,
    /// Measure a running `sockrpc serve` at tcp://HOST:PORT instead of an embedded server.
    #[arg(long, value_name = "tcp://HOST:PORT")]
    target: Option<String>,
    /// With --target: the server's raw echo (the `raw=` address `sockrpc serve` prints). Without
    /// it, the raw rows are skipped.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    raw_target: Option<String>,
    /// With --target: the server's raw UDP echo [default: the --raw-target address].
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    raw_udp_target: Option<String>,
    /// With --target: the server's Unix socket (the `uds=` path `sockrpc serve --uds` prints).
    /// Without it, the sockrpc-uds row is skipped.
    #[arg(long, value_name = "PATH", requires = "target")]
    uds_target: Option<PathBuf>,
    /// Write every row as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Draw latency by percentile, one line per row, as an SVG at this path.
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
    /// Worker threads of the embedded server's runtime.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS, value_parser = parse_positive)]
    server_workers: usize,
}

/// Where the rows connect.
#[derive(Debug)]
struct Targets {
    rpc: Endpoint,
    raw_tcp: Option<SocketAddr>,
    raw_udp: Option<SocketAddr>,
    /// The Bench service on a Unix socket.
    uds: Option<Endpoint>,
}

/// Resolves `HOST:PORT` (a `tcp://` or `udp://` prefix is allowed) to its first address.
async fn resolve(text: &str) -> Result<SocketAddr, String> {
    let bare = ["tcp://", "udp://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .unwrap_or(text)
        .trim_end_matches('/');
    tokio::net::lookup_host(bare)
        .await
        .map_err(|err| format!("cannot resolve {text:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{text:?} has no addresses"))
}

async fn targets(args: &BenchArgs, embedded: Option<&Bound>) -> Result<Targets, String> {
    if let Some(bound) = embedded {
        return Ok(Targets {
            rpc: Endpoint::new(bound.rpc.ip().to_string(), bound.rpc.port()),
            raw_tcp: Some(bound.raw_tcp),
            raw_udp: Some(bound.raw_udp),
            uds: bound.uds.as_ref().map(Endpoint::unix),
        });
    }
    let target = args.target.as_deref().unwrap_or_default();
    let rpc = Endpoint::from_uri(target).map_err(|status| status.message().to_owned())?;
    let raw_tcp = match &args.raw_target {
        Some(text) => Some(resolve(text).await?),
        None => None,
    };
    let raw_udp = match &args.raw_udp_target {
        Some(text) => Some(resolve(text).await?),
        None => raw_tcp,
    };
    Ok(Targets {
        rpc,
        raw_tcp,
        raw_udp,
        uds: args.uds_target.as_ref().map(Endpoint::unix),
    })
}

/// The rows a group can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    RawTcp,
    RawTcpPipelined,
    RawUdp,
    SockrpcTcp,
    SockrpcUds,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RawTcp => FLOOR,
            Kind::RawTcpPipelined => "raw-tcp-pipelined",
            Kind::RawUdp => "raw-udp",
            Kind::SockrpcTcp => "sockrpc-tcp",
            Kind::SockrpcUds => "sockrpc-uds",
        }
    }

    fn transport(self) -> &'static str {
        match self {
            Kind::RawUdp => "udp",
            Kind::SockrpcUds => "uds",
            Kind::RawTcp | Kind::RawTcpPipelined | Kind::SockrpcTcp => "tcp",
        }
    }
}

/// How every row runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    budget: Budget,
    warmup: u64,
    connections: usize,
}

impl Plan {
    fn describe(&self) -> String {
        let run = match self.budget {
            Budget::Calls(calls) => format!("{calls} calls per row"),
            Budget::Time(time) => format!("{} s per row", time.as_secs_f64()),
        };
        format!("{run} after {} warmup calls", self.warmup)
    }
}

fn progress_bar() -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(1), target);
    if let Ok(style) = ProgressStyle::with_template("{msg:30} [{wide_bar}] {percent:>3}%") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs `sockrpc bench`.
pub(crate) fn run(args: BenchArgs) -> Result<(), Box<dyn Error>> {
    let mut wanted = args.transport.clone();
    if wanted.contains(&Transport::All) {
        wanted = vec![
            Transport::Tcp,
            Transport::Udp,
            Transport::Uds,
            Transport::Auto,
        ];
    }
    let plan = Plan {
        budget: match (args.calls, args.duration) {
            (Some(calls), _) => Budget::Calls(calls),
            (None, Some(time)) => Budget::Time(time),
            (None, None) => Budget::Time(Duration::from_secs_f64(DEFAULT_SECS)),
        },
        warmup: args.warmup,
        connections: args.connections,
    };
    let mut unavailable = Vec::new();
    for (transport, row) in [
        (Transport::Udp, "sockrpc-udp"),
        (Transport::Auto, "sockrpc-auto"),
    ] {
        if wanted.contains(&transport) {
            unavailable.push(format!("{row}: not available yet"));
        }
    }

    let embedded = match args.target {
        Some(_) => None,
        None => Some(Embedded::start(
            args.server_workers,
            wanted.contains(&Transport::Uds),
        )?),
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let targets = client.block_on(targets(&args, embedded.as_ref().map(Embedded::bound)))?;
    let machine = Machine::this();
    match &embedded {
        Some(server) => println!(
            "sockrpc bench: embedded server ({} workers; {} raw={}{}), client on a \
             current-thread runtime; {} CPUs available",
            args.server_workers,
            targets.rpc,
            server.bound().raw_tcp,
            targets
                .uds
                .as_ref()
                .map_or_else(String::new, |uds| format!(" {uds}")),
            std::thread::available_parallelism().map_or(1, usize::from),
        ),
        None => println!(
            "sockrpc bench: target {} raw={} uds={}",
            targets.rpc,
            targets
                .raw_tcp
                .map_or_else(|| "-".to_owned(), |addr| addr.to_string()),
            args.uds_target
                .as_ref()
                .map_or_else(|| "-".to_owned(), |path| path.display().to_string()),
        ),
    }
    for note in &unavailable {
        println!("note: {note}");
    }
    println!();

    let progress = progress_bar();
    let mut groups = Vec::new();
    for &payload in &args.payload {
        for &concurrency in &args.concurrency {
            let group = client.block_on(run_group(
                &wanted,
                &targets,
                &plan,
                payload,
                concurrency,
                &progress,
            ));
            let table = report::table(&group, &plan.describe());
            progress.suspend(|| println!("{table}"));
            groups.push(group);
        }
    }
    progress.finish_and_clear();
    // Close the client side first, so the server's drain finds no connection left.
    drop(client);
    if let Some(server) = embedded {
        server.stop()?;
    }
    if let Some(path) = &args.json {
        let setup = Setup {
            server: match &args.target {
                Some(_) => targets.rpc.to_string(),
                None => "embedded".to_owned(),
            },
            server_workers: args.target.is_none().then_some(args.server_workers),
            duration_s: match plan.budget {
                Budget::Time(time) => Some(time.as_secs_f64()),
                Budget::Calls(_) => None,
            },
            calls_per_row: match plan.budget {
                Budget::Calls(calls) => Some(calls),
                Budget::Time(_) => None,
            },
            warmup_calls: plan.warmup,
        };
        report::write_json(path, &machine, &setup, &groups, &unavailable)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        plot::write_svg(path, &groups)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

async fn run_group(
    wanted: &[Transport],
    targets: &Targets,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &ProgressBar,
) -> Group {
    let tcp = wanted.contains(&Transport::Tcp);
    let udp = wanted.contains(&Transport::Udp);
    let mut group = Group {
        payload_bytes: payload,
        concurrency,
        ..Group::default()
    };
    let mut kinds = Vec::new();
    // raw-tcp runs whatever was asked for: it is what every other row is quoted against.
    match targets.raw_tcp {
        Some(_) => kinds.push(Kind::RawTcp),
        None => group
            .skipped
            .push("raw rows skipped: no --raw-target (the raw= address of `sockrpc serve`)".into()),
    }
    if tcp && concurrency > 1 && targets.raw_tcp.is_some() {
        kinds.push(Kind::RawTcpPipelined);
    }
    if udp && targets.raw_udp.is_some() {
        if payload <= MAX_UDP_PAYLOAD {
            kinds.push(Kind::RawUdp);
        } else {
            group.skipped.push(format!(
                "raw-udp skipped: {payload} B is over {MAX_UDP_PAYLOAD} B, the most one datagram \
                 carries on any path without fragmentation"
            ));
        }
    }
    if tcp {
        kinds.push(Kind::SockrpcTcp);
    }
    if wanted.contains(&Transport::Uds) {
        match targets.uds {
            Some(_) => kinds.push(Kind::SockrpcUds),
            None => group.skipped.push(
                "sockrpc-uds skipped: no --uds-target (the uds= path of `sockrpc serve --uds`)"
                    .into(),
            ),
        }
    }
    for kind in kinds {
        let row = run_row(kind, targets, plan, payload, concurrency, progress).await;
        group.rows.push(row);
    }
    group
}

/// Connects `count` callers one after another.
async fn connect_all<C, F, Fut>(count: usize, connect: F) -> Result<Vec<C>, String>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<C>>,
{
    let mut callers = Vec::with_capacity(count);
    for index in 0..count {
        callers.push(connect(index).await.map_err(|err| err.to_string())?);
    }
    Ok(callers)
}

async fn run_row(
    kind: Kind,
    targets: &Targets,
    plan: &Plan,
    payload: usize,
    concurrency: usize,
    progress: &ProgressBar,
) -> Row {
    let mut row = Row {
        name: kind.name(),
        transport: kind.transport(),
        payload_bytes: payload,
        concurrency,
        connections: concurrency,
        hist: hdrhistogram::Histogram::new(3)
            .unwrap_or_else(|_| unreachable!("3 significant figures are valid")),
        errors: 0,
        elapsed: Duration::ZERO,
        note: None,
    };
    let missing = || "no address".to_owned();
    match kind {
        Kind::RawTcp => {
            if concurrency > 1 {
                row.note = Some(format!(
                    "{concurrency} connections, one call in flight on each (raw TCP cannot \
                     multiplex)"
                ));
            }
            let callers = match targets.raw_tcp {
                Some(addr) => connect_all(concurrency, |_| RawTcp::connect(addr, payload)).await,
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::RawTcpPipelined => {
            row.connections = 1;
            row.note = Some(format!(
                "one connection: {concurrency} requests written back to back, then \
                 {concurrency} echoes read"
            ));
            let callers = match targets.raw_tcp {
                Some(addr) => {
                    connect_all(1, |_| RawTcpPipelined::connect(addr, payload, concurrency)).await
                }
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::RawUdp => {
            let callers = match targets.raw_udp {
                Some(addr) => connect_all(concurrency, |_| RawUdp::connect(addr, payload)).await,
                None => Err(missing()),
            };
            measure(callers, row, plan, progress).await
        }
        Kind::SockrpcTcp | Kind::SockrpcUds => {
            let endpoint = match kind {
                Kind::SockrpcUds => targets.uds.clone(),
                _ => Some(targets.rpc.clone()),
            };
            // More connections than calls in flight would never carry a call.
            row.connections = plan.connections.min(concurrency);
            let channel = match endpoint {
                Some(endpoint) => Channel::connect(
                    endpoint
                        .connect_timeout(CONNECT_TIMEOUT)
                        .pool_size(row.connections),
                )
                .await
                .map_err(|status| status.message().to_owned()),
                None => Err(missing()),
            };
            // One channel, one pool: every task's client is a clone sharing it.
            let callers = channel.as_ref().map_err(Clone::clone).map(|channel| {
                let client = BenchClient::new(channel.clone());
                (0..concurrency)
                    .map(|_| RpcCaller::new(client.clone(), payload))
                    .collect()
            });
            let mut row = measure(callers, row, plan, progress).await;
            if let Ok(channel) = &channel {
                note_pool(&mut row, channel);
            }
            row
        }
    }
}

/// Notes how the pool spread the calls, when it has more than one connection (or has fewer than
/// it was asked for).
fn note_pool(row: &mut Row, channel: &Channel) {
    let stats = channel.connection_stats();
    if row.connections <= 1 && stats.len() == row.connections {
        return;
    }
    let spread: Vec<String> = stats
        .iter()
        .map(|conn| conn.calls_started.to_string())
        .collect();
    add_note(
        row,
        format!(
            "pool of {}, {} live at the end; calls started per connection, warmup included: {}",
            row.connections,
            stats.len(),
            spread.join(" / ")
        ),
    );
}

fn add_note(row: &mut Row, note: String) {
    row.note = Some(match row.note.take() {
        Some(old) => format!("{old}; {note}"),
        None => note,
    });
}

/// Warms up, then measures, on the same callers.
async fn measure<C: Caller>(
    callers: Result<Vec<C>, String>,
    mut row: Row,
    plan: &Plan,
    progress: &ProgressBar,
) -> Row {
    let label = format!("{} {} B ×{}", row.name, row.payload_bytes, row.concurrency);
    let mut callers = match callers {
        Ok(callers) => callers,
        Err(message) => {
            row.errors = row.concurrency as u64;
            add_note(&mut row, format!("could not connect: {message}"));
            return row;
        }
    };
    if plan.warmup > 0 {
        progress.reset();
        progress.set_length(plan.warmup);
        progress.set_message(format!("{label} (warmup)"));
        let (warm, phase) = run_phase(callers, Budget::Calls(plan.warmup), progress).await;
        if phase.errors > 0 {
            add_note(
                &mut row,
                format!(
                    "{} errors during warmup, first: {}",
                    phase.errors,
                    phase.first_error.unwrap_or_default()
                ),
            );
        }
        if phase.stalled {
            row.errors = phase.errors;
            return row;
        }
        callers = warm;
    }
    progress.reset();
    progress.set_length(match plan.budget {
        Budget::Calls(calls) => calls,
        Budget::Time(time) => u64::try_from(time.as_millis()).unwrap_or(u64::MAX),
    });
    progress.set_message(label);
    let (_callers, phase) = run_phase(callers, plan.budget, progress).await;
    row.hist = phase.hist;
    row.errors = phase.errors;
    row.elapsed = phase.elapsed;
    if let Some(first) = phase.first_error {
        add_note(&mut row, format!("first error: {first}"));
    }
    row
}
