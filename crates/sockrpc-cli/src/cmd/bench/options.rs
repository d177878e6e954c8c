//! Options refused before anything runs, with one line that says what to do: an option the
//! mode does not use (`--payload` with `--call`, whose request is the JSON given;
//! `--concurrency` with `--rate`, whose open loop sends on a schedule; `--rounds` with
//! `--balance`, whose one balanced row runs once; `--uds-target` with a unix: `--target`,
//! which is the Unix socket itself), which a user would otherwise see silently ignored and
//! trust the figures less; report paths that could not be written once every row had run; and
//! a run none of whose rows can run at the targets given.

use super::plan::{kinds, Targets};
use super::{BenchArgs, Transport};
use crate::report::Group;
use clap::parser::ValueSource;
use clap::ArgMatches;

/// Whether the user gave `id` (on the command line or in the environment), not its default.
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches
        .value_source(id)
        .is_some_and(|source| source != ValueSource::DefaultValue)
}

/// The flags of the built-in rows' extra servers, by argument id, which `--call` and
/// `--rate` do not run.
const ROW_TARGETS: [(&str, &str); 5] = [
    ("raw_target", "--raw-target"),
    ("raw_tls_target", "--raw-tls-target"),
    ("raw_udp_target", "--raw-udp-target"),
    ("udp_target", "--udp-target"),
    ("uds_target", "--uds-target"),
];

/// The flags a balanced run (`--balance`, several targets, a dns:// target) does not use, by
/// argument id, with what each is for: its one `sockrpc-balanced` row calls the bench service's
/// Echo once through a channel that makes its own pools and connections.
const UNUSED_BALANCED: [(&str, &str, &str); 11] = [
    ("call", "--call", "calling one server's method"),
    ("rate", "--rate", "one server's open loop"),
    ("timeout", "--timeout", "one server's calls' deadline"),
    ("transport", "--transport", "the built-in rows' transports"),
    (
        "rounds",
        "--rounds",
        "interleaving the built-in rows' rounds",
    ),
    (
        "idle_connections",
        "--idle-connections",
        "the sockrpc-tcp-idle row",
    ),
    ("connections", "--connections", "one channel's pool"),
    (
        "calls_per_connection",
        "--calls-per-connection",
        "one channel's pool",
    ),
    ("tls_ca", "--tls-ca", "one --target's TLS connection"),
    ("tls_cert", "--tls-cert", "one --target's TLS connection"),
    (
        "tls_server_name",
        "--tls-server-name",
        "one --target's TLS connection",
    ),
];

/// How the user asked for a balanced run, if they did: `--balance`, or a --target that names
/// several servers or a DNS name (as `balanced::wanted` decides from the parsed flags).
fn balanced_mode(matches: &ArgMatches) -> Option<&'static str> {
    if given(matches, "balance") {
        return Some("--balance");
    }
    let target = matches.get_one::<String>("target")?;
    if target.starts_with("dns:") {
        Some("a dns:// --target")
    } else if target.contains(',') {
        Some("several --target servers")
    } else {
        None
    }
}

/// Refuses an option a balanced run would ignore, naming both.
fn refuse_ignored_balanced(matches: &ArgMatches) -> Result<(), String> {
    let Some(mode) = balanced_mode(matches) else {
        return Ok(());
    };
    let unused = UNUSED_BALANCED
        .iter()
        .map(|(id, flag, what)| (*id, *flag, *what))
        .chain(
            ROW_TARGETS
                .iter()
                .map(|(id, flag)| (*id, *flag, "the built-in rows")),
        )
        .find(|(id, _, _)| given(matches, id));
    match unused {
        Some((_, flag, what)) => Err(format!(
            "{flag} has no effect with {mode}: it is for {what}, and the balanced row measures \
             Echo once through a channel of its own; leave {flag} out"
        )),
        None => Ok(()),
    }
}

/// Whether `target` names a Unix socket (`unix:`, `unix-abstract:`).
fn is_unix(target: &str) -> bool {
    target.starts_with("unix:") || target.starts_with("unix-abstract:")
}

/// Refuses a udp:// --target: sockrpc's UDP runs beside a stream transport (a call too large
/// for a datagram goes over it), so a server is named by its tcp://, tls:// or unix: address
/// and its UDP port by --udp-target. The run failed with "unsupported scheme", which said
/// nothing of where the UDP address goes.
fn refuse_udp_target(matches: &ArgMatches) -> Result<(), String> {
    let Some(target) = matches.get_one::<String>("target") else {
        return Ok(());
    };
    match target
        .split(',')
        .find(|one| one.trim().starts_with("udp://"))
    {
        Some(udp) => Err(format!(
            "--target {udp}: a server is measured at its tcp://, tls:// or unix: address, and \
             its sockrpc UDP port given as --udp-target HOST:PORT beside it (the udp= address \
             of `sockrpc serve --udp`)"
        )),
        None => Ok(()),
    }
}

