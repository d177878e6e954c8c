//! What the `sockrpc` binary's end-to-end tests share: running commands with bounded waits
//! (run.rs), `serve` children that are always killed (serve.rs), and reading the JSON
//! reports (here).
// The re-exports are the tests' prelude: each test binary uses some of them.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod run;
mod serve;

pub use run::*;
pub use serde_json::Value;
pub use serve::*;
pub use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// The rows a default run has for a 64-byte payload.
pub const ALL_ROWS: [&str; 9] = [
    "raw-tcp",
    "raw-udp",
    "sockrpc-tcp",
    "sockrpc-udp",
    "sockrpc-uds",
    "sockrpc-auto",
    "sockrpc-stream",
    "sockrpc-stack",
    "sockrpc-tcp-idle",
];

/// The TLS rows a default run with an embedded server adds (its certificate made in memory).
pub const TLS_ROWS: [&str; 2] = ["raw-tls", "sockrpc-tls"];
/// The row that needs the embedded server: a run against `--target` skips it.
pub const EMBEDDED_ONLY: &str = "sockrpc-stack";

/// Fields every JSON row carries.
pub const ROW_FIELDS: [&str; 14] = [
    "name",
    "transport",
    "payload_bytes",
    "concurrency",
    "connections",
    "calls",
    "errors",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
    "throughput_rps",
    "ratio_p50_to_raw",
];

/// A path under cargo's per-target temporary directory, unique to this test.
pub fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()))
}

pub fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).expect("read json");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("bad JSON ({err}):\n{text}"))
}

/// The row named `name`, with every field present and no errors.
pub fn clean_row<'a>(report: &'a Value, name: &str, payload: u64) -> &'a Value {
    let rows = report["rows"].as_array().expect("rows array");
    let row = rows
        .iter()
        .find(|row| row["name"] == name && row["payload_bytes"] == payload)
        .unwrap_or_else(|| panic!("no {name} row for {payload} B in {report:#}"));
    for field in ROW_FIELDS {
        assert!(row.get(field).is_some(), "{name} lacks {field}: {row:#}");
    }
    assert_eq!(row["errors"], 0, "{name} had errors: {row:#}");
    assert!(row["calls"].as_u64().expect("calls") > 0, "{row:#}");
    assert!(row["p50_us"].as_f64().expect("p50") > 0.0, "{row:#}");
    row
}

/// The row's note says UDP answered every call (from the channel's UDP counters).
pub fn assert_over_udp(row: &Value) {
    let note = row["note"].as_str().unwrap_or_default();
    assert!(note.contains("answered over UDP"), "{row:#}");
    assert!(
        note.starts_with("all ") || note.contains("; all "),
        "{row:#}"
    );
}
