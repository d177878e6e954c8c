//! `sockrpc bench` flags a benchmark author may push past what a run can hold: each must be a
//! one-line usage error before any server starts or any buffer is allocated, not a panic, an
//! abort for memory, or a run that cannot end.

mod support;

use support::*;

/// Runs `bench` with `args` and returns its exit code and stderr, asserting it did not panic.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let output = run(sockrpc().arg("bench").args(args));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("memory allocation"),
        "bench {args:?} crashed: {}\n{stderr}",
        output.status
    );
    (output.status.code(), stderr)
}

/// `--rounds` past u32::MAX made every row's share of the time a division by zero (a panic once
/// the embedded server ran); any count past the bound would also run for ever, each round
/// paying its warmup. Now the flag is bounded.
#[test]
fn rounds_past_the_bound_are_a_usage_error() {
    for rounds in ["4294967296", "1000001"] {
        let (code, stderr) = refused(&[
            "--transport",
            "tcp",
            "--duration",
            "0.01",
            "--warmup",
            "0",
            "--rounds",
            rounds,
        ]);
        assert_eq!(code, Some(2), "--rounds {rounds}: {stderr}");
        assert!(stderr.contains("--rounds"), "{stderr}");
    }
}

/// Each task of a row holds its own payload (a sockrpc caller its request, a raw connection
/// its frame and its reply buffer), so `--payload 4MiB --concurrency 10000` asked for about
/// 80 GB and died of it. The product is now bounded before anything starts. The child runs
/// under a 4 GB address-space limit, so without the bound it aborts rather than swapping the
/// machine.
#[cfg(unix)]
#[test]
fn payload_times_concurrency_past_the_bound_is_refused_before_allocating() {
    let bin = env!("CARGO_BIN_EXE_sockrpc");
    let output = run(Command::new("sh").args([
        "-c",
        "ulimit -v 4000000 && exec \"$0\" \"$@\"",
        bin,
        "bench",
        "--transport",
        "tcp",
        "--payload",
        "64,4194240",
        "--concurrency",
        "10000",
        "--duration",
        "0.01",
        "--warmup",
        "0",
    ]));
    // Refused up front (not a panic, not an abort): no row ran, not even the 64 B ones that fit.
    let says = "--payload 4194240 B × --concurrency 10000";
    assert_refused_before_running(&output, 1, says, "raw-tcp");
}

/// More streams than the server takes calls on one connection (4096 by default): the stream
/// past the limit waited for a slot its open siblings never free, and the run hung before its
/// first row was printed. Now each open is bounded: the row fails, named, and the run exits 1.
#[test]
fn streams_past_the_servers_call_limit_fail_the_row_instead_of_hanging() {
    let output = run(sockrpc().args([
        "bench",
        "--transport",
        "stream",
        "--concurrency",
        "4097",
        "--duration",
        "0.01",
        "--warmup",
        "0",
    ]));
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}\n{stdout}");
    assert!(
        stderr.contains("sockrpc-stream 64 B ×4097") && stderr.contains("stream 4097 of 4097"),
        "{stderr}"
    );
    // The table was still printed (its raw-tcp row skipped: 4097 connections are past the raw
    // echo's cap).
    assert!(stdout.contains("raw-tcp skipped"), "{stdout}");
}

/// At `--rate 1` for half a second the one slot was answered in a millisecond, and the row's
/// time ran only to that answer: it reported hundreds of calls per second for a rate of one.
/// A row's time now spans at least its schedule.
#[test]
fn an_open_loop_row_reports_no_more_throughput_than_its_schedule_allows() {
    let json = temp_path("rate-one.json");
    run_ok(sockrpc().args([
        "bench",
        "--rate",
        "1,5",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]));
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{report:#}");
    for (row, most) in rows.iter().zip([1.0, 5.0]) {
        let rps = row["throughput_rps"].as_f64().expect("throughput");
        assert!(rps > 0.0 && rps <= most * 1.01, "{row:#}");
    }
}

/// `--target` at a port that is not sockrpc (here `serve`'s raw echo, which accepts and then
/// closes on the preface): every call failed, the table showed dashes, and the run exited 0 as
/// if it had measured something. A row with no successful call now fails the run.
#[test]
fn a_target_that_answers_no_call_fails_the_run() {
    let (mut server, line) = serve(&[]);
    let raw = listed_addr(&line, "raw");
    let output = run(tcp_bench("0.1").args(["--target", &format!("tcp://{raw}")]));
    terminate(&mut server);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("sockrpc-tcp 64 B ×1: no call succeeded"),
        "{stderr}"
    );
}

/// `serve --tcp` on a port in use said only `Address already in use`, unlike the UDP and Unix
/// listeners, which name theirs: now the listener and its address are named too.
#[test]
fn serve_on_a_port_in_use_names_the_listener_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let output = run(sockrpc().args(["serve", "--tcp", &addr]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind TCP {addr}")),
        "{stderr}"
    );
}

/// A worker count past the bound is a usage error, not a runtime that tries to start that many
/// threads (past the machine's thread limit it cannot, and on the way it starves the machine).
#[test]
fn worker_counts_past_the_bound_are_a_usage_error() {
    let (code, stderr) = refused(&["--transport", "tcp", "--server-workers", "100000"]);
    assert_eq!(code, Some(2), "bench --server-workers 100000: {stderr}");
    assert!(stderr.contains("--server-workers"), "{stderr}");
    let output = run(sockrpc().args(["serve", "--workers", "100000"]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "serve --workers 100000: {stderr}"
    );
    assert!(stderr.contains("--workers"), "{stderr}");
}

/// Raw TCP opens one connection per call in flight, and the raw echo serves at most 4096: at
/// 5000 the echo closed the connections past its cap as they came, so the row measured fewer
/// connections than it said (a release run: 1,446 calls failed "early eof"; with no errors, a
/// row whose connections had been closed and were not noticed in its short run). It is now
/// skipped, saying why, and the sockrpc rows are measured.
#[test]
fn raw_rows_past_the_echos_connection_cap_are_skipped_saying_why() {
    let output = run(sockrpc().args([
        "bench",
        "--transport",
        "tcp",
        "--concurrency",
        "5000",
        "--duration",
        "0.05",
        "--warmup",
        "0",
    ]));
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("raw-tcp skipped") && stdout.contains("at most 4096"),
        "{stdout}"
    );
    assert!(stdout.contains("sockrpc-tcp"), "{stdout}");
}
