//! `sockrpc bench`'s reports: `--compare` reads the saved run before this one is written over
//! it, a report that cannot be read or written is an error before anything runs, and the
//! balanced rows honour `--compare` and `--plot` as every other run does.

mod support;

use support::*;

fn bench_tcp(extra: &[&str]) -> Output {
    run(tcp_bench("0.05").args(extra))
}

/// The report was written before `--compare` read its file: `--json run.json --compare
/// run.json` (compare with the last run, save this one) compared the run with itself, every
/// change +0.0 %. The saved run is now read first.
#[test]
fn compare_with_the_file_json_overwrites_reads_the_saved_run() {
    let json = temp_path("same.json");
    let path = json.to_str().expect("utf-8 path");
    let first = bench_tcp(&["--json", path]);
    assert!(first.status.success(), "{first:?}");
    // A saved run no new one can match to the tenth of a microsecond.
    let mut saved = read_json(&json);
    for row in saved["rows"].as_array_mut().expect("rows") {
        row["p50_us"] = Value::from(1234.5);
    }
    std::fs::write(&json, saved.to_string()).expect("rewrite the saved run");
    let second = bench_tcp(&["--json", path, "--compare", path]);
    let _ = std::fs::remove_file(&json);
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{second:?}");
    assert!(
        stdout.contains("sockrpc-tcp") && stdout.contains("1234.5→"),
        "{stdout}"
    );
}

/// A `--compare` file that is missing, or a `--json` or `--plot` path with no directory, was
/// found out only after every row had run, and the run was lost. Both are now refused first.
#[test]
fn unreadable_and_unwritable_reports_are_refused_before_the_run() {
    let missing = temp_path("no-such-dir").join("r.json");
    let missing = missing.to_str().expect("utf-8 path");
    for flag in ["--compare", "--json", "--plot"] {
        let output = bench_tcp(&[flag, missing]);
        assert_refused_before_running(&output, 1, &format!("{flag} {missing}"), "raw-tcp");
    }
}

/// With several targets, `--compare` and `--plot` were taken and dropped without a word.
#[test]
fn balanced_rows_are_compared_and_plotted() {
    let (mut a, line_a) = serve(&[]);
    let (mut b, line_b) = serve(&[]);
    let target = format!("tcp://{},tcp://{}", tcp_addr(&line_a), tcp_addr(&line_b));
    let (json, svg) = (temp_path("balanced.json"), temp_path("balanced.svg"));
    let (json_arg, svg_arg) = (json.to_str().expect("utf-8"), svg.to_str().expect("utf-8"));
    let balanced = |extra: &[&str]| {
        run(sockrpc()
            .args(["bench", "--target", &target, "--payload", "64"])
            .args(["--duration", "0.05", "--warmup", "0"])
            .args(extra))
    };
    let first = balanced(&["--json", json_arg]);
    let second = balanced(&["--compare", json_arg, "--plot", svg_arg]);
    terminate(&mut a);
    terminate(&mut b);
    let stdout = String::from_utf8_lossy(&second.stdout);
    let plotted = std::fs::read_to_string(&svg).unwrap_or_default();
    let _ = (std::fs::remove_file(&json), std::fs::remove_file(&svg));
    assert!(first.status.success(), "{first:?}");
    assert!(second.status.success(), "{second:?}");
    assert!(stdout.contains("compared with"), "{stdout}");
    assert!(plotted.contains("<svg"), "no plot written:\n{stdout}");
}

/// The open-loop JSON row wrote `--max-in-flight` as its `concurrency`, a closed-loop figure
/// the run never had. It now has `max_in_flight` and no `concurrency`; `--compare` finds its
/// rows in such a report, and in one written before (the cap as `concurrency`).
#[test]
fn an_open_loop_report_names_its_cap_and_old_reports_still_compare() {
    let json = temp_path("open-loop.json");
    let path = json.to_str().expect("utf-8 path");
    let open_loop = |extra: &[&str]| {
        run_ok(
            sockrpc()
                .args(["bench", "--rate", "200", "--max-in-flight", "7"])
                .args(["--duration", "0.2", "--warmup", "0"])
                .args(extra),
        )
    };
    open_loop(&["--json", path]);
    let report = read_json(&json);
    let row = &report["rows"][0];
    assert_eq!(row["name"], "open-loop 200/s", "{report:#}");
    assert_eq!(row["max_in_flight"], 7, "{row:#}");
    assert!(row.get("concurrency").is_none(), "{row:#}");
    assert!(
        row["open_loop"]["peak_in_flight"].as_u64().is_some(),
        "{row:#}"
    );
    // Saved with a p50 no new run matches: as written, and as a run before `max_in_flight`
    // would have written it.
    let mut saved = report.clone();
    saved["rows"][0]["p50_us"] = Value::from(1234.5);
    std::fs::write(&json, saved.to_string()).expect("rewrite the report");
    let old_row = saved["rows"][0].as_object_mut().expect("a row");
    old_row.remove("max_in_flight");
    old_row.insert("concurrency".to_owned(), Value::from(7));
    let old_json = temp_path("open-loop-old.json");
    std::fs::write(&old_json, saved.to_string()).expect("write the old report");
    let compared: Vec<String> = [&json, &old_json]
        .iter()
        .map(|saved| open_loop(&["--compare", saved.to_str().expect("utf-8 path")]))
        .collect();
    let _ = (std::fs::remove_file(&json), std::fs::remove_file(&old_json));
    for stdout in compared {
        assert!(
            stdout.contains("1234.5→") && !stdout.contains("not in the saved run"),
            "{stdout}"
        );
    }
}

