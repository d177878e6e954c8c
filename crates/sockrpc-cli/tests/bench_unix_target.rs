//! `bench --target` naming a `serve`'s Unix socket as gRPC names it: `unix:///PATH`
//! (percent-decoded, as grpc-go reads it) or, on Linux, `unix-abstract:NAME` (which `serve
//! --uds` and `bench --uds-target` take too). The sockrpc rows and the idle row run over the
//! socket (the UDP rows fall back to it); `--uds-target` beside it, which would name a second
//! socket, is refused before anything runs.

mod support;

use support::*;

/// A fresh directory under the system temporary directory (a Unix socket path must be short:
/// 108 bytes on Linux), removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sockrpc-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bench --calls CALLS` at 64 B against `target` (more flags in `args`), its JSON report.
fn bench_report(name: &str, target: &str, calls: &str, args: &[&str]) -> Value {
    let json = temp_path(name);
    run_ok(
        sockrpc()
            .args([
                "bench",
                "--calls",
                calls,
                "--warmup",
                "0",
                "--payload",
                "64",
            ])
            .args(["--target", target])
            .args(args)
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    let _ = std::fs::remove_file(json);
    report
}

/// The names of the report's rows, in order.
fn row_names(report: &Value) -> Vec<&str> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["name"].as_str())
        .collect()
}

/// `--target unix:///…%20…` reaches the socket file whose name has a space, and the rows that
/// make sense over a Unix socket run over it: sockrpc-uds, sockrpc-stream and sockrpc-uds-idle
/// (idle Unix connections), every one over the socket ("uds"); with `--udp-target`,
/// sockrpc-udp and sockrpc-auto beside it, over UDP. Before the fix the target's `%20` was
/// taken as written (nothing there: every row failed), and with a plain path the rows ran as
/// sockrpc-tcp and sockrpc-tcp-idle, whose idle connections went to TCP `localhost:0` and
/// failed.
#[test]
fn bench_runs_its_rows_over_a_unix_socket_target() {
    let dir = TempDir::new("unix-target");
    let path = dir.0.join("bench s.sock");
    let (mut server, lines) = spawn_server(
        sockrpc()
            .args([
                "serve",
                "--tcp",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--uds",
            ])
            .arg(&path),
    );
    let line = first_line(&lines);
    let udp = listed_addr(&line, "udp").to_string();
    assert!(
        line.contains(&format!("uds={} udp=", path.display())),
        "{line:?}"
    );
    let shown = path.display().to_string();
    assert!(!shown.contains('%'), "{shown}");
    let target = format!("unix://{}", shown.replace(' ', "%20"));
    let report = bench_report(
        "unix-target.json",
        &target,
        "60",
        &["--idle-connections", "20", "--udp-target", &udp],
    );
    assert_eq!(
        row_names(&report),
        [
            "sockrpc-udp",
            "sockrpc-uds",
            "sockrpc-auto",
            "sockrpc-stream",
            "sockrpc-uds-idle"
        ],
        "{report:#}"
    );
    for name in ["sockrpc-uds", "sockrpc-stream", "sockrpc-uds-idle"] {
        let row = clean_row(&report, name, 64);
        assert_eq!(row["calls"], 60, "{row:#}");
        assert_eq!(row["transport"], "uds", "{row:#}");
    }
    for name in ["sockrpc-udp", "sockrpc-auto"] {
        let row = clean_row(&report, name, 64);
        assert_eq!(row["calls"], 60, "{row:#}");
        assert_over_udp(row);
    }
    let idle = clean_row(&report, "sockrpc-uds-idle", 64)["note"].to_string();
    assert!(idle.contains("20 idle connections"), "{idle}");
    let skipped = report["skipped"].to_string();
    assert!(
        skipped.contains("sockrpc-tcp skipped: the target is a Unix socket"),
        "{skipped}"
    );
    #[cfg(unix)]
    terminate(&mut server);
}

