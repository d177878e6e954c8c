//! `sockrpc bench`: echo latency of sockrpc against the raw-socket floor.
//!
//! The client runs on a current-thread runtime on the main thread; the embedded server on its own
//! multi-thread runtime (2 workers) on its own thread. That is the method the reference
//! figures for raw sockets, tarpc and tonic were taken with, so rows compare across stacks.
//!
//! For every payload and concurrency, rows run one after another, each on fresh connections:
//! `raw-tcp` (the floor every ratio refers to), `raw-tcp-pipelined` (concurrency > 1, for
//! scale), `raw-udp`, `sockrpc-tcp`, `sockrpc-udp` (unary calls over UDP, payloads that fit a
//! datagram), `sockrpc-uds`, `sockrpc-auto` (UDP when the call fits a datagram, TCP otherwise),
//! `sockrpc-stream` (one bidirectional stream per task, one message in flight on each),
//! `sockrpc-stack` (sockrpc-tcp with the middleware stack of [`crate::stack`] on both sides:
//! spans, retry (client), a concurrency limit (server) and metrics; tracing at INFO into a
//! subscriber that drops its output, metrics into a Prometheus recorder; embedded server only).
//!
//! A sockrpc row makes one `Channel` whose pool holds `--connections` connections; its tasks
//! share it; calls (and streams) fill one connection up to `--calls-per-connection` before the
//! next.
//!
//! - [`plan`]: how every row runs, where it connects, which rows a group has.
//! - [`rows`]: running one row: connecting its callers, warmup, measurement, notes.
//! - [`idle`]: the idle connections of the sockrpc-tcp-idle row.
//! - [`call_mode`]: `--call` (a method of your own service) and `--rate` (open loop, with
//!   [`open_loop`] and the sweep's [`rate_plot`]).
//! - [`compare`]: `--compare old.json`, deltas against a saved run, flagged beyond noise.
//! - [`options`]: options refused before anything runs (ignored in this mode, or unusable).
//! - [`parse`]: the flags' values, parsed and bounded before anything runs.
//! - [`partial`]: the tables finished so far, written with `--json` if the run is interrupted.
//! - [`outputs`]: how every mode's run ends: the files written, the comparison, the verdict.
//! - [`help`]: the default run's rows in `--help`, from the list the run uses.

mod balanced;
mod call_mode;
mod compare;
mod compressed;
mod help;
mod idle;
mod open_loop;
mod options;
mod outputs;
mod parse;
mod partial;
mod plan;
mod rate_plot;
mod rows;

use crate::load::Budget;
use crate::report::{self, Machine, Setup};
use crate::server::{Embedded, DEFAULT_WORKERS};
use crate::stack;
use clap::{Args, ValueEnum};
pub(crate) use help::with_default_rows;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
pub(crate) use options::refuse_ignored;
use parse::{
    check_in_flight, parse_payload, parse_positive, parse_rounds, parse_secs, parse_server_workers,
};
use plan::{run_group, targets, Plan};
use std::{
    error::Error,
    io::IsTerminal,
    path::{Path, PathBuf},
    time::Duration,
};

/// Seconds per row when neither `--duration` nor `--calls` is given: twenty rows by default
/// (eleven at 64 B, nine at 4 KiB, as `--help` lists), so the whole run takes under a minute
/// (the idle row's connections take a few seconds more).
const DEFAULT_SECS: f64 = 2.0;

/// Rounds of the built-in rows when `--rounds` is not given. A host whose speed drifts within
/// a minute (a shared VM) made one round's ratios say what the host did while each row ran:
/// sockrpc-tcp at 0.96× raw-tcp and sockrpc-uds at 0.47× in one run, 1.13× and 0.85× in the
/// next, run with three. Interleaved, raw and sockrpc rows sample the same stretches of it, for
/// the same total time (each round gets a third of a row's time) and a warmup more per round.
const DEFAULT_ROUNDS: usize = 3;