/// The client's TLS flags, by argument id: only a tls:// --target uses them.
const TLS_FLAGS: [(&str, &str); 4] = [
    ("tls_ca", "--tls-ca"),
    ("tls_cert", "--tls-cert"),
    ("tls_key", "--tls-key"),
    ("tls_server_name", "--tls-server-name"),
];

/// Refuses a TLS flag beside a --target that is not tls://: the built-in rows dropped it
/// without a word (a --tls-ca for a server the user thought spoke TLS, measured in plain text).
/// A balanced run refuses them before, whatever its targets.
fn refuse_tls_without_tls(matches: &ArgMatches) -> Result<(), String> {
    let Some(target) = matches.get_one::<String>("target") else {
        return Ok(());
    };
    if target.starts_with("tls://") {
        return Ok(());
    }
    let Some((_, flag)) = TLS_FLAGS.iter().find(|(id, _)| given(matches, id)) else {
        return Ok(());
    };
    let kind = if is_unix(target) { "unix:" } else { "tcp://" };
    Err(format!(
        "{flag} has no effect with a {kind} --target: TLS flags are for a tls:// one; connect \
         to tls://HOST:PORT (the tls= address of `sockrpc serve --tls-cert`), or leave {flag} out"
    ))
}

/// Refuses an option given with a mode that would ignore it, naming both and what to do.
/// `main` reports the message as clap reports a conflict (exit code 2).
pub(crate) fn refuse_ignored(matches: &ArgMatches) -> Result<(), String> {
    refuse_udp_target(matches)?;
    refuse_ignored_balanced(matches)?;
    refuse_tls_without_tls(matches)?;
    let call = given(matches, "call");
    let rate = given(matches, "rate");
    let mode = match (call, rate) {
        (true, true) => "--call --rate",
        (true, false) => "--call",
        (false, true) => "--rate",
        (false, false) => "",
    };
    if call && given(matches, "payload") {
        return Err(
            "--payload has no effect with --call: the request is the JSON of -d/--data \
                    (default `{}`); leave --payload out"
                .to_owned(),
        );
    }
    if call || rate {
        if given(matches, "transport") {
            return Err(format!(
                "--transport has no effect with {mode}: calls go over TCP (TLS with a tls:// \
                 --target, the Unix socket with a unix: one); leave --transport out"
            ));
        }
        if given(matches, "rounds") {
            return Err(format!(
                "--rounds has no effect with {mode}, which runs once: leave --rounds out (or \
                 run the command again)"
            ));
        }
        if given(matches, "idle_connections") {
            return Err(format!(
                "--idle-connections has no effect with {mode}: it is for the sockrpc-tcp-idle \
                 row, which {mode} does not run; leave it out"
            ));
        }
        if let Some((_, flag)) = ROW_TARGETS.iter().find(|(id, _)| given(matches, id)) {
            return Err(format!(
                "{flag} has no effect with {mode}: it is for the built-in rows, which {mode} \
                 does not run; leave it out"
            ));
        }
    }
    let unix_target = matches
        .get_one::<String>("target")
        .is_some_and(|target| is_unix(target));
    if !call && !rate && unix_target && given(matches, "uds_target") {
        return Err(
            "--uds-target has no effect with a unix: --target: the sockrpc-uds row measures the \
             target's own Unix socket; leave --uds-target out"
                .to_owned(),
        );
    }
    if rate && given(matches, "concurrency") {
        return Err(
            "--concurrency has no effect with --rate: the open loop sends on a \
                    schedule whatever is in flight; bound the calls in flight with \
                    --max-in-flight instead"
                .to_owned(),
        );
    }
    let payloads = matches
        .get_many::<usize>("payload")
        .map_or(0, |values| values.len());
    if rate && !call && given(matches, "payload") && payloads > 1 {
        return Err(format!(
            "--rate loads Echo with one payload, and --payload gives {payloads}: give one \
             --payload (run again for another)"
        ));
    }
    if !rate && given(matches, "max_in_flight") {
        return Err(
            "--max-in-flight has no effect without --rate: it bounds the open loop's \
                    calls in flight (a closed loop has --concurrency in flight); add --rate or \
                    leave it out"
                .to_owned(),
        );
    }
    if !call && !rate && given(matches, "header") {
        return Err(
            "-H/--header has no effect without --call or --rate: the built-in rows \
                    send no metadata; leave it out"
                .to_owned(),
        );
    }
    if given(matches, "target") && given(matches, "server_workers") {
        return Err(
            "--server-workers has no effect with --target: it sizes the embedded \
                    server, and there is none; leave it out"
                .to_owned(),
        );
    }
    Ok(())
}