/// `serve --uds unix-abstract:NAME` listens on that Linux abstract name (no file) and says so
/// as `uds=unix-abstract:NAME`, which `bench --target` and `bench --uds-target` take; a second
/// server is refused the name. Before the fix `serve` bound a file named `unix-abstract:NAME`
/// in its working directory, and `bench` refused the URI as not supported.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn serve_and_bench_on_an_abstract_name() {
    let name = format!("sockrpc-cli-test-{}", std::process::id());
    let uri = format!("unix-abstract:{name}");
    let dir = TempDir::new("abstract-cwd");
    let (mut server, lines) = spawn_server(sockrpc().current_dir(&dir.0).args([
        "serve",
        "--tcp",
        "127.0.0.1:0",
        "--uds",
        &uri,
    ]));
    let line = first_line(&lines);
    assert_eq!(listed(&line, "uds"), Some(uri.as_str()), "{line:?}");
    let tcp = tcp_addr(&line);
    let files = std::fs::read_dir(&dir.0).expect("cwd").count();
    assert_eq!(files, 0, "serve made a file for an abstract name");

    let report = bench_report(
        "abstract-target.json",
        &uri,
        "30",
        &["--transport", "uds,idle", "--idle-connections", "10"],
    );
    assert_eq!(
        row_names(&report),
        ["sockrpc-uds", "sockrpc-uds-idle"],
        "{report:#}"
    );
    for row in ["sockrpc-uds", "sockrpc-uds-idle"] {
        assert_eq!(clean_row(&report, row, 64)["calls"], 30);
    }
    let report = bench_report(
        "abstract-uds-target.json",
        &format!("tcp://{tcp}"),
        "30",
        &["--transport", "uds", "--uds-target", &uri],
    );
    assert_eq!(clean_row(&report, "sockrpc-uds", 64)["calls"], 30);

    let output = run(sockrpc().args(["serve", "--tcp", "127.0.0.1:0", "--uds", &uri]));
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot bind Unix socket {uri}")) && stderr.contains("in use"),
        "{stderr}"
    );
    #[cfg(unix)]
    terminate(&mut server);
}

/// A unix: --target is the Unix socket the sockrpc-uds row measures: `--uds-target` beside it
/// would name a second one, and is refused before anything runs (exit 2), as other flags a run
/// would not use are.
#[test]
fn a_second_socket_beside_a_unix_target_is_refused() {
    for target in ["unix:///tmp/x.sock", "unix:x.sock", "unix-abstract:x"] {
        assert_usage_error_naming(
            &["--target", target, "--uds-target", "/tmp/y.sock"],
            &["--uds-target", "unix: --target"],
        );
    }
}

/// `--call` and `--rate` at a unix: --target call over the Unix socket, and their rows say so
/// (transport "uds", as the built-in rows over it do). Before the fix both said "tcp".
#[test]
fn call_and_rate_rows_over_a_unix_target_say_uds() {
    let dir = TempDir::new("unix-call");
    let path = dir.0.join("call.sock");
    let (mut server, lines) = spawn_server(
        sockrpc()
            .args(["serve", "--tcp", "127.0.0.1:0", "--uds"])
            .arg(&path),
    );
    first_line(&lines);
    let target = format!("unix://{}", path.display());
    for (name, mode) in [
        ("unix-call.json", ["--call", "sockrpc.bench.Bench/Echo"]),
        ("unix-rate.json", ["--rate", "50"]),
    ] {
        let json = temp_path(name);
        run_ok(
            sockrpc()
                .args(["bench", "--calls", "10", "--warmup", "0"])
                .args(mode)
                .args(["--target", &target, "--json"])
                .arg(&json),
        );
        let report = read_json(&json);
        let _ = std::fs::remove_file(json);
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1, "{mode:?}: {report:#}");
        assert_eq!(rows[0]["calls"], 10, "{mode:?}: {report:#}");
        assert_eq!(rows[0]["errors"], 0, "{mode:?}: {report:#}");
        assert_eq!(rows[0]["transport"], "uds", "{mode:?}: {report:#}");
    }
    #[cfg(unix)]
    terminate(&mut server);
}
