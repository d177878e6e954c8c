//! The rows `sockrpc bench --help` says a default run prints, worked out from what the run
//! itself uses (`--transport all`'s transports, the `--payload` and `--concurrency` defaults,
//! the rows [`kinds`] picks) rather than written out by hand: a hand-written list lacked
//! `sockrpc-stack` and `sockrpc-tcp-idle` once they joined the default run.

use super::parse::{parse_payload, parse_positive};
use super::plan::{kinds, Targets};
use super::ALL;
use crate::report::Group;
use crate::server::DEFAULT_WORKERS;
use clap::Command;

/// The values of the `bench` flag `id`'s default (`64,4096`), each parsed by `parse`.
fn defaults<T>(cmd: &Command, id: &str, parse: fn(&str) -> Result<T, String>) -> Vec<T> {
    cmd.get_arguments()
        .filter(|arg| arg.get_id() == id)
        .flat_map(|arg| arg.get_default_values())
        .filter_map(|value| value.to_str())
        .flat_map(|text| text.split(','))
        .filter_map(|text| parse(text).ok())
        .collect()
}

/// The paragraph that names a default run's rows, per default payload and concurrency.
pub(super) fn default_rows(cmd: &Command) -> String {
    let targets = Targets::embedded_placeholder();
    let concurrencies = defaults(cmd, "concurrency", parse_positive);
    let mut lines = vec![format!(
        "With no arguments, starts an embedded server in this process (its own \
         {DEFAULT_WORKERS}-worker runtime on its own thread) and measures these rows one after \
         another, one table per payload and --concurrency:"
    )];
    for payload in defaults(cmd, "payload", parse_payload) {
        for &concurrency in &concurrencies {
            let mut group = Group::default();
            let names: Vec<&str> = kinds(&ALL, &targets, payload, concurrency, &mut group)
                .into_iter()
                .map(|kind| kind.name())
                .collect();
            lines.push(format!(
                "- {payload} B, concurrency {concurrency}: {}",
                names.join(", ")
            ));
        }
    }
    lines.join("\n")
}

/// `bench`'s command with [`default_rows`] after the first paragraph of its long help.
pub(crate) fn with_default_rows(cmd: Command) -> Command {
    let rows = default_rows(&cmd);
    let long = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    let long = match long.split_once("\n\n") {
        Some((first, rest)) => format!("{first}\n\n{rows}\n\n{rest}"),
        None => format!("{long}\n\n{rows}"),
    };
    cmd.long_about(long)
}
