//! The `sockrpc` binary end to end: `bench` with an embedded server, `serve` and `bench --target`
//! across two processes, `interop server` and `interop client` across two processes, and the
//! help texts. Tiny call counts keep these fast in debug builds;
//! every wait is bounded, and no test asserts a speed.

mod support;

use support::*;

#[test]
fn bench_with_embedded_server_writes_json_and_svg() {
    let json = temp_path("embedded.json");
    let svg = temp_path("embedded.svg");
    let stdout = run_ok(
        sockrpc()
            .args([
                "bench",
                "--calls",
                "200",
                "--warmup",
                "20",
                "--payload",
                "64",
                "--idle-connections",
                "300",
            ])
            .arg("--json")
            .arg(&json)
            .arg("--plot")
            .arg(&svg),
    );
    for name in ALL_ROWS {
        assert!(stdout.contains(name), "table lacks {name}:\n{stdout}");
    }
    let report = read_json(&json);
    assert!(report["machine"]["cpus"].as_u64().expect("cpus") >= 1);
    assert!(report["machine"]["os"].is_string());
    assert!(report["machine"]["arch"].is_string());
    for name in ALL_ROWS {
        let row = clean_row(&report, name, 64);
        assert_eq!(row["calls"], 200, "{row:#}");
        assert_eq!(row["concurrency"], 1);
        assert!(row["ratio_p50_to_raw"].as_f64().is_some(), "{row:#}");
    }
    assert_eq!(clean_row(&report, "raw-tcp", 64)["ratio_p50_to_raw"], 1.0);
    assert_eq!(clean_row(&report, "sockrpc-uds", 64)["transport"], "uds");
    // 64 B fits a datagram: both UDP-enabled rows carried every call over UDP, and say so.
    let udp = clean_row(&report, "sockrpc-udp", 64);
    assert_eq!(udp["transport"], "udp");
    assert_over_udp(udp);
    assert!(udp["note"].to_string().contains("raw-udp"), "{udp:#}");
    let auto = clean_row(&report, "sockrpc-auto", 64);
    assert_eq!(auto["transport"], "auto");
    assert_over_udp(auto);
    assert_eq!(clean_row(&report, "sockrpc-stream", 64)["transport"], "tcp");
    // The idle row held its connections open (fewer only if the open-file limit says so) and
    // is quoted against sockrpc-tcp.
    let idle = clean_row(&report, "sockrpc-tcp-idle", 64)["note"].to_string();
    assert!(
        idle.contains("300 idle connections open") || idle.contains("capped by the open-file"),
        "{idle}"
    );
    assert!(idle.contains("sockrpc-tcp's"), "{idle}");
    for name in TLS_ROWS {
        let row = clean_row(&report, name, 64);
        assert_eq!(row["transport"], "tls");
        assert_eq!(row["calls"], 200, "{row:#}");
        let note = row["note"].as_str().unwrap_or_default();
        assert!(note.contains("handshake"), "{row:#}");
    }
    let tls_note = clean_row(&report, "sockrpc-tls", 64)["note"].to_string();
    assert!(tls_note.contains("raw-tls's"), "{tls_note}");
    assert!(tls_note.contains("of sockrpc-tcp's"), "{tls_note}");
    assert!(
        report["skipped"].as_array().expect("skipped").is_empty(),
        "{report:#}"
    );
    // The embedded server's socket, and the directory made for it, are gone with it.
    let socket = stdout
        .split_whitespace()
        .find_map(|word| word.strip_prefix("unix://"))
        .map(|path| PathBuf::from(path.trim_end_matches([')', ','])))
        .unwrap_or_else(|| panic!("no unix:// endpoint in the header:\n{stdout}"));
    assert_eq!(
        socket.file_name().and_then(|n| n.to_str()),
        Some("bench.sock")
    );
    let dir = socket.parent().expect("socket directory");
    assert!(!socket.exists(), "{} left behind", socket.display());
    assert!(!dir.exists(), "{} left behind", dir.display());

    let picture = std::fs::read_to_string(&svg).expect("read svg");
    let start = picture.trim_start();
    assert!(
        start.starts_with("<svg") || start.starts_with("<?xml"),
        "not an SVG: {}",
        &picture[..picture.len().min(200)]
    );
    assert!(picture.contains("sockrpc-tcp"), "legend lacks sockrpc-tcp");
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(svg);
}

