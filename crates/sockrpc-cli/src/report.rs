//! What a run measured, as a table on stdout and as JSON.
//!
//! Every latency is read from an HDR histogram of nanoseconds (3 significant figures) and shown
//! in microseconds. `×raw` is a row's p50 over the raw-tcp p50 of the same payload and
//! concurrency in the same run: the floor moves with the machine, the ratio much less.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::{fmt::Write as _, io, path::Path, time::Duration};

/// The name of the row every ratio refers to.
pub(crate) const FLOOR: &str = "raw-tcp";

/// One measured row.
#[derive(Debug)]
pub(crate) struct Row {
    /// `raw-tcp`, `raw-tcp-pipelined`, `raw-udp`, `sockrpc-tcp`, `sockrpc-udp`, `sockrpc-uds`,
    /// `sockrpc-auto`, `sockrpc-stream`.
    pub(crate) name: &'static str,
    /// `tcp`, `udp`, `uds`, or `auto` (UDP when a call fits a datagram, TCP otherwise).
    pub(crate) transport: &'static str,
    /// Payload size of each call.
    pub(crate) payload_bytes: usize,
    /// Calls in flight (an open loop's: its `max_in_flight`, which its tables are titled by).
    pub(crate) concurrency: usize,
    /// An open loop's `--max-in-flight`, the most calls it may have in flight. Its calls in
    /// flight are whatever the schedule and the answers make them (the JSON's
    /// `open_loop.peak_in_flight`), so the JSON row has this and no `concurrency`.
    pub(crate) max_in_flight: Option<u64>,
    /// Connections (sockets, for UDP) the calls ran on.
    pub(crate) connections: usize,
    /// Latencies of the successful calls, in nanoseconds.
    pub(crate) hist: Histogram<u64>,
    /// Failed calls.
    pub(crate) errors: u64,
    /// Wall time of the measured phase.
    pub(crate) elapsed: Duration,
    /// Why the row looks the way it does: the first error, a stall, how it was run.
    pub(crate) note: Option<String>,
    /// With several servers (`bench --target A,B` or `dns://`): calls each server answered.
    pub(crate) servers: Option<std::collections::BTreeMap<String, u64>>,
    /// Why the row measured nothing (it could not connect, its warmup stalled): the run then
    /// fails, once every row has run.
    pub(crate) failed: Option<String>,
}

impl Row {
    /// A row before its first call: no latencies, no errors, no time, no notes. Every bench row
    /// starts so and is filled in by its run.
    pub(crate) fn empty(
        name: &'static str,
        transport: &'static str,
        payload_bytes: usize,
        concurrency: usize,
        connections: usize,
    ) -> Row {
        Row {
            name,
            transport,
            payload_bytes,
            concurrency,
            connections,
            hist: Histogram::new(3)
                .unwrap_or_else(|_| unreachable!("3 significant figures are valid")),
            errors: 0,
            elapsed: Duration::ZERO,
            note: None,
            servers: None,
            max_in_flight: None,
            failed: None,
        }
    }

    /// Adds a later round of the same row: its latencies, errors and time. The notes stay the
    /// first round's (what they count, they count for that round), unless it had none.
    pub(crate) fn absorb(&mut self, later: Row) {
        if self.hist.add(&later.hist).is_err() {
            // Both histograms resize themselves; a failure would mean a value past u64.
            self.errors += later.calls();
        }
        self.errors += later.errors;
        self.elapsed += later.elapsed;
        if self.note.is_none() {
            self.note = later.note;
        }
        if self.failed.is_none() {
            self.failed = later.failed;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.servers, later.servers) {
            for (server, calls) in theirs {
                *mine.entry(server).or_default() += calls;
            }
        }
    }

    /// Successful calls.
    pub(crate) fn calls(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at `quantile` in µs; `None` when no call succeeded.
    pub(crate) fn quantile_us(&self, quantile: f64) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn max_us(&self) -> Option<f64> {
        (!self.hist.is_empty()).then(|| self.hist.max() as f64 / 1000.0)
    }

    /// Successful calls per second.
    pub(crate) fn throughput(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0 && !self.hist.is_empty()).then(|| self.calls() as f64 / secs)
    }

