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
