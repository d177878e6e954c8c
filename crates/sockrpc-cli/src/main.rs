//! `sockrpc`: latency benchmarks against the raw-socket floor (`sockrpc bench`), the server
//! they can measure across processes or machines (`sockrpc serve`), and gRPC's interop cases
//! across two processes (`sockrpc interop server|client`).
//!
//! # Layout
//! - [`cmd::bench`]: the benchmark plan, row by row, and its output.
//! - [`cmd::serve`]: the standalone benchmark server.
//! - [`cmd::interop`]: the interop server and client (crate `sockrpc-interop`).
//! - [`cmd::call`], [`cmd::list`], [`cmd::describe`], [`cmd::health`]: any service from the
//!   command line, through [`cmd::dynamic`] (descriptors, JSON, codec-free calls).
//! - [`server`]: what both bench commands serve: the `Bench` service (TCP; UDP and a Unix
//!   socket when asked), the raw TCP and UDP echoes.
//! - [`proto`]: the `Bench` service, its echo implementation, the unary and stream callers.
//! - [`raw`]: the raw-socket floor, server and client side.
//! - [`stack`]: the middleware stack of the `sockrpc-stack` rows and `serve --metrics`.
//! - [`interrupt`]: Ctrl-C during a run with the embedded server's Unix socket.
//! - [`load`]: the load generator: tasks looping calls, histograms, stall watchdog, progress.
//! - [`report`]: the table and the JSON; [`plot`]: the SVG; [`atomic_file`]: either written
//!   whole or not at all.
//! - [`uds`]: what `--uds` and `--uds-target` take: a path, or `unix-abstract:NAME`.

mod atomic_file;
mod cmd;
mod interrupt;
mod load;
mod out;
mod plot;
mod proto;
mod raw;
mod raw_echo;
mod raw_tls;
mod report;
mod server;
mod stack;
mod tls;
mod uds;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "sockrpc",
    version,
    about = "sockrpc's command line: latency benchmarks against the raw-socket floor, a \
             benchmark server, and calls and load tests of any service (call, list, describe, \
             health, bench --call/--rate)",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the largest flag set costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Command {
    // `--help` lists the default run's rows after the first paragraph, from the list the run
    // uses (`cmd::bench::with_default_rows`).
    /// Measure unary call latency and throughput against the raw-socket floor.
    ///
    /// Exit code 1 when a row measured nothing (it could not connect, or its warmup stalled):
    /// every row still runs and is reported, then each failed row and why are named on stderr.
    /// Exit code 1 too, before anything runs, when no row asked for can run at the --target.
    /// Exit code 2 for a bad command line (an option the run would not use among them). Exit
    /// code 130 (143) when Ctrl-C (SIGTERM) ends the run. Exit code 141 (any command) when
    /// stdout's reader left early (`| head -1`).
    Bench(cmd::bench::BenchArgs),
    /// Serve the benchmark service and the raw echoes, for `sockrpc bench --target`.
    ///
    /// The first line on stdout is `listening tcp=IP:PORT raw=IP:PORT`, with the ports actually
    /// bound (with --tls-cert: `listening tls=IP:PORT raw=IP:PORT raw-tls=IP:PORT`), then
    /// ` raw-udp=IP:PORT` with --raw-udp, ` uds=PATH` (` uds=unix-abstract:NAME`) with --uds,
    /// ` udp=IP:PORT` with --udp and ` metrics=IP:PORT` with --metrics. Stops on Ctrl-C or
    /// SIGTERM.
    Serve(cmd::serve::ServeArgs),
    /// gRPC's interop test service and cases on sockrpc, across processes.
    Interop(cmd::interop::InteropArgs),
    /// Call any method of any service, request and answers as JSON (like grpcurl).
    ///
    /// Descriptors come from the server's reflection service, or from --proto files. Answers
    /// are printed one JSON object per line on stdout; the status goes to stderr. Streaming
    /// requests are JSON objects one after another, in any layout (-d, -d @FILE, or stdin);
    /// empty input is an empty request, as in grpcurl.
    ///
    /// Exit code: the call's gRPC status code (0 OK, 1 CANCELLED, 2 UNKNOWN, 3 INVALID_ARGUMENT,
    /// 4 DEADLINE_EXCEEDED, 5 NOT_FOUND, ..., 14 UNAVAILABLE (cannot connect), 16
    /// UNAUTHENTICATED); 64 when no call was made because the input was wrong (bad JSON,
    /// unknown service, method, symbol or field, unreadable file); 2 for a bad command line.
    Call(cmd::call::CallArgs),
    /// List the services a server serves (reflection or --proto), or one service's methods.
    ///
    /// Exit code as for `call`.
    List(cmd::list::ListArgs),
    /// Show a service, method, message or enum as .proto text (reflection or --proto).
    ///
    /// Exit code as for `call`.
    Describe(cmd::describe::DescribeArgs),
    /// Ask a server's grpc.health.v1 service whether it (or SERVICE) is serving.
    ///
    /// Prints SERVING, NOT_SERVING, ...; exit code 0 for SERVING, 14 for any other status, or
    /// the call's status code (5: unknown service, 12: no health service).
    Health(cmd::health::HealthArgs),
}

fn main() -> ExitCode {
    let mut command = Cli::command().mut_subcommand("bench", cmd::bench::with_default_rows);
    let matches = command.get_matches_mut();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.format(&mut command).exit());
    if let Some(bench) = matches.subcommand_matches("bench") {
        // An option the mode would ignore is refused as clap refuses a conflict: exit code 2.
        if let Err(message) = cmd::bench::refuse_ignored(bench) {
            let mut bench = command
                .find_subcommand("bench")
                .cloned()
                .unwrap_or_else(|| command.clone());
            bench.error(ErrorKind::ArgumentConflict, message).exit();
        }
    }
    let result = match cli.command {
        Command::Bench(args) => cmd::bench::run(args),
        Command::Serve(args) => cmd::serve::run(args),
        Command::Interop(args) => cmd::interop::run(args),
        // These exit with the call's status code.
        Command::Call(args) => return cmd::call::run(args),
        Command::List(args) => return cmd::list::run(args),
        Command::Describe(args) => return cmd::describe::run(args),
        Command::Health(args) => return cmd::health::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            crate::out::errln!("sockrpc: {err}");
            ExitCode::FAILURE
        }
    }
}