/// A transport name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    /// TCP: raw-tcp, raw-tcp-pipelined, sockrpc-tcp.
    Tcp,
    /// UDP: raw-udp, and sockrpc-udp for payloads that fit one datagram.
    Udp,
    /// Unix domain sockets: sockrpc-uds.
    Uds,
    /// sockrpc's transport auto-selection: sockrpc-auto, over UDP when the call fits one
    /// datagram and over TCP otherwise.
    Auto,
    /// A bidirectional sockrpc stream per task, one message in flight: sockrpc-stream.
    Stream,
    /// TLS: raw-tls (a tokio-rustls echo, the TLS floor) and sockrpc-tls. The embedded server
    /// makes its certificate in memory.
    Tls,
    /// sockrpc over TCP with the middleware stack on both sides (a span per call at INFO with a
    /// subscriber that drops its output, retry on the client, a concurrency limit on the server,
    /// metrics into a Prometheus recorder): sockrpc-stack.
    Stack,
    /// sockrpc-tcp again with `--idle-connections` connections open and idle to the same server:
    /// sockrpc-tcp-idle (with a unix: --target, sockrpc-uds again with idle Unix connections:
    /// sockrpc-uds-idle). Idle connections must not slow calls on a busy one.
    Idle,
    /// sockrpc over TCP with per-message compression both ways: sockrpc-gzip, sockrpc-zstd
    /// (embedded server only; the payload is one byte repeated, so try --payload 65536). Not
    /// part of `all`.
    Compression,
    /// Every transport above but compression.
    All,
}

/// What `--transport all` (the default) measures; `--help` lists its rows from it too.
const ALL: [Transport; 8] = [
    Transport::Tcp,
    Transport::Udp,
    Transport::Uds,
    Transport::Auto,
    Transport::Stream,
    Transport::Tls,
    Transport::Stack,
    Transport::Idle,
];