/// Refuses a `--json`, `--plot` or `--rate-plot` path that cannot be written (its directory
/// does not exist, or it is a directory), before anything runs: the error used to come after
/// every row had run, and the run was lost. Two of them naming one file are refused too: the
/// last written replaced the other (`--json r --plot r` left an SVG where the report was
/// said to be written); and so are two of them given `-` (stdout).
pub(super) fn check_outputs(args: &BenchArgs) -> Result<(), String> {
    let outputs = [
        ("--json", &args.json),
        ("--plot", &args.plot),
        ("--rate-plot", &args.rate_plot),
    ];
    let mut seen: Vec<(&str, std::path::PathBuf)> = Vec::new();
    let mut to_stdout: Option<&str> = None;
    for (flag, path) in outputs {
        let Some(path) = path else { continue };
        // `-` is stdout: the one report there, the tables then on stderr.
        if path.as_os_str() == crate::atomic_file::STDOUT {
            if let Some(other) = to_stdout {
                return Err(format!(
                    "{other} - and {flag} - would both write to stdout: give one of them a file"
                ));
            }
            to_stdout = Some(flag);
            continue;
        }
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "{flag} {}: there is no directory {} to write it in: create it, or give \
                 another path",
                path.display(),
                dir.display()
            ));
        }
        if path.is_dir() {
            return Err(format!(
                "{flag} {}: is a directory: give a file's path",
                path.display()
            ));
        }
        // The file's real path (for one not there yet, its directory's and its name):
        // `r.json` and `./r.json`, or a path through a symbolic link, are one file.
        let file = path
            .canonicalize()
            .or_else(|_| {
                dir.canonicalize()
                    .map(|dir| dir.join(path.file_name().unwrap_or_default()))
            })
            .unwrap_or_else(|_| path.clone());
        if let Some((other, _)) = seen.iter().find(|(_, seen)| *seen == file) {
            return Err(format!(
                "{other} and {flag} name one file, {}: the second written would replace the \
                 first; give each its own path",
                path.display()
            ));
        }
        seen.push((flag, file));
    }
    Ok(())
}

/// Refuses a `--payload` or `--concurrency` list that names one value twice (`64,64`), as
/// [`check_rates_distinct`] refuses a rate twice: each value is a table of the same rows, and
/// two rows of one name, payload and concurrency are one row to `--compare` (which compared
/// both with the saved run's first) and to anyone reading the JSON.
pub(super) fn check_lists_distinct(args: &BenchArgs) -> Result<(), String> {
    check_rates_distinct(&args.rate)?;
    for (flag, values) in [
        ("--payload", &args.payload),
        ("--concurrency", &args.concurrency),
    ] {
        for (index, value) in values.iter().enumerate() {
            if values[..index].contains(value) {
                return Err(format!(
                    "{flag} names {value} twice: each value is one table, give each once"
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a `--rate` list that names one rate twice (`1k,1000`): each rate is a row named
/// `open-loop RATE/s`, and two rows of one name are one row to `--compare`, to the JSON's
/// `open_loop` figures and to anyone reading the table.
fn check_rates_distinct(rates: &[f64]) -> Result<(), String> {
    for (index, rate) in rates.iter().enumerate() {
        if rates[..index].contains(rate) {
            return Err(format!(
                "--rate names {rate} calls/s twice: each rate is one row, give each once"
            ));
        }
    }
    Ok(())
}

/// Refuses a run of the built-in rows none of whose rows can run at the `targets` given
/// (`--transport tcp` at a tls:// --target, `--transport tls` at a tcp:// one, `--transport
/// udp` with no UDP address): it printed an empty table, wrote a report of no row and exited
/// 0, a success a script took for a measurement. The error lists why each row is skipped.
pub(super) fn check_some_row_runs(
    wanted: &[Transport],
    targets: &Targets,
    payloads: &[usize],
    concurrencies: &[usize],
) -> Result<(), String> {
    let mut why: Vec<String> = Vec::new();
    for &payload in payloads {
        for &concurrency in concurrencies {
            let mut group = Group::default();
            if !kinds(wanted, targets, payload, concurrency, &mut group).is_empty() {
                return Ok(());
            }
            for note in group.skipped {
                if !why.contains(&note) {
                    why.push(note);
                }
            }
        }
    }
    Err(format!(
        "nothing to measure: every row asked for is skipped:\n  {}",
        why.join("\n  ")
    ))
}