#[test]
fn bench_spreads_concurrency_over_connections() {
    let json = temp_path("concurrency.json");
    run_ok(
        sockrpc()
            .args([
                "bench",
                "--calls",
                "256",
                "--warmup",
                "32",
                "--payload",
                "64,2000",
            ])
            .args([
                "--concurrency",
                "4",
                "--connections",
                "2",
                // Four calls in flight fill no connection's default share: 2 each spreads them.
                "--calls-per-connection",
                "2",
                "--transport",
                "tcp,udp,uds",
            ])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    let rpc = clean_row(&report, "sockrpc-tcp", 64);
    assert_eq!(rpc["concurrency"], 4);
    assert_eq!(rpc["connections"], 2);
    // One channel, a pool of two connections, both used by four tasks.
    let note = rpc["note"].as_str().unwrap_or_default();
    assert!(note.contains("pool of 2, 2 live"), "{rpc:#}");
    let spread = note
        .split("warmup included: ")
        .nth(1)
        .expect("calls per connection in the note");
    for started in spread.split(" / ") {
        let started: u64 = started
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert!(started > 0, "a connection carried no call: {rpc:#}");
    }
    let uds = clean_row(&report, "sockrpc-uds", 64);
    assert_eq!(uds["connections"], 2);
    assert_eq!(uds["concurrency"], 4);
    assert_eq!(clean_row(&report, "raw-tcp", 64)["connections"], 4);
    assert_eq!(
        clean_row(&report, "raw-tcp-pipelined", 64)["connections"],
        1
    );
    clean_row(&report, "raw-udp", 64);
    let udp = clean_row(&report, "sockrpc-udp", 64);
    assert_eq!(udp["concurrency"], 4);
    assert_over_udp(udp);
    clean_row(&report, "sockrpc-tcp", 2000);
    // 2000 bytes is over what one datagram carries without fragmentation: skipped, with a note.
    let rows = report["rows"].as_array().expect("rows");
    assert!(!rows
        .iter()
        .any(|row| row["name"] == "raw-udp" && row["payload_bytes"] == 2000));
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("raw-udp skipped"), "{skipped}");
    assert!(skipped.contains("sockrpc-udp skipped"), "{skipped}");
    let _ = std::fs::remove_file(json);
}

