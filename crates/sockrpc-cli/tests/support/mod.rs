//! What the `sockrpc` binary's end-to-end tests share: running commands with bounded waits,
//! reading their JSON reports, and server children that are always killed.
#![allow(dead_code, unreachable_pub)]

pub use serde_json::Value;
pub use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Longest any one command may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

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

pub fn sockrpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockrpc"))
}

/// A path under cargo's per-target temporary directory, unique to this test.
pub fn temp_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{}-{name}", std::process::id()))
}

/// Drains a pipe on its own thread, so a chatty child never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Waits for `child` to exit, killing it and failing the test (naming it `what`) after
/// `TIMEOUT`.
pub fn wait_bounded(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` to completion, killing it and failing the test after `TIMEOUT`.
pub fn run(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockrpc");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, &format!("{command:?}"));
    Output {
        status,
        stdout: stdout.join().expect("stdout thread"),
        stderr: stderr.join().expect("stderr thread"),
    }
}

pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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

/// The first line a server child prints, waited for at most 30 s.
pub fn first_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the server printed no line within 30 s")
}

/// The sockrpc address a `serve` child's first line names (`tcp=IP:PORT`).
pub fn tcp_addr(line: &str) -> std::net::SocketAddr {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("tcp="))
        .unwrap_or_else(|| panic!("no tcp= in {line:?}"))
        .parse()
        .expect("address")
}

/// Spawns `command` as a server and reads its first stdout line on a thread.
pub fn spawn_server(command: &mut Command) -> (Server, mpsc::Receiver<String>) {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().expect("stdout");
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send(line);
    });
    (server, line_rx)
}

/// Kills the server if the test fails before stopping it.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks the server to stop with SIGTERM and waits (bounded) for a clean exit.
#[cfg(unix)]
pub fn terminate(server: &mut Server) {
    let pid = server.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|status| status.success());
    if !sent {
        // No `kill` binary here: the clean stop cannot be checked, only the cleanup done.
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            assert!(status.success(), "serve exited with {status} on SIGTERM");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop within 30 s of SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback TCP address that refuses connections for as long as this lives: a socket bound
/// to it that never listens (a connect gets a RST: `ECONNREFUSED`). No other socket can bind
/// the port meanwhile, so neither another test's server nor a `sockrpc serve` this test starts
/// on port 0 can answer there, as they could on a port bound, read and dropped. Needs no
/// runtime.
pub struct Refused {
    _socket: tokio::net::TcpSocket,
    addr: std::net::SocketAddr,
}

impl Refused {
    /// A refused address on `127.0.0.1`, on a port the kernel picks.
    pub fn loopback() -> Refused {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(([127, 0, 0, 1], 0).into())
            .expect("bind a socket that never listens");
        let addr = socket.local_addr().expect("local address");
        Refused {
            _socket: socket,
            addr,
        }
    }

    /// The address, refused while `self` lives.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}
