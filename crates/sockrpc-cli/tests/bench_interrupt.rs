//! Ctrl-C (SIGINT) or SIGTERM in the middle of `sockrpc bench`: the run ends as the signal
//! asks, and the embedded server's private Unix socket directory does not stay behind.

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
        let mut child = sockrpc()
            .env("TMPDIR", &tmp)
            .args([
                "bench",
                "--transport",
                "uds",
                "--duration",
                "20",
                "--warmup",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockrpc");
        let stdout = drain(child.stdout.take().expect("stdout"));
        let stderr = drain(child.stderr.take().expect("stderr"));
        let dir = tmp.join(format!("sockrpc-bench-{}", child.id()));
        // The socket exists once the embedded server has bound it: the run is under way.
        let deadline = Instant::now() + TIMEOUT;
        while !dir.join("bench.sock").exists() {
            if Instant::now() >= deadline || child.try_wait().expect("wait").is_some() {
                let _ = child.kill();
                panic!("no socket in {} within {TIMEOUT:?}", dir.display());
            }
            thread::sleep(Duration::from_millis(10));
        }
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} failed");
        let status = wait_bounded(&mut child, "bench after a signal");
        let stdout = String::from_utf8_lossy(&stdout.join().expect("stdout thread")).into_owned();
        let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr thread")).into_owned();
        assert_eq!(
            status.code(),
            Some(code),
            "{signal}: {status}\n{stdout}\n{stderr}"
        );
        assert!(!dir.exists(), "{signal}: {} left behind", dir.display());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
