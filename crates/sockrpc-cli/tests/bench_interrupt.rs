//! Ctrl-C (SIGINT) or SIGTERM in the middle of `sockrpc bench`: the run ends as the signal
//! asks, the embedded server's private Unix socket directory does not stay behind, and a
//! `--json` report holds the tables finished so far.

mod support;

use support::*;

/// Both signals' default action ended the process with no destructor run, leaving
/// `$TMPDIR/sockrpc-bench-PID/bench.sock` behind for every interrupted run. Now the directory
/// is removed and the process exits with the status a shell reports for the signal.
#[cfg(unix)]
#[test]
fn a_signal_mid_run_removes_the_socket_directory() {
    for (signal, code) in [("-INT", 130), ("-TERM", 143)] {
        let tmp = temp_path(&format!("interrupt{signal}"));
        std::fs::create_dir_all(&tmp).expect("temporary directory");
        let mut bench = Running::start(sockrpc().env("TMPDIR", &tmp).args([
            "bench",
            "--transport",
            "uds",
            "--duration",
            "20",
            "--warmup",
            "0",
        ]));
        let dir = tmp.join(format!("sockrpc-bench-{}", bench.id()));
        // The socket exists once the embedded server has bound it: the run is under way.
        let socket = dir.join("bench.sock");
        wait_until(&format!("a socket in {}", dir.display()), || {
            socket.exists() || bench.exited()
        });
        assert!(socket.exists(), "bench exited before its socket appeared");
        bench.signal(signal);
        let output = bench.finish("bench after a signal");
        let (stdout, stderr) = texts(&output);
        let status = output.status;
        assert_eq!(
            status.code(),
            Some(code),
            "{signal}: {status}\n{stdout}\n{stderr}"
        );
        assert!(!dir.exists(), "{signal}: {} left behind", dir.display());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// `--json F` and Ctrl-C after the first table: SIGINT's default action ended the process and
/// F was never written, the finished tables lost with the one being measured. F now holds the
/// finished tables' rows, marked `"partial": true`, and the run still exits 130.
#[cfg(unix)]
#[test]
fn an_interrupted_run_writes_the_tables_it_finished_marked_partial() {
    let json = temp_path("interrupted.json");
    let payloads = [64, 4096, 16384, 65536];
    let (bench, lines) = Running::watched(
        sockrpc()
            .args(["bench", "--transport", "tcp"])
            .args(["--payload", "64,4096,16384,65536"])
            .args(["--duration", "2", "--warmup", "0", "--json"])
            .arg(&json),
    );
    // The 64 B table is printed once its rows have run; the three tables after it take 12 s
    // more on the wall clock, however loaded the machine: the signal, sent once the line is
    // read, lands before the run ends. Which tables finished by then is read from what was
    // printed, not assumed: with one table after the first, the signal had 4 s to land.
    wait_for_line(&lines, "payload 64 B");
    bench.signal("-INT");
    let output = bench.finish("bench after Ctrl-C");
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let mut printed = vec![64];
    printed.extend(
        std::iter::from_fn(|| lines.recv_timeout(TIMEOUT).ok()).filter_map(|line| {
            let size = line.strip_prefix("payload ")?.split_once(" B")?.0;
            size.parse::<u64>().ok()
        }),
    );
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["partial"], true, "{report:#}");
    let rows = report["rows"].as_array().expect("rows");
    let kept: Vec<u64> = rows
        .iter()
        .filter_map(|row| row["payload_bytes"].as_u64())
        .step_by(2)
        .collect();
    // A table is kept before it is printed: the signal may fall between the two.
    let one_more = payloads[..(printed.len() + 1).min(payloads.len())].to_vec();
    assert!(
        kept == printed || kept == one_more,
        "kept {kept:?}, printed {printed:?}: {report:#}"
    );
    let names: Vec<&str> = rows.iter().filter_map(|row| row["name"].as_str()).collect();
    assert_eq!(
        names,
        ["raw-tcp", "sockrpc-tcp"].repeat(kept.len()),
        "{report:#}"
    );
    for payload in kept {
        for name in ["raw-tcp", "sockrpc-tcp"] {
            clean_row(&report, name, payload);
        }
    }
    assert!(stderr.contains("partial"), "{stderr}");
}

/// `GET /metrics` from a `serve --metrics` child: the number of `Echo` calls it has started.
fn echo_calls_started(metrics: std::net::SocketAddr) -> u64 {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect(metrics) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .find(|line| {
            line.starts_with("rpc_server_call_started_total{") && line.contains("\"Echo\"")
        })
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map_or(0, |calls| calls as u64)
}

/// A `--rate` sweep (and a `--call` run) given `--json F` and stopped by SIGTERM wrote nothing:
/// the rates it had finished were lost with the one being measured. F now holds them, marked
/// `"partial": true`, as for the built-in rows. The first rate makes 20 calls in 20 ms; the
/// second, one a second, is under way once the server has started a 21st call.
#[cfg(unix)]
#[test]
fn an_interrupted_sweep_writes_the_rates_it_finished_marked_partial() {
    let (mut server, line) = serve(&["--tcp", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let (target, metrics) = (tcp_addr(&line), listed_addr(&line, "metrics"));
    let json = temp_path("interrupted-sweep.json");
    let mut bench = Running::start(
        sockrpc()
            .args(["bench", "--target", &format!("tcp://{target}")])
            .args([
                "--rate", "1000,1", "--calls", "20", "--warmup", "0", "--json",
            ])
            .arg(&json),
    );
    wait_until("the second rate's first call", || {
        echo_calls_started(metrics) > 20 || bench.exited()
    });
    bench.signal("-TERM");
    let output = bench.finish("bench after SIGTERM");
    terminate(&mut server);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(143), "{stdout}\n{stderr}");
    let report = read_json(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(report["partial"], true, "{report:#}");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{report:#}");
    assert_eq!(rows[0]["name"], "open-loop 1000/s", "{report:#}");
    assert_eq!(rows[0]["calls"], 20, "{report:#}");
}

/// A signal while the final report was being written left its hidden temporary file
/// (`.r.json.PID.tmp`, the one renamed over `r.json` once whole) behind. The test holds the
/// write at that point: the temporary file's name is made a FIFO first, so the run blocks
/// opening it until the signal; the file is gone once the run has exited. A signal handled on
/// the writing thread interrupts its `open`, which the standard library retries, making the
/// file again after the waiting thread removed it: that one must go too (it stayed, a regular
/// file holding the whole report, in 2 of 6 runs of this binary before).
#[cfg(target_os = "linux")]
#[test]
fn a_signal_during_the_final_write_leaves_no_temporary_file() {
    let dir = temp_path("final-write");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let json = dir.join("r.json");
    // Two rows of 2 s: far longer than making the FIFO takes, however loaded the machine.
    let mut bench = Running::start(tcp_bench("2").arg("--json").arg(&json));
    let temp = dir.join(format!(".r.json.{}.tmp", bench.id()));
    let made = Command::new("mkfifo")
        .arg(&temp)
        .status()
        .is_ok_and(|status| status.success());
    assert!(made, "mkfifo {}", temp.display());
    // The main thread waits in open() for a reader of the FIFO: the write is under way.
    let wchan = format!("/proc/{}/wchan", bench.id());
    wait_until("the run to start its final write", || {
        std::fs::read_to_string(&wchan).is_ok_and(|at| at.trim() == "wait_for_partner")
            || bench.exited()
    });
    bench.signal("-INT");
    let output = bench.finish("bench after a signal in its final write");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|names| {
            names
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(left.is_empty(), "left behind: {left:?}");
}