    /// This row's p50 over `floor`'s p50.
    fn ratio(&self, floor: Option<f64>) -> Option<f64> {
        Some(self.quantile_us(0.5)? / floor.filter(|f| *f > 0.0)?)
    }
}

/// The rows of one payload and concurrency, with the notes about rows not measured.
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Payload size.
    pub(crate) payload_bytes: usize,
    /// Calls in flight.
    pub(crate) concurrency: usize,
    /// The rows, in the order they ran.
    pub(crate) rows: Vec<Row>,
    /// Rows skipped, and why.
    pub(crate) skipped: Vec<String>,
}

impl Group {
    fn floor_p50(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|row| row.name == FLOOR)
            .and_then(|row| row.quantile_us(0.5))
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The rows of `groups` that measured nothing, one line each (`name payload ×concurrency:
/// why`; an open loop's `name payload: why`, its rate in its name), as an error; `Ok` when
/// every row was measured. An open-loop row's concurrency is its `--max-in-flight`, a cap and
/// not calls in flight: "open-loop 500/s 4 B ×10000" read as 10 000 tasks.
pub(crate) fn failures(groups: &[Group]) -> Result<(), String> {
    let failed: Vec<String> = groups
        .iter()
        .flat_map(|group| &group.rows)
        .filter_map(|row| {
            let why = row.failed.as_ref()?;
            Some(match row.max_in_flight {
                Some(_) => format!("{} {} B: {why}", row.name, row.payload_bytes),
                None => format!(
                    "{} {} B ×{}: {why}",
                    row.name, row.payload_bytes, row.concurrency
                ),
            })
        })
        .collect();
    let rows: usize = groups.iter().map(|group| group.rows.len()).sum();
    match failed.as_slice() {
        [] => Ok(()),
        [one] => Err(format!("1 of {rows} rows failed: {one}")),
        many => Err(format!(
            "{} of {rows} rows failed:\n  {}",
            many.len(),
            many.join("\n  ")
        )),
    }
}

/// Renders one group as a table, notes underneath, titled with its payload, concurrency and
/// `budget`.
pub(crate) fn table(group: &Group, budget: &str) -> String {
    let title = format!(
        "payload {} B, concurrency {}, {budget}",
        group.payload_bytes, group.concurrency
    );
    titled_table(group, &title)
}

/// [`table`] under a title of the caller's: an open-loop group has no concurrency of its own
/// (its calls leave on a schedule), and titling it with `--max-in-flight` as one misled.
pub(crate) fn titled_table(group: &Group, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    // The name column fits the longest name (a `--call` row is named after its method), so
    // the figures stay under their headings.
    let width = group
        .rows
        .iter()
        .map(|row| row.name.chars().count())
        .fold(18, usize::max);
    let _ = writeln!(
        out,
        "{:<width$} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>7} {:>6}",
        "name",
        "conns",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "calls/s",
        "errors",
        "×raw"
    );
    let floor = group.floor_p50();
    let mut notes = Vec::new();
    for row in &group.rows {
        let _ = writeln!(
            out,
            "{:<width$} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11} {:>7} {:>6}",
            row.name,
            row.connections,
            cell(row.quantile_us(0.5), 1),
            cell(row.quantile_us(0.9), 1),
            cell(row.quantile_us(0.99), 1),
            cell(row.quantile_us(0.999), 1),
            cell(row.max_us(), 1),
            cell(row.throughput(), 0),
            row.errors,
            cell(row.ratio(floor), 2),
        );
        if let Some(note) = &row.note {
            notes.push(format!("{}: {note}", row.name));
        }
    }
    for note in notes.iter().chain(&group.skipped) {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}

/// The machine the run was made on.
#[derive(Debug, Serialize)]
pub(crate) struct Machine {
    /// CPUs this process may run on (a `taskset` mask counts).
    cpus: usize,
    os: &'static str,
    arch: &'static str,
    /// Kernel release, where the OS tells.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<String>,
}

impl Machine {
    /// Describes this machine.
    pub(crate) fn this() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    name: &'a str,
    transport: &'a str,
    payload_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<u64>,
    connections: usize,
    calls: u64,
    errors: u64,
    p50_us: Option<f64>,
    p90_us: Option<f64>,
    p99_us: Option<f64>,
    p999_us: Option<f64>,
    max_us: Option<f64>,
    throughput_rps: Option<f64>,
    ratio_p50_to_raw: Option<f64>,
    elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    servers: Option<&'a std::collections::BTreeMap<String, u64>>,
}

/// How the run was made: the server measured and the budget of every row.
#[derive(Debug, Serialize)]
pub(crate) struct Setup {
    /// `embedded` or the `--target` endpoint.
    pub(crate) server: String,
    /// Worker threads of the embedded server's runtime; `None` for a target.
    pub(crate) server_workers: Option<usize>,
    /// Seconds per row, when rows ran for a time.
    pub(crate) duration_s: Option<f64>,
    /// Calls per row, when rows ran for a call count.
    pub(crate) calls_per_row: Option<u64>,
    /// Calls before each row's measurement (in each round).
    pub(crate) warmup_calls: u64,
    /// Times the sequence of rows ran (`--rounds`); each row's figures cover all of them.
    pub(crate) rounds: usize,
}

impl Setup {
    /// The setup of a run whose rows each had `budget`, after `warmup` calls, in `rounds`.
    pub(crate) fn new(
        server: String,
        server_workers: Option<usize>,
        budget: crate::load::Budget,
        warmup_calls: u64,
        rounds: usize,
    ) -> Setup {
        use crate::load::Budget;
        Setup {
            server,
            server_workers,
            duration_s: match budget {
                Budget::Time(time) => Some(time.as_secs_f64()),
                Budget::Calls(_) => None,
            },
            calls_per_row: match budget {
                Budget::Calls(calls) => Some(calls),
                Budget::Time(_) => None,
            },
            warmup_calls,
            rounds,
        }
    }
}

#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    machine: &'a Machine,
    setup: &'a Setup,
    sockrpc_version: &'static str,
    rows: Vec<JsonRow<'a>>,
    /// Rows not measured, and why.
    skipped: Vec<String>,
    /// The run was interrupted: `rows` are the tables it finished, not all it was asked for.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
}

/// Rounds to what the histogram resolves, so the JSON does not pretend to more digits.
fn round3(value: Option<f64>) -> Option<f64> {
    value.map(|v| (v * 1000.0).round() / 1000.0)
}

/// Writes every group's rows, and the notes on rows skipped, as one JSON document.
pub(crate) fn write_json(
    path: &Path,
    machine: &Machine,
    setup: &Setup,
    groups: &[Group],
) -> io::Result<()> {
    write(path, machine, setup, groups, false)
}

/// [`write_json`] for a run interrupted before its end: the groups it finished, marked
/// `"partial": true`.
pub(crate) fn write_partial_json(
    path: &Path,
    machine: &Machine,
    setup: &Setup,
    groups: &[Group],
) -> io::Result<()> {
    write(path, machine, setup, groups, true)
}

fn write(
    path: &Path,
    machine: &Machine,
    setup: &Setup,
    groups: &[Group],
    partial: bool,
) -> io::Result<()> {
    with_report(machine, setup, groups, partial, |report| {
        write_text(path, serde_json::to_string_pretty(report))
    })
}

/// The JSON document [`write_json`] writes, for a mode that adds to it before it is written
/// (the open loop's figures): one write of the whole, not a write and a rewrite.
pub(crate) fn json_report(
    machine: &Machine,
    setup: &Setup,
    groups: &[Group],
) -> io::Result<serde_json::Value> {
    with_report(machine, setup, groups, false, |report| {
        serde_json::to_value(report).map_err(io::Error::other)
    })
}

/// Writes `report` to `path` as [`write_json`] writes its document.
pub(crate) fn write_value(path: &Path, report: &serde_json::Value) -> io::Result<()> {
    write_text(path, serde_json::to_string_pretty(report))
}

/// Writes the pretty-printed JSON, with a final newline, whole or not at all (see
/// [`crate::atomic_file`]).
fn write_text(path: &Path, text: serde_json::Result<String>) -> io::Result<()> {
    let mut text = text.map_err(io::Error::other)?;
    text.push('\n');
    crate::atomic_file::write(path, text.as_bytes())
}

/// Hands `use_it` the JSON document of every group's rows, and the notes on rows skipped.
fn with_report<T>(
    machine: &Machine,
    setup: &Setup,
    groups: &[Group],
    partial: bool,
    use_it: impl FnOnce(&JsonReport<'_>) -> io::Result<T>,
) -> io::Result<T> {
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for group in groups {
        let floor = group.floor_p50();
        for row in &group.rows {
            rows.push(JsonRow {
                name: row.name,
                transport: row.transport,
                payload_bytes: row.payload_bytes,
                concurrency: row.max_in_flight.is_none().then_some(row.concurrency),
                max_in_flight: row.max_in_flight,
                connections: row.connections,
                calls: row.calls(),
                errors: row.errors,
                p50_us: round3(row.quantile_us(0.5)),
                p90_us: round3(row.quantile_us(0.9)),
                p99_us: round3(row.quantile_us(0.99)),
                p999_us: round3(row.quantile_us(0.999)),
                max_us: round3(row.max_us()),
                throughput_rps: round3(row.throughput()),
                ratio_p50_to_raw: round3(row.ratio(floor)),
                elapsed_s: round3(Some(row.elapsed.as_secs_f64())).unwrap_or(0.0),
                note: row.note.as_deref(),
                servers: row.servers.as_ref(),
            });
        }
        skipped.extend(group.skipped.iter().map(|note| {
            format!(
                "payload {} B, concurrency {}: {note}",
                group.payload_bytes, group.concurrency
            )
        }));
    }
    let report = JsonReport {
        machine,
        setup,
        sockrpc_version: env!("CARGO_PKG_VERSION"),
        rows,
        skipped,
        partial,
    };
    use_it(&report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &'static str) -> Row {
        let mut row = Row::empty(name, "tcp", 64, 1, 1);
        row.hist.record(20_000).expect("a value in range");
        row.elapsed = Duration::from_secs(1);
        row
    }

    /// The column (in characters) where the `index`th word of `line` ends.
    fn word_end(line: &str, index: usize) -> usize {
        let mut words = 0;
        let mut in_word = false;
        for (column, c) in line.chars().enumerate() {
            if c == ' ' && in_word {
                if words == index {
                    return column;
                }
                words += 1;
            }
            in_word = c != ' ';
        }
        assert_eq!(words, index, "{line} has no word {index}");
        line.chars().count()
    }

    /// A failed open-loop row is named by its rate and payload, not by its in-flight cap as if
    /// that were its concurrency.
    #[test]
    fn a_failed_open_loop_row_is_not_named_by_its_cap() {
        let mut closed = Row::empty("sockrpc-tcp", "tcp", 64, 4, 1);
        closed.failed = Some("down".to_owned());
        let mut open = Row::empty("open-loop 500/s", "tcp", 66, 10_000, 1);
        open.max_in_flight = Some(10_000);
        open.failed = Some("down".to_owned());
        let group = Group {
            rows: vec![closed, open],
            ..Group::default()
        };
        let err = failures(&[group]).expect_err("two failed rows");
        assert!(err.contains("sockrpc-tcp 64 B ×4: down"), "{err}");
        assert!(err.contains("open-loop 500/s 66 B: down"), "{err}");
        assert!(!err.contains("×10000"), "{err}");
    }

    #[test]
    fn a_long_name_widens_its_column_and_keeps_the_figures_under_their_headings() {
        let long = "grpc.testing.TestService/StreamingOutputCallWithAVeryLongName";
        let group = Group {
            payload_bytes: 64,
            concurrency: 1,
            rows: vec![row(FLOOR), row(long)],
            skipped: Vec::new(),
        };
        let text = table(&group, "1 s");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[3].starts_with(long), "{text}");
        // The headings are one word each but "p50 µs"-style pairs: calls/s is word 12.
        let calls_heading = word_end(lines[1], 12);
        for line in &lines[2..4] {
            // Words: name, conns, p50, p90, p99, p99.9, max, calls/s.
            assert_eq!(word_end(line, 7), calls_heading, "{text}");
        }
    }
}