/// `--plot` of a run in which no row measured a call (the target refused every connection)
/// never ended: the latency axis of no point ran from infinity to infinity, and drawing its
/// tick marks looped for ever. Now the run ends, exit code 1, naming the failed row and
/// saying why there is no plot; no file is left.
#[test]
fn a_plot_of_no_measured_row_ends_with_an_error() {
    let refused = Refused::loopback();
    let svg = temp_path("nothing.svg");
    let output = run(tcp_bench("0.05").args([
        "--target",
        &format!("tcp://{}", refused.addr()),
        "--rounds",
        "1",
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]));
    let written = svg.exists();
    let _ = std::fs::remove_file(&svg);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("sockrpc-tcp 64 B ×1: could not connect"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing to draw"), "{stderr}");
    assert!(!written, "a plot of nothing was written");
}

/// `--json r --plot r` wrote the report, said `wrote r`, then wrote the SVG over it and said
/// `wrote r` again: the report the user asked for was gone. Two outputs naming one file (as
/// written, or `./r` beside `r`) are now refused before anything runs.
#[test]
fn two_outputs_naming_one_file_are_refused_before_the_run() {
    let report = temp_path("both.json");
    let path = report.to_str().expect("utf-8 path");
    let dir = report.parent().expect("a directory");
    let name = report.file_name().expect("a name").to_str().expect("utf-8");
    let dotted = dir.join(".").join(name);
    let dotted = dotted.to_str().expect("utf-8 path");
    let cases = [
        (["--json", path, "--plot", path], "--json and --plot"),
        (["--json", path, "--plot", dotted], "--json and --plot"),
    ];
    for (args, says) in cases {
        let output = bench_tcp(&args);
        let written = report.exists();
        let _ = std::fs::remove_file(&report);
        assert_refused_before_running(&output, 1, says, "raw-tcp");
        assert!(!written, "{output:?}");
    }
    let rate = run(sockrpc().args([
        "bench",
        "--rate",
        "100",
        "--duration",
        "0.1",
        "--warmup",
        "0",
        "--plot",
        path,
        "--rate-plot",
        path,
    ]));
    let _ = std::fs::remove_file(&report);
    assert_refused_before_running(&rate, 1, "--plot and --rate-plot", "open-loop");
}

/// `--json` and `--plot` truncated the file and then wrote it: a run stopped in between left
/// a truncated report where the last good one was, and a reader that had the old file open
/// (here: a second name for it) saw it change under it, half written on the way. Each is now
/// written beside and renamed over the old one: the old file stays whole, the path gets the
/// new one whole, and no temporary file is left.
#[test]
fn reports_replace_the_old_files_whole() {
    let dir = temp_path("whole");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (json, svg) = (dir.join("r.json"), dir.join("r.svg"));
    for (path, old) in [(&json, "old.json"), (&svg, "old.svg")] {
        std::fs::write(path, "the last good report").expect("old report");
        std::fs::hard_link(path, dir.join(old)).expect("second name");
    }
    let output = bench_tcp(&[
        "--json",
        json.to_str().expect("utf-8 path"),
        "--plot",
        svg.to_str().expect("utf-8 path"),
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let (new_json, new_svg, old_json, old_svg) = (
        read("r.json"),
        read("r.svg"),
        read("old.json"),
        read("old.svg"),
    );
    let files = std::fs::read_dir(&dir).map_or(0, Iterator::count);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{output:?}");
    assert!(
        serde_json::from_str::<Value>(&new_json).is_ok(),
        "{new_json}"
    );
    assert!(new_svg.contains("<svg"), "{new_svg}");
    assert_eq!(old_json, "the last good report");
    assert_eq!(old_svg, "the last good report");
    assert_eq!(files, 4, "a temporary file was left");
}

/// A `--rate` sweep none of whose calls was answered (every call fails with UNAVAILABLE) and
/// given `--rate-plot` returned the plot's "nothing to draw" before `--json` was written: the
/// report of the failed rates, asked for, was lost, and the failed rows went unnamed. The
/// report is now written first; the run then fails naming the rows and the plot.
#[test]
fn a_sweep_with_nothing_to_draw_still_writes_its_report() {
    let (mut server, lines) =
        spawn_server(sockrpc().args(["interop", "server", "--addr", "127.0.0.1:0"]));
    let line = first_line(&lines);
    let addr = line
        .trim_end()
        .strip_prefix("listening tcp=")
        .expect("address");
    let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let (json, svg) = (
        temp_path("failed-sweep.json"),
        temp_path("failed-sweep.svg"),
    );
    let output = run(sockrpc().args([
        "bench",
        "--target",
        &format!("tcp://{addr}"),
        "--call",
        "grpc.testing.TestService/UnaryCall",
        "--import-path",
        proto.to_str().expect("utf-8 path"),
        "--proto",
        proto
            .join("grpc/testing/test.proto")
            .to_str()
            .expect("utf-8 path"),
        "-d",
        r#"{"responseStatus": {"code": 14, "message": "down"}}"#,
        "--rate",
        "100,200",
        "--duration",
        "0.1",
        "--warmup",
        "0",
        "--json",
        json.to_str().expect("utf-8 path"),
        "--rate-plot",
        svg.to_str().expect("utf-8 path"),
    ]));
    terminate(&mut server);
    let report = std::fs::read_to_string(&json).unwrap_or_default();
    let _ = (std::fs::remove_file(&json), std::fs::remove_file(&svg));
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&report)
        .unwrap_or_else(|err| panic!("no report ({err}):\n{stdout}\n{stderr}"));
    assert_eq!(
        report["rows"].as_array().map(Vec::len),
        Some(2),
        "{report:#}"
    );
    assert!(stderr.contains("open-loop 100/s"), "{stderr}");
    assert!(stderr.contains("nothing to draw"), "{stderr}");
}

/// `--json -` wrote a file named `-` in the working directory, where most tools (curl, tar)
/// take `-` for stdout. It is stdout now, and stdout holds the report alone (`| jq` reads it):
/// the tables and the `wrote` line go to stderr. `--plot -` writes its SVG there the same way;
/// two outputs given `-` are refused before anything runs.
#[test]
fn a_dash_writes_the_report_to_stdout_alone() {
    let dir = temp_path("dash");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let json = run(tcp_bench("0.05").current_dir(&dir).args(["--json", "-"]));
    let svg = run(tcp_bench("0.05").current_dir(&dir).args(["--plot", "-"]));
    let both = run(tcp_bench("0.05")
        .current_dir(&dir)
        .args(["--json", "-", "--plot", "-"]));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|names| {
            names
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = texts(&json);
    assert!(json.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("stdout is not the report alone ({err}):\n{stdout}"));
    assert!(
        report["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "{report:#}"
    );
    assert!(
        stderr.contains("raw-tcp"),
        "the table is on stderr: {stderr}"
    );
    assert!(stderr.contains("wrote the report to stdout"), "{stderr}");
    let (stdout, stderr) = texts(&svg);
    assert!(svg.status.success(), "{stderr}");
    assert!(
        stdout.trim_start().starts_with("<svg") && stdout.trim_end().ends_with("</svg>"),
        "stdout is not the SVG alone:\n{stdout}"
    );
    assert_refused_before_running(&both, 1, "--json - and --plot -", "raw-tcp");
    assert!(
        left.is_empty(),
        "files left in the working directory: {left:?}"
    );
}

/// `bench --call`'s failed calls read `Unavailable: down` where the built-in rows write
/// `UNAVAILABLE: down` (the code as gRPC names it), and an open-loop row that measured nothing
/// failed without the first error a closed-loop row names. Both now say it one way.
#[test]
fn call_mode_errors_read_as_the_built_in_rows_do() {
    let (mut server, lines) =
        spawn_server(sockrpc().args(["interop", "server", "--addr", "127.0.0.1:0"]));
    let line = first_line(&lines);
    let addr = line
        .trim_end()
        .strip_prefix("listening tcp=")
        .expect("address");
    let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let test_proto = proto.join("grpc/testing/test.proto");
    let target = format!("tcp://{addr}");
    let call = |extra: &[&str]| {
        run(sockrpc()
            .args(["bench", "--target", &target])
            .args(["--call", "grpc.testing.TestService/UnaryCall"])
            .args(["--import-path", proto.to_str().expect("utf-8 path")])
            .args(["--proto", test_proto.to_str().expect("utf-8 path")])
            .args([
                "-d",
                r#"{"responseStatus": {"code": 14, "message": "down"}}"#,
            ])
            .args(["--warmup", "0"])
            .args(extra))
    };
    let closed = call(&["--calls", "3"]);
    let open = call(&["--rate", "100", "--duration", "0.1"]);
    terminate(&mut server);
    for (what, output) in [("closed loop", closed), ("open loop", open)] {
        let (stdout, stderr) = texts(&output);
        assert_eq!(output.status.code(), Some(1), "{what}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("first error: UNAVAILABLE: down"),
            "{what}: the note: {stdout}"
        );
        assert!(
            stderr.contains("no call succeeded") && stderr.contains("first: UNAVAILABLE: down"),
            "{what}: the failure: {stderr}"
        );
    }
}
