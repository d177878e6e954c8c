//! Running the `sockrpc` binary as a child process: every wait is bounded (a hung command fails
//! its test instead of hanging the suite), both pipes are drained on threads of their own (a
//! chatty child never blocks on a full pipe), and a child still running when its test fails is
//! killed.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Longest any one command may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The `sockrpc` binary under test.
pub fn sockrpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockrpc"))
}

/// `sockrpc bench` of the TCP rows at 64 B for `secs` seconds a row and no warmup: the
/// shortest run that measures something, for tests about what surrounds the rows.
pub fn tcp_bench(secs: &str) -> Command {
    let mut command = sockrpc();
    command.args(["bench", "--transport", "tcp", "--payload", "64"]);
    command.args(["--duration", secs, "--warmup", "0"]);
    command
}

/// Drains a pipe on its own thread, so a chatty child never blocks on a full pipe.
pub fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Polls `done` every 10 ms until it holds, failing the test (naming `what`) after `TIMEOUT`.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {TIMEOUT:?}");
        thread::sleep(Duration::from_millis(10));
    }
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

/// Waits (at most `TIMEOUT`) for a line of `lines` that starts with `start`, failing the test
/// (with the lines seen) if the channel ends or the time runs out first.
pub fn wait_for_line(lines: &mpsc::Receiver<String>, start: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(start) => return line,
            Ok(line) => seen.push(line),
            Err(err) => panic!("no line {start:?} ({err}) in:\n{}", seen.join("\n")),
        }
    }
}

/// Sends `signal` (`-INT`, `-TERM`, …) to process `pid` with `kill`; whether it was sent (no
/// `kill` binary, or no such process: not).
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// A child with its stdin closed and its output drained, killed if the test fails first.
pub struct Running {
    child: Child,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    /// Starts `command`, both its outputs drained.
    pub fn start(command: &mut Command) -> Running {
        let (mut running, stdout) = Running::spawn(command);
        running.stdout = Some(drain(stdout));
        running
    }

    /// Starts `command` with its stdout closed by its reader at once (as `| head -1` leaves
    /// it), its stderr drained.
    pub fn without_reader(command: &mut Command) -> Running {
        Running::spawn(command).0
    }

    /// Starts `command` with its stdout lines sent on the returned channel as they come
    /// ([`Running::finish`] then returns no stdout), its stderr drained.
    pub fn watched(command: &mut Command) -> (Running, mpsc::Receiver<String>) {
        let (running, stdout) = Running::spawn(command);
        (running, super::serve::lines_of(stdout))
    }

    fn spawn(command: &mut Command) -> (Running, std::process::ChildStdout) {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockrpc");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = Some(drain(child.stderr.take().expect("stderr")));
        let running = Running {
            child,
            stdout: None,
            stderr,
        };
        (running, stdout)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_some()
    }

    /// Sends `signal` to the child, failing the test if it could not be sent.
    pub fn signal(&self, signal: &str) {
        assert!(send_signal(self.id(), signal), "kill {signal} failed");
    }

    /// Waits (bounded, naming `what`) for the child to exit: its status and all it wrote.
    pub fn finish(mut self, what: &str) -> Output {
        let status = wait_bounded(&mut self.child, what);
        let read = |pipe: Option<thread::JoinHandle<Vec<u8>>>| {
            pipe.map(|pipe| pipe.join().expect("pipe thread"))
                .unwrap_or_default()
        };
        Output {
            status,
            stdout: read(self.stdout.take()),
            stderr: read(self.stderr.take()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` to completion, killing it and failing the test after `TIMEOUT`.
pub fn run(command: &mut Command) -> Output {
    let what = format!("{command:?}");
    Running::start(command).finish(&what)
}

/// Runs `command` and returns its stdout, failing the test unless it exits 0.
pub fn run_ok(command: &mut Command) -> String {
    let output = run(command);
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "{command:?} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// A command's stdout and stderr as text.
pub fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `bench` refused before it ran: exit `code`, `says` on stderr, and no `row` on stdout.
pub fn assert_refused_before_running(output: &Output, code: i32, says: &str, row: &str) {
    let (stdout, stderr) = texts(output);
    assert_eq!(output.status.code(), Some(code), "{stderr}\n{stdout}");
    assert!(stderr.contains(says), "should say {says:?}: {stderr}");
    assert!(!stdout.contains(row), "ran anyway:\n{stdout}");
}

/// `sockrpc bench ARGS` refused as clap refuses a conflict: exit code 2, and a first line
/// `error: …` that names every one of `names` on one line.
pub fn assert_usage_error_naming(args: &[&str], names: &[&str]) {
    let output = run(sockrpc().arg("bench").args(args));
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    let line = stderr.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("error: ")
            && names.iter().all(|name| line.contains(name))
            && !line.contains("  "),
        "{args:?}: the first line should name {names:?}: {stderr}"
    );
}
