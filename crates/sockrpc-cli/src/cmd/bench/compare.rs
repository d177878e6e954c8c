//! `--compare old.json`: each row's p50, p99 and throughput against the same row (same name,
//! payload and concurrency, or an open loop's `max_in_flight`) of a saved `--json` report,
//! flagged when the change is beyond noise.
//!
//! How noise is judged: a percentile measured from n calls is uncertain by the spread of the
//! order statistic. The 95 % confidence interval of the q-quantile runs from the value at rank
//! `n·q − 1.96·√(n·q·(1−q))` to the one at `n·q + 1.96·√(n·q·(1−q))` of this run's histogram
//! (distribution-free: no shape is assumed). A p50 or p99 change is flagged when the saved value
//! lies outside that interval *and* differs by more than [`MIN_LATENCY_CHANGE`] (a floor for
//! what a machine drifts between runs anyway). Throughput has no distribution per run to draw on:
//! a change beyond [`THROUGHPUT_NOISE`] is flagged.

use crate::report::{Group, Row};
use serde_json::Value;
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

/// Smallest relative latency change that is flagged, however narrow the interval.
const MIN_LATENCY_CHANGE: f64 = 0.03;

/// Relative throughput change beyond which it is flagged.
const THROUGHPUT_NOISE: f64 = 0.05;

/// z for a two-sided 95 % interval.
const Z95: f64 = 1.96;

/// Whether the saved row `old` is `row` run again: same name and payload, and the same
/// concurrency, or for an open loop the same `max_in_flight` (which reports before it had
/// that field wrote as `concurrency`, and are still read so).
fn same_row(old: &Value, row: &Row) -> bool {
    let in_flight = match row.max_in_flight {
        Some(cap) => {
            old["max_in_flight"]
                .as_u64()
                .or_else(|| old["concurrency"].as_u64())
                == Some(cap)
        }
        None => {
            old["max_in_flight"].is_null()
                && old["concurrency"].as_u64() == Some(row.concurrency as u64)
        }
    };
    old["name"] == row.name
        && old["payload_bytes"].as_u64() == Some(row.payload_bytes as u64)
        && in_flight
}

/// What the `conc` column shows for `row`: an open loop has no fixed calls in flight.
fn concurrency_cell(row: &Row) -> String {
    match row.max_in_flight {
        Some(_) => "-".to_owned(),
        None => row.concurrency.to_string(),
    }
}

/// The 95 % confidence interval of `row`'s `quantile`, in µs.
fn interval_us(row: &Row, quantile: f64) -> Option<(f64, f64)> {
    let n = row.hist.len() as f64;
    if n < 1.0 {
        return None;
    }
    let spread = Z95 * (n * quantile * (1.0 - quantile)).sqrt();
    let at = |rank: f64| {
        let q = (rank / n).clamp(0.0, 1.0);
        row.hist.value_at_quantile(q) as f64 / 1000.0
    };
    Some((at(n * quantile - spread), at(n * quantile + spread)))
}

/// One compared value: `old → new (±x.x %)`, with `*` when flagged.
fn cell(old: Option<f64>, new: Option<f64>, flagged: impl Fn(f64, f64) -> bool) -> (String, bool) {
    match (old, new) {
        (Some(old), Some(new)) if old > 0.0 => {
            let change = (new - old) / old;
            let flag = flagged(old, new);
            (
                format!(
                    "{old:.1}→{new:.1} ({:+.1}%){}",
                    change * 100.0,
                    if flag { " *" } else { "" }
                ),
                flag,
            )
        }
        _ => ("-".to_owned(), false),
    }
}

/// The rows of a saved `--json` report. Read before the run: a missing or broken file is an
/// error before anything is measured, not after, and `--json run.json --compare run.json`
/// compares with the run saved before, not with the one just written over it.
#[derive(Debug)]
pub(super) struct Saved {
    path: PathBuf,
    rows: Vec<Value>,
}

/// Reads the report `--compare` names.
pub(super) fn load(path: &Path) -> Result<Saved, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("--compare {}: {err}", path.display()))?;
    let old: Value = serde_json::from_str(&text)
        .map_err(|err| format!("--compare {}: not JSON: {err}", path.display()))?;
    let rows = old["rows"]
        .as_array()
        .ok_or_else(|| format!("--compare {}: no \"rows\" array", path.display()))?
        .clone();
    Ok(Saved {
        path: path.to_owned(),
        rows,
    })
}

