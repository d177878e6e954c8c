//! `sockrpc bench` honours or refuses every option it is given: an option the mode would ignore
//! (`--payload` with `--call`, `--concurrency` with `--rate`, `--rounds` with `--balance`, ...)
//! is refused as clap refuses a conflict, exit code 2 and one line naming both;
//! `raw-tcp-pipelined` makes no more calls than `--calls`; a raw row that cannot connect names
//! the address; `--help` lists the rows a default run prints.

mod support;

use support::*;

/// Each option a mode ignored is refused before anything runs: exit code 2, `error:` and one
/// line that names the option and the mode. Without the check, every one of these ran (or
/// tried to connect) and exited 0 or 1 with the option silently dropped.
#[test]
fn options_a_mode_would_ignore_are_refused_naming_both() {
    let refused = Refused::loopback();
    let nowhere = format!("tcp://{}", refused.addr());
    let call = ["--call", "x.Y/Z", "--target", nowhere.as_str()];
    let rate = ["--rate", "100", "--duration", "0.1", "--warmup", "0"];
    let rows = ["--transport", "tcp", "--duration", "0.05", "--warmup", "0"];
    let cases: Vec<(Vec<&str>, [&str; 2])> = vec![
        (
            [&call[..], &["--payload", "128"]].concat(),
            ["--payload", "--call"],
        ),
        (
            [&call[..], &["--transport", "udp"]].concat(),
            ["--transport", "--call"],
        ),
        (
            [&call[..], &["--rounds", "3"]].concat(),
            ["--rounds", "--call"],
        ),
        (
            [&call[..], &["--raw-target", "127.0.0.1:9"]].concat(),
            ["--raw-target", "--call"],
        ),
        (
            [&rate[..], &["--concurrency", "4"]].concat(),
            ["--concurrency", "--rate"],
        ),
        (
            [&rate[..], &["--transport", "tcp"]].concat(),
            ["--transport", "--rate"],
        ),
        (
            [&rate[..], &["--rounds", "2"]].concat(),
            ["--rounds", "--rate"],
        ),
        (
            [&rate[..], &["--payload", "64,4096"]].concat(),
            ["--payload", "--rate"],
        ),
        (
            [&rows[..], &["--max-in-flight", "5"]].concat(),
            ["--max-in-flight", "--rate"],
        ),
        ([&rows[..], &["-H", "a:b"]].concat(), ["--header", "--call"]),
        (
            [
                &rows[..],
                &["--target", nowhere.as_str(), "--server-workers", "3"],
            ]
            .concat(),
            ["--server-workers", "--target"],
        ),
    ];
    for (args, names) in cases {
        assert_usage_error_naming(&args, &names);
    }
}

/// A balanced run (`--balance`, several targets, or a dns:// target) measures one
/// `sockrpc-balanced` row once through a channel that makes its own pools: `--rounds`,
/// `--connections`, `--transport`, the built-in rows' targets and one target's TLS files were
/// taken and dropped without a word (the run went on, or waited 10 s for servers that were not
/// there and exited 1). Each is now refused first, naming it and the mode.
#[test]
fn options_a_balanced_run_would_ignore_are_refused_naming_both() {
    let (a, b) = (Refused::loopback(), Refused::loopback());
    let two = format!("tcp://{},tcp://{}", a.addr(), b.addr());
    let balance = ["--balance", "round-robin", "--target", two.as_str()];
    let cases: [(&[&str], &str); 8] = [
        (&["--rounds", "2"], "--rounds"),
        (&["--transport", "tcp"], "--transport"),
        (&["--idle-connections", "5"], "--idle-connections"),
        (&["--connections", "2"], "--connections"),
        (&["--calls-per-connection", "4"], "--calls-per-connection"),
        (&["--raw-target", "127.0.0.1:9"], "--raw-target"),
        (&["--udp-target", "127.0.0.1:9"], "--udp-target"),
        (&["--tls-ca", "ca.pem"], "--tls-ca"),
    ];
    for (extra, option) in cases {
        assert_usage_error_naming(&[&balance[..], extra].concat(), &[option, "--balance"]);
    }
    // The balanced modes without --balance: several targets, and a DNS name.
    assert_usage_error_naming(
        &["--target", &two, "--rounds", "2"],
        &["--rounds", "several --target servers"],
    );
    assert_usage_error_naming(
        &["--target", "dns://svc.test:50051", "--connections", "2"],
        &["--connections", "dns://"],
    );
}

