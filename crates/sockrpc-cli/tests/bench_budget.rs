//! `sockrpc bench` budgets at their edges: `--calls` shared over `--rounds`, and `--calls` at
//! an open-loop `--rate`. What a run reports it made must be what it made, and a budget no run
//! can hold is refused before anything starts, not a panic.

mod support;

use support::*;

/// `--rate 1 --calls 18446744073709551615` made each rate's time `calls / rate` seconds, past
/// what a `Duration` holds: the conversion panicked (exit 101) once the embedded server had
/// started. A time over a day (the bound of `--duration`) is now refused, naming the flags.
#[test]
fn calls_at_a_rate_past_a_day_are_refused_not_a_panic() {
    for calls in ["18446744073709551615", "86401"] {
        let output =
            run(sockrpc().args(["bench", "--rate", "1", "--calls", calls, "--warmup", "0"]));
        // Refused before the run, not a panic: no header, no row.
        let says = format!("--calls {calls} at --rate 1 calls/s would run for over a day");
        assert_refused_before_running(&output, 1, &says, "open-loop");
    }
}

/// Each round took `calls / rounds` calls, at least one: `--calls 5 --rounds 3` measured 3
/// calls per row (and `--calls 1 --rounds 1000` 1000) under a title and a JSON `calls_per_row`
/// of 5. The rounds now add up to `--calls`.
#[test]
fn calls_shared_over_rounds_add_up_to_the_calls_asked() {
    let report = tcp_calls_report("calls-rounds.json", 5, &["--rounds", "3"]);
    assert_eq!(report["setup"]["calls_per_row"], 5, "{report:#}");
    assert_eq!(
        report["rows"].as_array().expect("rows").len(),
        2,
        "{report:#}"
    );
    assert_every_row_made(&report, 5);
}

/// The JSON report of the TCP rows at 64 B with a budget of `calls` calls, no warmup, and
/// `extra` flags.
fn tcp_calls_report(name: &str, calls: u64, extra: &[&str]) -> Value {
    let json = temp_path(name);
    let calls = calls.to_string();
    run_ok(
        sockrpc()
            .args([
                "bench",
                "--transport",
                "tcp",
                "--payload",
                "64",
                "--calls",
                &calls,
            ])
            .args([
                "--warmup",
                "0",
                "--json",
                json.to_str().expect("utf-8 path"),
            ])
            .args(extra),
    );
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    report
}

/// Every row of `report` made `calls` calls, measured or failed.
fn assert_every_row_made(report: &Value, calls: u64) {
    for row in report["rows"].as_array().expect("rows") {
        let made = row["calls"].as_u64().expect("calls") + row["errors"].as_u64().expect("errors");
        assert_eq!(made, calls, "{row:#}");
    }
}

/// Fewer calls than rounds leaves a round with nothing to measure: refused up front, saying
/// what to give, rather than quietly making one call per round.
#[test]
fn fewer_calls_than_rounds_are_refused() {
    let output = run(sockrpc().args([
        "bench",
        "--transport",
        "tcp",
        "--calls",
        "2",
        "--rounds",
        "3",
        "--warmup",
        "0",
    ]));
    let says = "--calls 2 cannot be shared over --rounds 3";
    assert_refused_before_running(&output, 1, says, "raw-tcp");
}

/// Without `--rounds`, the built-in rows run in three interleaved rounds (one round let a host
/// that drifted within the run skew every ratio), said in the table's title and the JSON.
#[test]
fn rows_run_in_three_interleaved_rounds_by_default() {
    let json = temp_path("default-rounds.json");
    let out = run_ok(tcp_bench("0.3").args(["--json", json.to_str().expect("utf-8 path")]));
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["setup"]["rounds"], 3, "{report:#}");
    assert!(out.contains("in 3 interleaved rounds"), "{out}");
}

/// A `--calls` budget smaller than the default rounds runs fewer rounds rather than being
/// refused for a `--rounds` nobody gave: every call asked is made, in one round per call.
#[test]
fn calls_fewer_than_the_default_rounds_run_one_round_each() {
    for calls in [1u64, 2] {
        let report = tcp_calls_report(&format!("default-rounds-{calls}.json"), calls, &[]);
        assert_eq!(report["setup"]["rounds"], calls, "{report:#}");
        assert_every_row_made(&report, calls);
    }
}