/// The comparison table, and how many values were flagged.
pub(super) fn compare(groups: &[Group], saved: &Saved) -> (String, usize) {
    let (old_path, old_rows) = (&saved.path, &saved.rows);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "compared with {} (* beyond noise: p50/p99 outside this run's 95% interval and over \
         {:.0}% apart; throughput over {:.0}% apart)",
        old_path.display(),
        MIN_LATENCY_CHANGE * 100.0,
        THROUGHPUT_NOISE * 100.0
    );
    let _ = writeln!(
        out,
        "{:<22} {:>7} {:>4}  {:<28} {:<28} {:<30}",
        "name", "bytes", "conc", "p50 µs old→new", "p99 µs old→new", "calls/s old→new"
    );
    let mut flagged = 0;
    for row in groups.iter().flat_map(|group| group.rows.iter()) {
        let matching = old_rows.iter().find(|old| same_row(old, row));
        let Some(old) = matching else {
            let _ = writeln!(
                out,
                "{:<22} {:>7} {:>4}  not in the saved run",
                row.name,
                row.payload_bytes,
                concurrency_cell(row)
            );
            continue;
        };
        let latency = |quantile: f64| {
            let interval = interval_us(row, quantile);
            move |old: f64, new: f64| {
                let outside = interval.is_some_and(|(lo, hi)| old < lo || old > hi);
                outside && ((new - old) / old).abs() > MIN_LATENCY_CHANGE
            }
        };
        let (p50, f50) = cell(old["p50_us"].as_f64(), row.quantile_us(0.5), latency(0.5));
        let (p99, f99) = cell(old["p99_us"].as_f64(), row.quantile_us(0.99), latency(0.99));
        let (rps, frps) = cell(
            old["throughput_rps"].as_f64(),
            row.throughput(),
            |old, new| ((new - old) / old).abs() > THROUGHPUT_NOISE,
        );
        flagged += usize::from(f50) + usize::from(f99) + usize::from(frps);
        let _ = writeln!(
            out,
            "{:<22} {:>7} {:>4}  {p50:<28} {p99:<28} {rps:<30}",
            row.name,
            row.payload_bytes,
            concurrency_cell(row)
        );
    }
    let _ = writeln!(out, "{flagged} value(s) beyond noise");
    (out, flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn row(latencies_us: impl Iterator<Item = u64>) -> Row {
        let mut row = Row::empty("r", "tcp", 64, 1, 1);
        for us in latencies_us {
            row.hist.record(us * 1000).expect("record");
        }
        row.elapsed = Duration::from_secs(1);
        row
    }

    #[test]
    fn a_shift_beyond_the_interval_is_flagged_and_noise_is_not() {
        // 10 000 calls spread evenly over 100..=199 µs: p50 ≈ 150 µs, a tight interval.
        let group = Group {
            payload_bytes: 64,
            concurrency: 1,
            rows: vec![row((0..10_000).map(|i| 100 + i % 100))],
            skipped: Vec::new(),
        };
        let dir = std::env::temp_dir().join(format!("sockrpc-compare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("old.json");
        let old = |p50: f64, rps: f64| {
            serde_json::json!({"rows": [{"name": "r", "payload_bytes": 64, "concurrency": 1,
                "p50_us": p50, "p99_us": 199.0, "throughput_rps": rps}]})
            .to_string()
        };
        std::fs::write(&path, old(150.0, 10_000.0)).expect("write");
        let (_, flagged) = compare(std::slice::from_ref(&group), &load(&path).expect("load"));
        assert_eq!(flagged, 0);
        std::fs::write(&path, old(120.0, 12_000.0)).expect("write");
        let (table, flagged) = compare(std::slice::from_ref(&group), &load(&path).expect("load"));
        assert_eq!(flagged, 2, "{table}");
        assert!(table.contains('*'), "{table}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// An open-loop row wrote `--max-in-flight` as its `concurrency`; it now writes
    /// `max_in_flight`, and a saved run of either kind still finds its rows.
    #[test]
    fn open_loop_rows_match_by_max_in_flight_in_new_and_old_reports() {
        let mut open = row(std::iter::once(100));
        open.name = "open-loop 100/s";
        open.concurrency = 7;
        open.max_in_flight = Some(7);
        let saved = |in_flight: Value| {
            let mut old = serde_json::json!({"name": "open-loop 100/s", "payload_bytes": 64});
            if let (Some(old), Some(fields)) = (old.as_object_mut(), in_flight.as_object()) {
                old.extend(fields.clone());
            }
            old
        };
        let new = saved(serde_json::json!({"max_in_flight": 7}));
        let old = saved(serde_json::json!({"concurrency": 7}));
        let other = saved(serde_json::json!({"max_in_flight": 8}));
        assert!(same_row(&new, &open) && same_row(&old, &open));
        assert!(!same_row(&other, &open));
        // A closed-loop row of concurrency 7 is not an open loop capped at 7.
        let mut closed = row(std::iter::once(100));
        closed.name = "open-loop 100/s";
        closed.concurrency = 7;
        assert!(!same_row(&new, &closed) && same_row(&old, &closed));
    }
}