/// `sockrpc bench` flags.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Transports to measure, comma-separated, or `all`. Not with --call or --rate (over TCP,
    /// or TLS with a tls:// --target).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    transport: Vec<Transport>,
    /// Payload sizes in bytes, comma-separated, each once: one table each. Not with --call (the
    /// request is -d's JSON); with --rate, one size.
    #[arg(long, value_name = "BYTES", value_delimiter = ',', default_value = "64,4096",
          value_parser = parse_payload)]
    payload: Vec<usize>,
    /// Calls in flight: N client tasks each looping calls. A comma-separated list (each value
    /// once) makes one table per value. Each --payload times each value must be at most 1 GiB.
    /// Not with --rate (whose calls in flight --max-in-flight bounds).
    #[arg(long, value_name = "N", value_delimiter = ',', default_value = "1",
          value_parser = parse_positive)]
    concurrency: Vec<usize>,
    /// Connections in the pool of the one sockrpc channel the tasks share; at most
    /// --concurrency. Calls fill one connection up to --calls-per-connection before the next.
    /// Raw TCP cannot multiplex: its rows use one connection per task. Not with --balance,
    /// whose channel makes its own pools.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_positive)]
    connections: usize,
    /// Calls in flight a pooled connection takes before calls go to the next one (the
    /// channel's `Endpoint::calls_per_connection`); 1 spreads calls over the pool one by one.
    /// Not with --balance, whose channel makes its own pools.
    #[arg(long, value_name = "N", default_value = "64", value_parser = parse_positive)]
    calls_per_connection: usize,
    /// Seconds each row runs [default: 2, unless --calls is given].
    #[arg(long, value_name = "SECS", value_parser = parse_secs, conflicts_with = "calls")]
    duration: Option<Duration>,
    /// Calls each row makes, instead of running for --duration.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    calls: Option<u64>,
    /// Calls made on each row's connections before measuring, in each round (0: none). A warmup
    /// also ends after as long as the row then measures in that round (its share of
    /// --duration), or 10 s with --calls; the row's note says when it did.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    warmup: u64,
    /// Gives every sockrpc call this deadline, in seconds (the channel's default timeout), as
    /// production callers should: the rows then include what keeping a deadline costs. A call
    /// still waiting on its connection when its deadline passes fails and counts as an error;
    /// the deadline runs from when the channel takes the encoded request (as tonic's endpoint
    /// timeout), so encoding and decoding a large message fall outside it, and tokio's timer
    /// fires it up to a millisecond late. Raw rows have none. Not with --balance.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, conflicts_with = "balance")]
    timeout: Option<Duration>,
    /// Measure a running `sockrpc serve` at tcp://HOST:PORT (or, served with --tls-cert, at
    /// tls://HOST:PORT: then the TLS rows) instead of an embedded server. Its Unix socket
    /// (`serve --uds`) as unix:PATH, unix:///ABSOLUTE/PATH or (Linux) unix-abstract:NAME: then
    /// sockrpc-uds, sockrpc-stream and sockrpc-uds-idle run over it, and with --udp-target
    /// sockrpc-udp and sockrpc-auto fall back to it (not with --uds-target).
    #[arg(long, value_name = "tcp://HOST:PORT")]
    target: Option<String>,
    /// With a tls:// --target: the PEM file of the CAs to trust (a self-signed server
    /// certificate works as its own CA) [default: the platform's CAs].
    #[arg(long, value_name = "PEM", requires = "target")]
    tls_ca: Option<PathBuf>,
    /// With a tls:// --target: this client's certificate chain, for a server that asks for one
    /// (mutual TLS); with --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With a tls:// --target: the name to check the server's certificate against (and send in
    /// SNI) [default: the target's host].
    #[arg(long, value_name = "NAME", requires = "target")]
    tls_server_name: Option<String>,
    /// With a tls:// --target: the server's raw TLS echo (the `raw-tls=` address `sockrpc serve
    /// --tls-cert` prints). Without it, the raw-tls row is skipped.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    raw_tls_target: Option<String>,
    /// With --target: the server's raw echo (the `raw=` address `sockrpc serve` prints). Without
    /// it, the raw rows are skipped.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    raw_target: Option<String>,
    /// With --target: the server's raw UDP echo (the `raw-udp=` address `sockrpc serve
    /// --raw-udp` prints). Without it, the raw-udp row is skipped.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    raw_udp_target: Option<String>,
    /// With a tcp:// or tls:// --target: the server's Unix socket (the `uds=` path, or
    /// `unix-abstract:NAME`, that `sockrpc serve --uds` prints). Without it, the sockrpc-uds row
    /// is skipped.
    #[arg(long, value_name = "PATH", requires = "target", value_parser = crate::uds::parse)]
    uds_target: Option<PathBuf>,
    /// With --target: the server's sockrpc UDP port (the `udp=` address `sockrpc serve --udp`
    /// prints). Without it, the sockrpc-udp and sockrpc-auto rows are skipped.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    udp_target: Option<String>,
    /// Write every row as JSON to this file (`-`: stdout, the tables then going to stderr). A
    /// run that is interrupted (Ctrl-C, SIGTERM) writes the tables (with --rate, the rates) it
    /// finished, marked `"partial": true`.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Draw latency by percentile, one line per row, as an SVG at this path (`-`: stdout, as
    /// --json -).
    #[arg(long, value_name = "PATH.svg")]
    plot: Option<PathBuf>,
    /// Idle connections the sockrpc-tcp-idle row (sockrpc-uds-idle with a unix: --target)
    /// holds open to the server while it measures (each has sent its preface and then
    /// nothing). Capped by the open-file limit, raised to its hard limit for the row; the row
    /// says when it was capped.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    idle_connections: usize,
    /// Runs the whole sequence of rows this many times, each row getting its share of the time
    /// (or calls) per round, and reports each row over all its rounds. Raw and sockrpc rows then
    /// sample the same stretches of a machine whose speed drifts (a VM whose cross-CPU wake-up
    /// cost changes within minutes), so their ratio is not skewed by when each row ran. For the
    /// transport rows: refused with `--call`, `--rate` and `--balance` (which run once). At
    /// most 1000. Default: 3 (fewer when `--calls` is fewer, one call per round at least).
    #[arg(long, value_name = "N", value_parser = parse_rounds)]
    rounds: Option<usize>,
    /// Worker threads of the embedded server's runtime (1 to 1024).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS, value_parser = parse_server_workers)]
    server_workers: usize,
    /// Measure this unary method of your own service at --target instead of the built-in rows
    /// (package.Service/Method; descriptors from the server's reflection, or --proto).
    #[arg(long, value_name = "METHOD", requires = "target")]
    call: Option<String>,
    /// With --call: the request as JSON, `@FILE` or `@-` (stdin) [default: `{}`].
    #[arg(
        short = 'd',
        long = "data",
        value_name = "JSON|@FILE|@-",
        requires = "call",
        allow_hyphen_values = true
    )]
    data: Option<String>,
    /// With --call or --rate: metadata sent with every call, `key:value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY:VALUE")]
    header: Vec<String>,
    /// With --call: `.proto` files describing the service, instead of reflection; repeatable.
    #[arg(long, value_name = "FILE", requires = "call")]
    proto: Vec<PathBuf>,
    /// Directories the imports of --proto files resolve against [default: each file's own].
    #[arg(long, value_name = "DIR", requires = "proto")]
    import_path: Vec<PathBuf>,
    /// Open loop: send this many calls per second on a fixed schedule, whatever the answers
    /// do, latency measured from each call's scheduled send (no coordinated omission); the
    /// achieved rate and the dropped slots are reported. A list (`10k,50k,100k`) is a sweep,
    /// one row per rate; each rate at most once. On --call's method, or the bench service's Echo
    /// with --payload (one size; without it, the first default). Not with --concurrency or
    /// --transport.
    #[arg(long, value_name = "CALLS/S", value_delimiter = ',',
          value_parser = open_loop::parse_rate)]
    rate: Vec<f64>,
    /// With --rate: most calls in flight; a slot that finds this many is dropped (counted, and
    /// warned about on stderr: the percentiles leave dropped calls out).
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_in_flight: u64,
    /// With --rate: busy-wait the last millisecond before each scheduled send instead of
    /// sleeping (tokio's timer has 1 ms resolution): sends leave within microseconds of their
    /// slot, but the client keeps a CPU busy. Leave off when the server shares this machine's
    /// CPUs; the reported send lag says how late sends were either way.
    #[arg(long, requires = "rate")]
    spin: bool,
    /// With --rate: draw latency (p50, p90, p99, p99.9) against the asked rate, as an SVG
    /// (`-`: stdout, as --json -).
    #[arg(long, value_name = "PATH.svg", requires = "rate")]
    rate_plot: Option<PathBuf>,
    /// Compare every row's p50, p99 and throughput with the same row of a saved --json
    /// report; changes beyond noise are flagged `*` (p50/p99: the saved value is outside this
    /// run's 95% order-statistic interval and over 3% away; throughput: over 5% away).
    #[arg(long, value_name = "OLD.json")]
    compare: Option<PathBuf>,
    /// With several servers (`--target tcp://A,tcp://B`) or `--target dns://NAME:PORT`: how the
    /// one balanced channel picks a server per call. Rows are then `sockrpc-balanced` only, and
    /// each reports the calls every server answered.
    #[arg(long, value_enum)]
    balance: Option<balanced::Balance>,
    /// With `--target dns://NAME:PORT` (or grpc-go's `dns:///NAME:PORT`): the DNS server to ask
    /// (IP:PORT) [default: the system's; `dns://DNS-SERVER[:PORT]/NAME:PORT` names it too].
    #[arg(long, value_name = "IP:PORT")]
    dns_server: Option<std::net::SocketAddr>,
}

