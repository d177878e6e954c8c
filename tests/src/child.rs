//! A server in a child process, for tests that read a process's memory: the child is this
//! same test binary, re-run on one test (which serves when the given environment variable is
//! set), so the other tests of the binary cannot disturb the numbers. [`alone`] runs a whole
//! test that way, for tests that count the process's own memory or descriptors.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

/// The line prefix a child server prints its address after.
pub const ADDR_LINE: &str = "SOCKRPC_CHILD_ADDR=";

/// The parent process's id (a child server stops once it is orphaned).
pub fn parent_pid() -> Option<u32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// (VmRSS, VmSize) of `pid` in bytes.
pub fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            * 1024
    };
    (field("VmRSS:"), field("VmSize:"))
}

/// A child server: this binary re-run on one test.
#[derive(Debug)]
pub struct ChildServer {
    process: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Re-runs this binary on `test`, the test's path as libtest names it (`module::test`),
    /// with `env` set; waits (≤ 30 s) for the address it prints after [`ADDR_LINE`].
    pub fn spawn(test: &str, env: &str) -> ChildServer {
        let exe = std::env::current_exe().expect("current exe");
        let mut process = std::process::Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(env, "1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn child server");
        let addr = printed_addr(&mut process, ADDR_LINE);
        ChildServer { process, addr }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Checks the child is still running (it aborts on panic), then ends it (on drop).
    pub fn finish(mut self) {
        let status = self.process.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "child server exited ({status:?}): it panicked or crashed"
        );
    }
}

impl Drop for ChildServer {
    /// Ends the child, also when the test panicked before [`finish`](ChildServer::finish): it
    /// would otherwise serve on until it noticed it was orphaned.
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The libtest name of `test` in the module at `module_path` (`module_path!()` of the caller):
/// its path without the crate's name.
pub fn test_name(module_path: &str, test: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{test}"),
        None => test.to_owned(),
    }
}

/// Set, to a test's name, in the process [`alone`] runs that test in.
const ALONE_ENV: &str = "SOCKRPC_TEST_ALONE";

/// For a test that reads a count of the whole process (its peak memory, its open descriptors):
/// whether to run its body here. Under `cargo test` every test of a binary runs in one process,
/// at the same time, and their sockets and memory would swell the count; so, unless this is
/// already the process made for it, this runs the test binary again with `test` alone (the
/// test's path as libtest names it, `module::test`: see [`test_name`]), checks that it ran,
/// passed and printed `evidence` on its stderr (what the test prints when it measured: the pass
/// is not vacuous), and returns false (the caller returns).
pub fn alone(test: &str, evidence: &str) -> bool {
    if std::env::var(ALONE_ENV).is_ok_and(|v| v == test) {
        return true;
    }
    let run = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ALONE_ENV, test)
        .output()
        .expect("run the measuring process");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{test} alone failed: {out}{err}");
    assert!(
        out.contains("1 passed"),
        "{test}: the child ran no test: {out}"
    );
    assert!(err.contains(evidence), "{test}: no measurement: {err}");
    false
}

/// Waits (≤ 30 s) for the address `process` prints after `prefix` on its (piped) stdout; the
/// rest of its output is read and dropped, so it never blocks on a full pipe.
pub fn printed_addr(process: &mut std::process::Child, prefix: &'static str) -> SocketAddr {
    let stdout = process.stdout.take().expect("child stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some((_, addr)) = line.split_once(prefix) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr.to_owned());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("child server printed its address")
        .parse()
        .expect("child address parses")
}