/// The open-loop table is titled as what it is: it said "concurrency 10000" (the default
/// `--max-in-flight`), a closed-loop figure the run never had. Defaults of options a mode does
/// not use are not refused.
#[test]
fn an_open_loop_table_says_it_is_one() {
    let stdout = run_ok(sockrpc().args([
        "bench",
        "--rate",
        "200",
        "--duration",
        "0.2",
        "--warmup",
        "0",
    ]));
    let title = stdout
        .lines()
        .find(|line| line.contains("per rate"))
        .unwrap_or_else(|| panic!("no open-loop title: {stdout}"));
    assert!(
        title.starts_with("open loop") && !title.contains("concurrency"),
        "{title}"
    );
}

/// `raw-tcp-pipelined` claimed calls a whole batch (the concurrency) at a time: `--calls 5
/// --concurrency 64` made 64 calls.
#[test]
fn raw_tcp_pipelined_makes_no_more_calls_than_asked() {
    let json = temp_path("pipelined.json");
    let path = json.to_str().expect("utf-8 path");
    run_ok(sockrpc().args([
        "bench",
        "--transport",
        "tcp",
        "--payload",
        "64",
        "--concurrency",
        "64",
        "--calls",
        "5",
        "--warmup",
        "3",
        "--json",
        path,
    ]));
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    let rows = report["rows"].as_array().expect("rows");
    let pipelined = rows
        .iter()
        .find(|row| row["name"] == "raw-tcp-pipelined")
        .unwrap_or_else(|| panic!("no raw-tcp-pipelined row: {report}"));
    assert_eq!(pipelined["calls"], 5, "{pipelined}");
    for row in rows {
        assert_eq!(row["calls"], 5, "{row}");
    }
}