#[test]
fn bench_auto_and_stream_at_concurrency() {
    let json = temp_path("auto-stream.json");
    run_ok(
        sockrpc()
            .args(["bench", "--calls", "256", "--warmup", "32"])
            .args([
                "--payload",
                "64,4096",
                "--concurrency",
                "4",
                "--connections",
                "2",
            ])
            .args(["--transport", "auto,stream"])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    assert_over_udp(clean_row(&report, "sockrpc-auto", 64));
    // 4 KiB does not fit a datagram: auto sends every call over TCP, and says so.
    let auto = clean_row(&report, "sockrpc-auto", 4096);
    let note = auto["note"].as_str().unwrap_or_default();
    assert!(note.contains("TCP carried all"), "{auto:#}");
    for payload in [64, 4096] {
        let stream = clean_row(&report, "sockrpc-stream", payload);
        assert_eq!(stream["calls"], 256, "{stream:#}");
        assert_eq!(stream["connections"], 2, "{stream:#}");
        assert!(stream["ratio_p50_to_raw"].as_f64().is_some(), "{stream:#}");
    }
    let rows = report["rows"].as_array().expect("rows");
    assert!(!rows.iter().any(|row| row["name"] == "sockrpc-udp"));
    let _ = std::fs::remove_file(json);
}

#[test]
fn bench_rounds_interleave_rows_and_merge_them() {
    let json = temp_path("rounds.json");
    run_ok(
        sockrpc()
            .args(["bench", "--calls", "300", "--warmup", "10", "--rounds", "3"])
            .args(["--payload", "64", "--transport", "tcp"])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    assert_eq!(report["setup"]["rounds"], 3, "{report:#}");
    // Each round measures a third of the calls; a row reports all three rounds, once.
    for name in ["raw-tcp", "sockrpc-tcp"] {
        let row = clean_row(&report, name, 64);
        assert_eq!(row["calls"], 300, "{row:#}");
    }
    let rows = report["rows"].as_array().expect("rows");
    let sockrpc_rows = rows
        .iter()
        .filter(|row| row["name"] == "sockrpc-tcp")
        .count();
    assert_eq!(sockrpc_rows, 1, "{report:#}");
    let _ = std::fs::remove_file(json);
}

#[test]
fn serve_and_bench_target_across_processes() {
    // Under the system temporary directory rather than cargo's: a Unix socket path must be short
    // (108 bytes on Linux).
    let uds_path =
        std::env::temp_dir().join(format!("sockrpc-cli-test-{}.sock", std::process::id()));
    let (mut server, line_rx) = spawn_server(
        sockrpc()
            .args([
                "serve",
                "--tcp",
                "127.0.0.1:0",
                "--udp",
                "127.0.0.1:0",
                "--raw-udp",
                "127.0.0.1:0",
                "--uds",
            ])
            .arg(&uds_path),
    );
    let line = first_line(&line_rx);
    let mut fields = line.split_whitespace();
    assert_eq!(fields.next(), Some("listening"), "{line:?}");
    let mut field = |key: &str| {
        let field = fields
            .next()
            .unwrap_or_else(|| panic!("no {key} in {line:?}"));
        let value = field
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix('='))
            .unwrap_or_else(|| panic!("expected {key}= in {line:?}"));
        let addr: std::net::SocketAddr = value.parse().expect("address");
        assert_ne!(addr.port(), 0, "{line:?}");
        value.to_owned()
    };
    let tcp = field("tcp");
    let raw = field("raw");
    let raw_udp = field("raw-udp");
    let uds = fields
        .next()
        .and_then(|field| field.strip_prefix("uds="))
        .unwrap_or_else(|| panic!("expected uds= in {line:?}"));
    assert_eq!(std::path::Path::new(uds), uds_path, "{line:?}");
    let udp = fields
        .next()
        .and_then(|field| field.strip_prefix("udp="))
        .unwrap_or_else(|| panic!("expected udp= in {line:?}"));
    let udp_addr: std::net::SocketAddr = udp.parse().expect("udp address");
    assert_ne!(udp_addr.port(), 0, "{line:?}");
    assert!(fields.next().is_none(), "unexpected fields in {line:?}");

    let json = temp_path("target.json");
    run_ok(
        sockrpc()
            .args([
                "bench",
                "--calls",
                "200",
                "--warmup",
                "20",
                "--payload",
                "64",
                "--idle-connections",
                "100",
            ])
            .args(["--target", &format!("tcp://{tcp}")])
            .args(["--raw-target", &raw, "--raw-udp-target", &raw_udp])
            .args(["--uds-target", uds, "--udp-target", udp])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    for name in ALL_ROWS.into_iter().filter(|name| *name != EMBEDDED_ONLY) {
        assert_eq!(clean_row(&report, name, 64)["calls"], 200);
    }
    assert!(
        report["skipped"]
            .to_string()
            .contains("sockrpc-stack skipped"),
        "{report:#}"
    );
    // Across processes too, the UDP rows went over UDP.
    assert_over_udp(clean_row(&report, "sockrpc-udp", 64));
    assert_over_udp(clean_row(&report, "sockrpc-auto", 64));

    // Without the raw echo's address only the sockrpc row can run; the others are noted.
    run_ok(
        sockrpc()
            .args(["bench", "--calls", "50", "--warmup", "0", "--payload", "64"])
            .args(["--target", &tcp, "--transport", "tcp,uds,udp,auto"])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    assert_eq!(report["rows"].as_array().expect("rows").len(), 1);
    clean_row(&report, "sockrpc-tcp", 64);
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("--raw-target"), "{skipped}");
    assert!(skipped.contains("--uds-target"), "{skipped}");
    assert!(skipped.contains("--udp-target"), "{skipped}");
    let _ = std::fs::remove_file(json);

    #[cfg(unix)]
    {
        terminate(&mut server);
        assert!(
            !uds_path.exists(),
            "serve left {} behind",
            uds_path.display()
        );
    }
    let _ = std::fs::remove_file(&uds_path);
}

#[test]
fn interop_server_and_client_across_processes() {
    let (mut server, line_rx) =
        spawn_server(sockrpc().args(["interop", "server", "--addr", "127.0.0.1:0"]));
    let line = first_line(&line_rx);
    let addr = line
        .trim_end()
        .strip_prefix("listening tcp=")
        .unwrap_or_else(|| panic!("expected `listening tcp=`: {line:?}"));
    let parsed: std::net::SocketAddr = addr.parse().expect("address");
    assert_ne!(parsed.port(), 0, "{line:?}");
    for case in ["empty_unary", "ping_pong"] {
        let stdout = run_ok(sockrpc().args(["interop", "client", "--addr", addr, "--case", case]));
        assert!(stdout.contains(&format!("PASS {case}")), "{stdout}");
    }
    // A case that cannot pass exits 1 with the reason.
    let output = run(sockrpc().args([
        "interop",
        "client",
        "--addr",
        addr,
        "--case",
        "no_such_case",
    ]));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown test case"), "{stderr}");
    #[cfg(unix)]
    terminate(&mut server);
}

#[test]
fn help_lists_the_flags() {
    let top = run_ok(sockrpc().arg("--help"));
    for command in ["bench", "serve", "interop"] {
        assert!(top.contains(command), "--help lacks {command}:\n{top}");
    }
    let bench = run_ok(sockrpc().args(["bench", "--help"]));
    // Every exit code the command has, as `call --help` lists its own.
    for code in ["Exit code 1 ", "Exit code 2 ", "130 (143)", "141"] {
        assert!(
            bench.contains(code),
            "bench --help lacks {code:?}:\n{bench}"
        );
    }
    for flag in [
        "--transport",
        "--payload",
        "--concurrency",
        "--connections",
        "--duration",
        "--calls",
        "--warmup",
        "--timeout",
        "--target",
        "--raw-target",
        "--uds-target",
        "--udp-target",
        "--raw-tls-target",
        "--tls-ca",
        "--tls-cert",
        "--tls-key",
        "--tls-server-name",
        "--json",
        "--plot",
    ] {
        assert!(bench.contains(flag), "bench --help lacks {flag}:\n{bench}");
    }
    let serve = run_ok(sockrpc().args(["serve", "--help"]));
    for flag in [
        "--tcp",
        "--raw",
        "--raw-udp",
        "--uds",
        "--udp",
        "--tls-cert",
        "--tls-key",
        "--client-ca",
        "--raw-tls",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
    }
}

/// Runs `bench` over TCP at 64 B with `args` (whatever its exit status) and reads its JSON.
fn tcp_bench_report(name: &str, args: &[&str]) -> Value {
    let json = temp_path(name);
    let mut command = sockrpc();
    command
        .args([
            "bench",
            "--warmup",
            "0",
            "--payload",
            "64",
            "--transport",
            "tcp",
        ])
        .args(args)
        .arg("--json")
        .arg(&json);
    let _ = run(&mut command);
    let report = read_json(&json);
    let _ = std::fs::remove_file(json);
    report
}

#[test]
fn bench_timeout_is_every_calls_deadline() {
    // A generous deadline fails nothing...
    let report = tcp_bench_report("timeout-ok.json", &["--calls", "100", "--timeout", "5"]);
    assert_eq!(clean_row(&report, "sockrpc-tcp", 64)["calls"], 100);
    // ...and one of a microsecond fails sockrpc calls DEADLINE_EXCEEDED: every call whose
    // answer comes after the deadline's timer went off (timers tick each millisecond, so over
    // 2,000 calls many do), never a raw one, which has no deadline.
    let tiny = ["--calls", "2000", "--timeout", "0.000001"];
    let report = tcp_bench_report("timeout-tiny.json", &tiny);
    let rows = report["rows"].as_array().expect("rows");
    let row = |name: &str| {
        rows.iter()
            .find(|row| row["name"] == name)
            .unwrap_or_else(|| panic!("no {name} row in {report:#}"))
    };
    let sockrpc = row("sockrpc-tcp");
    assert!(sockrpc["errors"].as_u64().unwrap_or(0) > 0, "{sockrpc:#}");
    let note = sockrpc["note"].as_str().unwrap_or_default();
    assert!(note.to_lowercase().contains("deadline"), "{sockrpc:#}");
    assert_eq!(row("raw-tcp")["errors"], 0, "{report:#}");
}

/// A row that cannot connect fails the run (exit 1, the row and why on stderr) once every row
/// has run: here sockrpc-tcp to a closed port, while raw-tcp, to a live `sockrpc serve`'s raw
/// echo, is still measured, printed and written.
#[test]
fn bench_fails_when_a_row_cannot_connect() {
    // Held (bound, never listening) until the test ends: the server started next on port 0,
    // or another test's, cannot be given this port.
    let closed = Refused::loopback();
    let closed_addr = closed.addr().to_string();
    let (mut server, line_rx) = spawn_server(sockrpc().args(["serve", "--tcp", "127.0.0.1:0"]));
    let line = first_line(&line_rx);
    let raw = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("raw="))
        .unwrap_or_else(|| panic!("no raw= in {line:?}"))
        .to_owned();
    let json = temp_path("unreachable.json");
    let output = run(sockrpc()
        .args(["bench", "--calls", "50", "--warmup", "5", "--payload", "64"])
        .args(["--transport", "tcp", "--raw-target", &raw, "--target"])
        .arg(format!("tcp://{closed_addr}"))
        .arg("--json")
        .arg(&json));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("1 of 2 rows failed")
            && stderr.contains("sockrpc-tcp 64 B ×1: could not connect")
            && stderr.contains(&closed_addr),
        "{stderr}"
    );
    assert!(!stderr.contains("raw-tcp"), "{stderr}");
    // The other row ran and is in the table and the JSON.
    assert!(
        stdout.contains("note: sockrpc-tcp: could not connect"),
        "{stdout}"
    );
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(clean_row(&report, "raw-tcp", 64)["calls"], 50);
    #[cfg(unix)]
    terminate(&mut server);

    // Nothing reachable at all: the same failure, every row named.
    let output = run(sockrpc().args([
        "bench",
        "--calls",
        "10",
        "--warmup",
        "0",
        "--payload",
        "64,128",
        "--target",
        "127.0.0.1:1",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for row in [
        "sockrpc-tcp 64 B",
        "sockrpc-stream 128 B",
        "sockrpc-tcp-idle 64 B",
    ] {
        assert!(stderr.contains(row), "{row} not in {stderr}");
    }
}
