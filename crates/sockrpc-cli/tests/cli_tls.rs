//! The `sockrpc` binary over TLS: `serve --tls-cert/--tls-key` and `bench --target tls://`
//! across two processes, with certificates made as a user would (`openssl req -x509`).

mod support;

use support::*;

/// A self-signed certificate and key in `dir` (`cert.pem`, `key.pem`), made by `openssl req
/// -x509` as a user would, or by rcgen the same way (a CA-marked certificate with only a CN)
/// where there is no openssl.
fn self_signed_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|out| out.status.success());
    if !made {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let pair = rcgen::KeyPair::generate().expect("key");
        let certificate = params.self_signed(&pair).expect("certificate");
        std::fs::write(&cert, certificate.pem()).expect("write cert");
        std::fs::write(&key, pair.serialize_pem()).expect("write key");
    }
    (cert, key)
}

#[test]
fn serve_tls_and_bench_tls_target_across_processes() {
    let dir = temp_path("tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = self_signed_files(&dir);
    let (mut server, line_rx) = spawn_server(
        sockrpc()
            .args(["serve", "--tcp", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let line = first_line(&line_rx);
    let mut fields = line.split_whitespace();
    assert_eq!(fields.next(), Some("listening"), "{line:?}");
    let mut field = |key: &str| {
        let value = fields
            .next()
            .and_then(|field| field.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix('='))
            .unwrap_or_else(|| panic!("expected {key}= in {line:?}"));
        let addr: std::net::SocketAddr = value.parse().expect("address");
        assert_ne!(addr.port(), 0, "{line:?}");
        value.to_owned()
    };
    let tls = field("tls");
    let raw = field("raw");
    let raw_tls = field("raw-tls");
    assert!(fields.next().is_none(), "unexpected fields in {line:?}");

    let json = temp_path("tls-target.json");
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
            ])
            .args(["--transport", "tcp,tls"])
            .args(["--target", &format!("tls://{tls}")])
            .arg("--tls-ca")
            .arg(&cert)
            .args(["--raw-target", &raw, "--raw-tls-target", &raw_tls])
            .arg("--json")
            .arg(&json),
    );
    let report = read_json(&json);
    for name in ["raw-tcp", "raw-tls", "sockrpc-tls"] {
        assert_eq!(clean_row(&report, name, 64)["calls"], 200, "{name}");
    }
    // The target speaks TLS only: sockrpc-tcp is skipped, and says why.
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("sockrpc-tcp skipped"), "{skipped}");

    // A client that trusts another certificate fails its row, saying why, and so the run.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    let (other_cert, _) = self_signed_files(&other);
    let output = run(sockrpc()
        .args(["bench", "--calls", "10", "--warmup", "0", "--payload", "64"])
        .args(["--transport", "tls", "--target", &format!("tls://{tls}")])
        .arg("--tls-ca")
        .arg(&other_cert)
        .arg("--json")
        .arg(&json));
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sockrpc-tls 64 B ×1: could not connect")
            && stderr.contains("this client does not trust"),
        "{stderr}"
    );
    let report = read_json(&json);
    let row = &report["rows"].as_array().expect("rows")[0];
    assert_eq!(row["name"], "sockrpc-tls");
    assert!(row["errors"].as_u64().expect("errors") > 0, "{row:#}");
    let note = row["note"].as_str().unwrap_or_default();
    assert!(note.contains("this client does not trust"), "{row:#}");
    let _ = std::fs::remove_file(json);

    #[cfg(unix)]
    terminate(&mut server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `list`, `call` and `health` reach a `sockrpc serve --tls-cert` at tls:// with `--tls-ca`
/// (reflection and health are mounted on it); a client trusting another certificate gets
/// UNAVAILABLE (14) as its exit code.
#[test]
fn list_call_and_health_over_tls() {
    let dir = temp_path("tls-call");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key) = self_signed_files(&dir);
    let (_server, line_rx) = spawn_server(
        sockrpc()
            .args(["serve", "--tcp", "127.0.0.1:0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let line = first_line(&line_rx);
    let tls = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("tls="))
        .unwrap_or_else(|| panic!("no tls= in {line:?}"));
    let target = format!("tls://{tls}");
    let stdout = run_ok(sockrpc().args(["list", &target]).arg("--tls-ca").arg(&cert));
    assert!(
        stdout.lines().any(|l| l == "sockrpc.bench.Bench"),
        "{stdout}"
    );
    let stdout = run_ok(
        sockrpc()
            .args([
                "call",
                &target,
                "sockrpc.bench.Bench/Echo",
                "-d",
                r#"{"body": "aGk="}"#,
            ])
            .arg("--tls-ca")
            .arg(&cert),
    );
    assert_eq!(stdout.trim(), r#"{"body":"aGk="}"#);
    let stdout = run_ok(
        sockrpc()
            .args(["health", &target])
            .arg("--tls-ca")
            .arg(&cert),
    );
    assert_eq!(stdout.trim(), "SERVING");

    let other = dir.join("other");
    std::fs::create_dir_all(&other).expect("dir");
    let (other_cert, _) = self_signed_files(&other);
    let output = run(sockrpc()
        .args(["list", &target])
        .arg("--tls-ca")
        .arg(&other_cert));
    assert_eq!(output.status.code(), Some(14), "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `tls://` target that refuses connections: the sockrpc-tls row's note said the connect
/// error twice, once as why the row failed and once more as why its handshakes were not
/// timed (it then tried 20 more connections to the server it could not reach). A failed row's
/// note says why once, and no handshake is timed.
#[test]
fn a_tls_row_that_cannot_connect_says_why_once() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let json = temp_path("tls-refused.json");
    let output = run(sockrpc().args([
        "bench",
        "--target",
        &format!("tls://127.0.0.1:{port}"),
        "--transport",
        "tls",
        "--payload",
        "64",
        "--duration",
        "0.05",
        "--warmup",
        "0",
        "--json",
        json.to_str().expect("utf-8 path"),
    ]));
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let row = report["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["name"] == "sockrpc-tls"))
        .unwrap_or_else(|| panic!("no sockrpc-tls row: {report:#}"));
    let note = row["note"].as_str().unwrap_or_default();
    assert!(note.contains("could not connect"), "{note}");
    assert_eq!(note.matches("refused").count(), 1, "said twice: {note}");
    assert!(!note.contains("handshakes not timed"), "{note}");
}
