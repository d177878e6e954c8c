//! `sockrpc call`, `list`, `describe` and `bench --call` across two processes: the `sockrpc`
//! binary against a route guide server in a child process (this test binary re-run, see
//! `call_support`), with descriptors from reflection and from the `.proto` file. Every wait is
//! bounded; no test asserts a speed (the open-loop test checks counts and the asked rate).

mod call_support;
mod support;

use call_support::*;
use support::*;

/// The route guide child's entry: serves when `ROUTE_GUIDE_CHILD` is set, else does nothing
/// (run as a test of its own, it has nothing to check).
#[test]
fn route_guide_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_child();
    }
}

/// Each stdout line as JSON.
fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// The same four calls with descriptors from reflection and from the `.proto` file.
#[test]
fn call_all_four_shapes_from_reflection_and_from_proto() {
    let guide = spawn_guide(false);
    let proto = route_guide_proto();
    let proto = proto.to_str().expect("utf-8 path");
    for from_proto in [false, true] {
        let with = |extra: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = vec!["call".into(), guide.addr.clone()];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            if from_proto {
                args.extend(["--proto".to_owned(), proto.to_owned()]);
            }
            args
        };
        let run = |extra: &[&str], stdin: &str| {
            let args = with(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (code, stdout, stderr) = call(&args, stdin);
            assert_eq!(code, 0, "{args:?} failed: {stderr}");
            assert!(stderr.contains("status OK (0)"), "{stderr}");
            lines(&stdout)
        };
        // Unary.
        let answers = run(
            &[
                "routeguide.RouteGuide/GetFeature",
                "-d",
                r#"{"latitude": 2, "longitude": 2}"#,
            ],
            "",
        );
        assert_eq!(
            answers,
            [serde_json::json!({"name": "Two", "location": {"latitude": 2, "longitude": 2}})],
            "from_proto={from_proto}"
        );
        // Server streaming: every feature in the rectangle, one line each.
        let answers = run(
            &[
                "routeguide.RouteGuide/ListFeatures",
                "-d",
                r#"{"lo": {"latitude": 1, "longitude": 1}, "hi": {"latitude": 2, "longitude": 2}}"#,
            ],
            "",
        );
        let names: Vec<&str> = answers
            .iter()
            .map(|a| a["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["One", "Two"]);
        // Client streaming: three points from -d, newline-delimited; two are features.
        let answers = run(
            &[
                "routeguide.RouteGuide/RecordRoute",
                "-d",
                "{\"latitude\": 1, \"longitude\": 1}\n{\"latitude\": 9, \"longitude\": 9}\n{\"latitude\": 3, \"longitude\": 3}",
            ],
            "",
        );
        assert_eq!(
            answers,
            [serde_json::json!({"pointCount": 3, "featureCount": 2})]
        );
        // Bidirectional: notes from stdin, each answered as it arrives.
        let answers = run(
            &["routeguide.RouteGuide/RouteChat"],
            "{\"message\": \"hello\"}\n\n{\"message\": \"world\", \"location\": {\"latitude\": 1}}\n",
        );
        assert_eq!(
            answers,
            [
                serde_json::json!({"message": "HELLO"}),
                serde_json::json!({"message": "WORLD", "location": {"latitude": 1}}),
            ]
        );
    }
}

/// A non-OK status is the exit code, and its code and message are on stderr.
#[test]
fn a_non_ok_status_is_the_exit_code() {
    let guide = spawn_guide(false);
    let (code, stdout, stderr) = call(
        &[
            "call",
            &guide.addr,
            "routeguide.RouteGuide/GetFeature",
            "-d",
            r#"{"latitude": -5}"#,
        ],
        "",
    );
    assert_eq!(code, 5, "NOT_FOUND is 5: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("NotFound (5)") && stderr.contains("south of the equator"),
        "{stderr}"
    );
    let (code, _, stderr) = call(
        &["call", &guide.addr, "routeguide.RouteGuide/ListFeatures"],
        "",
    );
    assert_eq!(code, 3, "INVALID_ARGUMENT is 3: {stderr}");
    // Nobody listening (the port held, never listening, until the test ends): UNAVAILABLE, 14.
    let closed = Refused::loopback();
    let addr = format!("tcp://{}", closed.addr());
    let (code, _, stderr) = call(
        &["call", &addr, "routeguide.RouteGuide/GetFeature", "--proto"],
        "",
    );
    // `--proto` without a file is clap's usage error (2), before anything else.
    assert_eq!(code, 2, "{stderr}");
    let proto = route_guide_proto();
    let (code, _, stderr) = call(
        &[
            "call",
            &addr,
            "routeguide.RouteGuide/GetFeature",
            "--proto",
            proto.to_str().expect("utf-8"),
        ],
        "",
    );
    assert_eq!(code, 14, "UNAVAILABLE is 14: {stderr}");
}

/// Bad JSON, an unknown method, service or field: a clear error, exit code 64, no panic.
#[test]
fn bad_input_is_a_clear_error() {
    let guide = spawn_guide(false);
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["routeguide.RouteGuide/GetFeature", "-d", "{\"latitude\": "],
            "",
            "bad JSON",
        ),
        (
            &[
                "routeguide.RouteGuide/GetFeature",
                "-d",
                r#"{"altitude": 3}"#,
            ],
            "",
            "altitude",
        ),
        (
            &["routeguide.RouteGuide/Teleport"],
            "",
            "unknown method Teleport",
        ),
        (
            &["routeguide.Nowhere/GetFeature"],
            "",
            "unknown service routeguide.Nowhere",
        ),
        // A bad line on a stream cuts the call: the line is named.
        (
            &["routeguide.RouteGuide/RouteChat"],
            "{\"message\": \"ok\"}\nnot json\n",
            "stdin line 2",
        ),
    ];
    for (extra, stdin, expected) in cases {
        let mut args = vec!["call", guide.addr.as_str()];
        args.extend_from_slice(extra);
        let (code, _, stderr) = call(&args, stdin);
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected {expected:?} in {stderr}"
        );
    }
    // The same from the .proto file, with no server at all: found before connecting.
    let proto = route_guide_proto();
    let (code, _, stderr) = call(
        &[
            "call",
            "tcp://127.0.0.1:1",
            "routeguide.RouteGuide/GetFeature",
            "--proto",
            proto.to_str().expect("utf-8"),
            "-d",
            r#"{"latitude": "north"}"#,
        ],
        "",
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("routeguide.Point"), "{stderr}");
}