/// A raw row that could not connect said only "Connection refused", not which echo refused.
#[test]
fn a_raw_row_that_cannot_connect_names_the_address() {
    let (refused_target, refused_raw) = (Refused::loopback(), Refused::loopback());
    let target = format!("tcp://{}", refused_target.addr());
    let raw = refused_raw.addr().to_string();
    let output = run(sockrpc().args([
        "bench",
        "--target",
        &target,
        "--raw-target",
        &raw,
        "--transport",
        "tcp",
        "--payload",
        "64",
        "--concurrency",
        "2",
        "--calls",
        "5",
        "--warmup",
        "0",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for row in ["raw-tcp ", "raw-tcp-pipelined "] {
        let line = stderr
            .lines()
            .find(|line| line.trim_start().starts_with(row))
            .unwrap_or_else(|| panic!("no failure line for {row}: {stderr}"));
        assert!(
            line.contains("could not connect") && line.contains(&raw),
            "{row}should name {raw}: {line}"
        );
    }
}

/// The rows of each table a run printed: `(title, names)`.
fn tables(stdout: &str) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    let mut lines = stdout.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with("payload ") {
            continue;
        }
        let mut names = Vec::new();
        lines.next(); // The heading.
        while let Some(row) = lines.next_if(|row| !row.is_empty() && !row.starts_with(' ')) {
            names.push(row.split_whitespace().next().unwrap_or_default().to_owned());
        }
        tables.push((line.to_owned(), names));
    }
    tables
}

/// `bench --help` listed the default rows without sockrpc-stack and sockrpc-tcp-idle. It now
/// lists, per default payload, exactly the rows a run with the default transports prints.
#[test]
fn help_lists_the_rows_a_default_run_prints() {
    let help = run_ok(sockrpc().args(["bench", "--help"]));
    let listed: Vec<(String, Vec<String>)> = help
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- "))
        .filter_map(|line| line.split_once(": "))
        .filter(|(title, _)| title.contains(" B, concurrency "))
        .map(|(title, rows)| {
            let rows = rows.split(", ").map(|row| row.trim().to_owned());
            (title.to_owned(), rows.collect())
        })
        .collect();
    assert_eq!(listed.len(), 2, "{help}");
    let stdout = run_ok(sockrpc().args([
        "bench",
        "--calls",
        "20",
        "--warmup",
        "0",
        "--idle-connections",
        "4",
    ]));
    let ran = tables(&stdout);
    assert_eq!(ran.len(), listed.len(), "{stdout}");
    for ((title, rows), (ran_title, ran_rows)) in listed.iter().zip(&ran) {
        assert!(
            ran_title.starts_with(&format!("payload {title}")),
            "{ran_title} vs {title}"
        );
        assert_eq!(rows, ran_rows, "{title}: help vs run\n{help}\n{stdout}");
    }
    for row in ALL_ROWS.iter().chain(&TLS_ROWS) {
        assert!(help.contains(row), "{row} missing from the help: {help}");
    }
}

/// A run none of whose rows can run at the target given (`--transport tls` at a tcp:// target,
/// `--transport udp` with no UDP address, `--transport tcp,compression` at a unix: one) printed
/// a table of no row, wrote a report of no row and exited 0: a script took it for a
/// measurement. It is now an error before anything runs, naming why each row is skipped.
#[test]
fn a_run_whose_every_row_is_skipped_is_an_error() {
    let refused = Refused::loopback();
    let tcp = format!("tcp://{}", refused.addr());
    let unix = format!("unix://{}", temp_path("none.sock").display());
    let json = temp_path("skipped.json");
    let cases = [
        (
            tcp.as_str(),
            "tls",
            "sockrpc-tls skipped: no tls:// --target",
        ),
        (tcp.as_str(), "udp", "no --udp-target"),
        (unix.as_str(), "tcp,compression", "sockrpc-tcp skipped"),
    ];
    for (target, transport, why) in cases {
        let output = run(sockrpc().args([
            "bench",
            "--target",
            target,
            "--transport",
            transport,
            "--duration",
            "0.05",
            "--json",
            json.to_str().expect("utf-8 path"),
        ]));
        let written = json.exists();
        let _ = std::fs::remove_file(&json);
        assert_refused_before_running(&output, 1, "nothing to measure", "name ");
        assert!(texts(&output).1.contains(why), "{output:?}");
        assert!(!written, "a report of no row was written: {output:?}");
    }
}

/// `--tls-ca`, `--tls-cert`/`--tls-key` and `--tls-server-name` beside a --target that is not
/// tls:// were dropped without a word by the built-in rows: the run measured plain text and
/// exited 0 for a user who meant TLS. They are now refused as every ignored option is (exit
/// code 2, one line naming the flag and the target's kind), in every mode (`--call`'s own
/// check exited 1).
#[test]
fn tls_flags_beside_a_target_without_tls_are_refused() {
    let refused = Refused::loopback();
    let tcp = format!("tcp://{}", refused.addr());
    let unix = format!("unix://{}", temp_path("none.sock").display());
    let rows = ["--transport", "tcp", "--duration", "0.05", "--warmup", "0"];
    let cases: Vec<(Vec<&str>, [&str; 2])> = vec![
        (
            [&rows[..], &["--target", &tcp, "--tls-ca", "ca.pem"]].concat(),
            ["--tls-ca", "tcp://"],
        ),
        (
            [&rows[..], &["--target", &tcp, "--tls-server-name", "x"]].concat(),
            ["--tls-server-name", "tcp://"],
        ),
        (
            [
                &rows[..],
                &[
                    "--target",
                    &unix,
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                ],
            ]
            .concat(),
            ["--tls-cert", "unix:"],
        ),
        (
            vec!["--call", "x.Y/Z", "--target", &tcp, "--tls-ca", "ca.pem"],
            ["--tls-ca", "tcp://"],
        ),
    ];
    for (args, names) in cases {
        assert_usage_error_naming(&args, &names);
    }
}

/// `--target udp://HOST:PORT` failed with "unsupported scheme in endpoint", exit code 1, and
/// nothing said where a UDP address goes. It is now refused as a usage error naming
/// --udp-target, alone or among a balanced run's servers.
#[test]
fn a_udp_target_is_refused_naming_udp_target() {
    let refused = Refused::loopback();
    let udp = format!("udp://{}", refused.addr());
    let both = format!("tcp://{},{udp}", refused.addr());
    let rows = ["--transport", "udp", "--duration", "0.05", "--warmup", "0"];
    assert_usage_error_naming(
        &[&rows[..], &["--target", &udp]].concat(),
        &["--target udp://", "--udp-target"],
    );
    assert_usage_error_naming(
        &["--target", &both, "--duration", "0.05"],
        &["--target udp://", "--udp-target"],
    );
}