impl BenchArgs {
    /// Rounds of the built-in rows: `--rounds`, or [`DEFAULT_ROUNDS`] cut to the calls of a
    /// `--calls` budget so that every round makes one.
    fn rounds(&self) -> usize {
        self.rounds.unwrap_or_else(|| match self.calls {
            Some(calls) => usize::try_from(calls)
                .map_or(DEFAULT_ROUNDS, |calls| calls.clamp(1, DEFAULT_ROUNDS)),
            None => DEFAULT_ROUNDS,
        })
    }

    /// What each row runs for: `--calls` when given, else `--duration`, else
    /// [`DEFAULT_SECS`]; the same for every mode of `bench`.
    fn budget(&self) -> Budget {
        match (self.calls, self.duration) {
            (Some(calls), _) => Budget::Calls(calls),
            (None, Some(time)) => Budget::Time(time),
            (None, None) => Budget::Time(Duration::from_secs_f64(DEFAULT_SECS)),
        }
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

/// `addr` as text, or `-`.
fn or_dash(addr: Option<impl std::fmt::Display>) -> String {
    addr.map_or_else(|| "-".to_owned(), |addr| addr.to_string())
}

/// Installs a Prometheus recorder for the stack rows' metrics, as `serve --metrics` would, and
/// runs its upkeep every few seconds on a thread of its own, as its exporter would (nobody
/// scrapes it here).
fn install_recorder() -> Result<(), Box<dyn Error>> {
    let handle = sockrpc_middleware::metrics::prometheus::install()?;
    std::thread::Builder::new()
        .name("sockrpc-bench-metrics".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        })?;
    Ok(())
}

/// Runs `sockrpc bench`.
pub(crate) fn run(args: BenchArgs) -> Result<(), Box<dyn Error>> {
    if args.dns_server.is_some()
        && !args
            .target
            .as_deref()
            .is_some_and(|t| t.starts_with("dns:"))
    {
        return Err("--dns-server goes with a --target dns://NAME:PORT".into());
    }
    options::check_lists_distinct(&args)?;
    if args.call.is_none() {
        check_in_flight(&args.payload, &args.concurrency)?;
    }
    options::check_outputs(&args)?;
    let stdout = Path::new(crate::atomic_file::STDOUT);
    if [&args.json, &args.plot, &args.rate_plot]
        .into_iter()
        .any(|path| path.as_deref() == Some(stdout))
    {
        // `--json -`: stdout holds the report alone; the tables go to stderr.
        crate::out::give_stdout_to_report();
    }
    let saved = args.compare.as_deref().map(compare::load).transpose()?;
    if balanced::wanted(&args) {
        return balanced::run(&args, saved.as_ref());
    }
    if args.call.is_some() || !args.rate.is_empty() {
        return call_mode::run(&args, saved.as_ref());
    }
    let rounds = args.rounds();
    if let Some(calls) = args.calls {
        if calls < rounds as u64 {
            return Err(format!(
                "--calls {calls} cannot be shared over --rounds {rounds}: every round needs a \
                 call; give at least as many --calls as --rounds"
            )
            .into());
        }
    }
    let mut wanted = args.transport.clone();
    if wanted.contains(&Transport::All) {
        wanted = ALL.to_vec();
    }
    let stack = wanted.contains(&Transport::Stack) && args.target.is_none();
    if stack {
        // For the whole run, so every row runs with the same subscriber and recorder and the
        // ratio compares like with like; the bare rows make no spans and record nothing.
        stack::install_dropping_subscriber();
        install_recorder()?;
    }
    let plan = Plan {
        budget: args.budget(),
        warmup: args.warmup,
        connections: args.connections,
        calls_per_connection: args.calls_per_connection,
        idle_connections: args.idle_connections,
        rounds,
        embedded: args.target.is_none(),
        timeout: args.timeout,
    };

    let (embedded, tls) = match args.target {
        Some(_) => {
            let tls = crate::tls::client_from_flags(
                args.tls_ca.as_deref(),
                args.tls_cert.as_deref(),
                args.tls_key.as_deref(),
                args.tls_server_name.as_deref(),
            )?;
            (None, Some(tls))
        }
        None => {
            let pair = if wanted.contains(&Transport::Tls) {
                Some(crate::tls::made_in_memory()?)
            } else {
                None
            };
            let (server_tls, client_tls) = pair.map(|pair| (pair.server, pair.client)).unzip();
            let embedded = Embedded::start(
                args.server_workers,
                wanted.contains(&Transport::Uds),
                wanted.contains(&Transport::Udp) || wanted.contains(&Transport::Auto),
                server_tls,
                stack,
            )?;
            (Some(embedded), client_tls)
        }
    };
    let compressed = match (&embedded, wanted.contains(&Transport::Compression)) {
        (Some(_), true) => Some(compressed::CompressedServer::start(args.server_workers)?),
        _ => None,
    };
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut targets =
        client.block_on(targets(&args, embedded.as_ref().map(Embedded::bound), tls))?;
    if let Some(server) = &compressed {
        targets.compressed = compressed::ENCODINGS
            .iter()
            .filter_map(|encoding| Some((*encoding, server.endpoint(*encoding)?)))
            .collect();
    }
    options::check_some_row_runs(&wanted, &targets, &args.payload, &args.concurrency)?;
    let machine = Machine::this();
    match &embedded {
        Some(server) => crate::out::outln!(
            "sockrpc bench: embedded server ({} workers; {} raw={}{}{}{}), client on a \
             current-thread runtime; {} CPUs available",
            args.server_workers,
            targets.main(),
            server.bound().raw_tcp,
            targets.tls.as_ref().map_or_else(String::new, |tls| format!(
                " {tls} raw-tls={}",
                or_dash(server.bound().raw_tls)
            )),
            targets
                .udp
                .map_or_else(String::new, |udp| format!(" udp={udp}")),
            targets
                .uds
                .as_ref()
                .map_or_else(String::new, |uds| format!(" {uds}")),
            std::thread::available_parallelism().map_or(1, usize::from),
        ),
        None => crate::out::outln!(
            "sockrpc bench: target {} raw={} raw-tls={} raw-udp={} udp={} uds={}",
            targets.main(),
            or_dash(targets.raw_tcp),
            or_dash(targets.raw_tls.as_ref().map(|(addr, _)| addr)),
            or_dash(targets.raw_udp),
            or_dash(targets.udp),
            or_dash(targets.uds.as_ref()),
        ),
    }
    crate::out::outln!();

    let setup = || {
        Setup::new(
            match &args.target {
                Some(_) => targets.main(),
                None => "embedded".to_owned(),
            },
            args.target.is_none().then_some(args.server_workers),
            plan.budget,
            plan.warmup,
            plan.rounds,
        )
    };
    let finished = partial::Finished::new(args.json.as_ref(), setup())?;
    let progress = progress_bar();
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
            // Kept before it is printed: a table on the screen is in an interrupt's report.
            finished.push(group);
            progress.suspend(|| crate::out::outln!("{table}"));
        }
    }
    let groups = finished.take();
    progress.finish_and_clear();
    // Close the client side first, so the server's drain finds no connection left.
    drop(client);
    if let Some(server) = embedded {
        server.stop()?;
    }
    drop(compressed);
    if let Some(path) = &args.json {
        outputs::write_file(path, || {
            report::write_json(path, &machine, &setup(), &groups)
        })?;
    }
    // Every row has run and been reported; a row that measured nothing fails the run.
    outputs::finish(&args, &groups, saved.as_ref())
}