/// `-H` metadata reaches the handler, `--timeout` is the call's deadline (DEADLINE_EXCEEDED,
/// 4), `-d @FILE` and `-d @-` read the request from a file and stdin, and reserved or malformed
/// metadata is refused before any call.
#[test]
fn metadata_deadline_and_request_files() {
    let guide = spawn_guide(false);
    let get = "routeguide.RouteGuide/GetFeature";
    let (code, stdout, stderr) = call(
        &[
            "call",
            &guide.addr,
            get,
            "-H",
            "x-feature-name: Custom",
            "-d",
            r#"{"latitude": 7}"#,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&stdout)[0]["name"], "Custom");
    // -v: a binary header goes out as base64 and comes back in the response's headers; an
    // error's details and metadata are printed too.
    let (code, _, stderr) = call(
        &[
            "call",
            &guide.addr,
            get,
            "-v",
            "-H",
            "x-echo-bin: AP8B",
            "-d",
            r#"{"latitude": 7}"#,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("response headers: 1\n  x-echo-bin: AP8B\n"),
        "{stderr}"
    );
    assert!(stderr.contains("response trailers: 0"), "{stderr}");
    let (code, _, stderr) = call(
        &["call", &guide.addr, get, "-v", "-d", r#"{"latitude": -1}"#],
        "",
    );
    assert_eq!(code, 5, "NOT_FOUND is 5: {stderr}");
    assert!(
        stderr.contains("status details (base64): AQI=\n"),
        "{stderr}"
    );
    assert!(stderr.contains("  x-where: south\n"), "{stderr}");
    let started = Instant::now();
    let slow = format!(r#"{{"latitude": {SLOW_LATITUDE}}}"#);
    let (code, _, stderr) = call(
        &["call", &guide.addr, get, "--timeout", "0.3", "-d", &slow],
        "",
    );
    assert_eq!(code, 4, "DEADLINE_EXCEEDED is 4: {stderr}");
    // Not the handler's 30 s. 10 s, not less: the time includes starting the CLI's process, and
    // `cargo test` runs the tests at once on CI's 2 cores, where a stall of seconds happens.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the deadline did not end the call: {:?}",
        started.elapsed()
    );
    let file = temp_path("request.json");
    std::fs::write(&file, r#"{"latitude": 3, "longitude": 3}"#).expect("write");
    let at_file = format!("@{}", file.display());
    let (code, stdout, _) = call(&["call", &guide.addr, get, "-d", &at_file], "");
    assert_eq!(code, 0);
    assert_eq!(lines(&stdout)[0]["name"], "Three");
    let (code, stdout, _) = call(
        &["call", &guide.addr, get, "-d", "@-"],
        r#"{"latitude": 1, "longitude": 1}"#,
    );
    assert_eq!(code, 0);
    assert_eq!(lines(&stdout)[0]["name"], "One");
    for bad in ["sockrpc-secret:1", "no-colon"] {
        let (code, _, stderr) = call(&["call", &guide.addr, get, "-H", bad], "");
        assert_eq!(code, 64, "{bad}: {stderr}");
        assert!(
            stderr.contains(bad.split(':').next().unwrap_or(bad)),
            "{stderr}"
        );
    }
    let missing = format!("@{}", temp_path("missing.json").display());
    let (code, _, stderr) = call(&["call", &guide.addr, get, "-d", &missing], "");
    assert_eq!(code, 64, "{stderr}");
    let _ = std::fs::remove_file(file);
}

/// `list` and `describe` over reflection.
#[test]
fn list_and_describe_over_reflection() {
    let guide = spawn_guide(false);
    let (code, stdout, stderr) = call(&["list", &guide.addr], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "routeguide.RouteGuide"
        ]
    );
    let (code, stdout, _) = call(&["list", &guide.addr, "routeguide.RouteGuide"], "");
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(
        stdout.contains("routeguide.RouteGuide.RouteChat"),
        "{stdout}"
    );
    let (code, stdout, _) = call(&["describe", &guide.addr, "routeguide.RouteGuide"], "");
    assert_eq!(code, 0);
    assert!(
        stdout.contains(
            "rpc RouteChat(stream .routeguide.RouteNote) returns (stream .routeguide.RouteNote);"
        ),
        "{stdout}"
    );
    // No symbol: every service the server lists, as grpcurl's `describe` does.
    let (code, stdout, stderr) = call(&["describe", &guide.addr], "");
    assert_eq!(code, 0, "{stderr}");
    for service in [
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "routeguide.RouteGuide",
    ] {
        let head = format!("{service} is a service:");
        assert!(stdout.contains(&head), "{head} in {stdout}");
    }
    let (code, stdout, _) = call(&["describe", &guide.addr, "routeguide.Point"], "");
    assert_eq!(code, 0);
    assert!(stdout.contains("int32 latitude = 1;"), "{stdout}");
    // A field is a symbol the server's reflection finds, as grpc-go's does.
    let (code, stdout, stderr) = call(&["describe", &guide.addr, "routeguide.Point.latitude"], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "routeguide.Point.latitude is a field:\nint32 latitude = 1;\n"
    );
    let (code, _, stderr) = call(&["describe", &guide.addr, "routeguide.Nothing"], "");
    assert_ne!(code, 0, "{stderr}");
    // A whole file, by the name reflection knows it by.
    let file = "routeguide/route_guide.proto";
    let (code, stdout, stderr) = call(&["describe", &guide.addr, file], "");
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "syntax = \"proto3\";",
        "package routeguide;",
        "service RouteGuide {",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line} in {stdout}");
    }
    let (code, _, stderr) = call(&["describe", &guide.addr, "nope/none.proto"], "");
    assert_ne!(code, 0, "{stderr}");
}

/// `bench --call` on `GetFeature` writes the usual JSON row; a two-rate sweep draws its plot.
#[test]
fn bench_call_writes_json_and_a_rate_sweep_plot() {
    let guide = spawn_guide(false);
    let json = temp_path("call.json");
    run_ok(
        sockrpc()
            .args([
                "bench",
                "--call",
                "routeguide.RouteGuide/GetFeature",
                "-d",
                r#"{"latitude": 1, "longitude": 1}"#,
                "--target",
                &guide.addr,
                "--calls",
                "200",
                "--warmup",
                "10",
                "--concurrency",
                "2",
            ])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report:#}");
    let row = &rows[0];
    for field in ROW_FIELDS {
        assert!(row.get(field).is_some(), "lacks {field}: {row:#}");
    }
    assert_eq!(row["name"], "routeguide.RouteGuide/GetFeature");
    assert_eq!(row["calls"], 200);
    assert_eq!(row["errors"], 0);
    assert!(row["p99_us"].as_f64().expect("p99") > 0.0);
    assert_eq!(
        report["setup"]["method"],
        "routeguide.RouteGuide/GetFeature"
    );

    let sweep = temp_path("sweep.json");
    let svg = temp_path("sweep.svg");
    let stdout = run_ok(
        sockrpc()
            .args([
                "bench",
                "--call",
                "routeguide.RouteGuide/GetFeature",
                "--target",
                &guide.addr,
                "--rate",
                "100,300",
                "--duration",
                "1",
                "--warmup",
                "0",
            ])
            .arg("--json")
            .arg(&sweep)
            .arg("--rate-plot")
            .arg(&svg)
            .arg("--compare")
            .arg(&json),
    );
    // Open-loop rows are not in the closed-loop run they are compared with, and say so.
    assert!(stdout.contains("compared with"), "{stdout}");
    assert!(
        stdout.contains("open-loop 100/s") && stdout.contains("not in the saved run"),
        "{stdout}"
    );
    let report = read_json(&sweep);
    let rows = report["rows"].as_array().expect("rows");
    let asked: Vec<f64> = rows
        .iter()
        .map(|row| row["open_loop"]["asked_rps"].as_f64().expect("asked"))
        .collect();
    assert_eq!(asked, [100.0, 300.0]);
    let svg = std::fs::read_to_string(&svg).expect("the rate plot");
    assert!(svg.starts_with("<svg") && svg.contains("p99"), "{svg:.200}");
}

/// Open loop on a slow handler that stalls the server for 200 ms on 1 call in 100: the rate
/// holds within 5 %, every slot is accounted for, and the tail shows. A closed loop on the same
/// server sends nothing while it waits out a stall, so only the stalled calls themselves are
/// slow: its p90 stays near the handler's 2 ms, while the open loop's p90 carries the calls
/// that were due during the stalls.
#[test]
fn open_loop_holds_the_rate_and_shows_the_tail_a_closed_loop_hides() {
    let guide = spawn_guide(true);
    let bench = |extra: &[&str], name: &str| -> Value {
        let json = temp_path(name);
        run_ok(
            sockrpc()
                .args([
                    "bench",
                    "--call",
                    "routeguide.RouteGuide/GetFeature",
                    "-d",
                    r#"{"latitude": 1, "longitude": 1}"#,
                    "--target",
                    &guide.addr,
                    "--warmup",
                    "0",
                ])
                .args(extra)
                .arg("--json")
                .arg(&json),
        );
        read_json(&json)["rows"][0].clone()
    };
    let open = bench(&["--rate", "200", "--duration", "3"], "open.json");
    let ol = &open["open_loop"];
    let achieved = ol["achieved_rps"].as_f64().expect("achieved");
    assert!(
        (achieved - 200.0).abs() <= 10.0,
        "asked 200/s, achieved {achieved}: {open:#}"
    );
    let slots = ol["slots"].as_u64().expect("slots");
    assert_eq!(slots, 600);
    assert_eq!(
        ol["sent"].as_u64().expect("sent") + ol["dropped_slots"].as_u64().expect("dropped"),
        slots
    );
    assert_eq!(ol["dropped_slots"], 0, "{open:#}");
    assert_eq!(
        open["calls"].as_u64().expect("calls") + open["errors"].as_u64().expect("errors"),
        slots
    );
    let closed = bench(&["--calls", "300", "--concurrency", "1"], "closed.json");
    let stall_us = STALL.as_micros() as f64;
    let open_p90 = open["p90_us"].as_f64().expect("p90");
    let closed_p90 = closed["p90_us"].as_f64().expect("p90");
    println!(
        "open loop: achieved {achieved}/s, p50 {} µs, p90 {open_p90} µs, p99 {} µs; closed loop: \
         p50 {} µs, p90 {closed_p90} µs, p99 {} µs",
        open["p50_us"], open["p99_us"], closed["p50_us"], closed["p99_us"]
    );
    // About 40 % of the open loop's slots fall due during a stall (200 ms of every 700):
    // its p90 is well into the stall; the closed loop's is an ordinary call.
    assert!(
        open_p90 >= stall_us / 4.0,
        "open-loop p90 {open_p90} µs: {open:#}"
    );
    assert!(
        closed_p90 < stall_us / 4.0,
        "closed-loop p90 {closed_p90} µs: {closed:#}"
    );
    // Both saw the stalls themselves.
    assert!(
        closed["max_us"].as_f64().expect("max") >= stall_us * 0.9,
        "{closed:#}"
    );
}

/// `sockrpc serve` mounts reflection and health for its bench service: `list`, `describe`,
/// `call` and `health` work against it with no `.proto` at hand.
#[test]
fn list_call_and_health_against_sockrpc_serve() {
    let (_server, line_rx) = spawn_server(sockrpc().args(["serve", "--tcp", "127.0.0.1:0"]));
    let line = first_line(&line_rx);
    let tcp = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("tcp="))
        .unwrap_or_else(|| panic!("no tcp= in {line:?}"));
    let addr = format!("tcp://{tcp}");
    let (code, stdout, stderr) = call(&["list", &addr], "");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "sockrpc.bench.Bench"
        ]
    );
    let (code, stdout, _) = call(
        &[
            "call",
            &addr,
            "sockrpc.bench.Bench/Echo",
            "-d",
            r#"{"body": "aGVsbG8="}"#,
        ],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(lines(&stdout), [serde_json::json!({"body": "aGVsbG8="})]);
    let (code, stdout, _) = call(&["health", &addr], "");
    assert_eq!((code, stdout.trim()), (0, "SERVING"));
    let (code, stdout, _) = call(&["health", &addr, "sockrpc.bench.Bench"], "");
    assert_eq!((code, stdout.trim()), (0, "SERVING"));
    let (code, _, stderr) = call(&["health", &addr, "no.Such"], "");
    assert_eq!(code, 5, "NOT_FOUND: {stderr}");
    // The route guide has no health service: UNIMPLEMENTED, 12.
    let guide = spawn_guide(false);
    let (code, _, stderr) = call(&["health", &guide.addr], "");
    assert_eq!(code, 12, "{stderr}");
}
