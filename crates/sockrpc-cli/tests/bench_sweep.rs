//! A second sweep of `sockrpc bench` as other benchmarks drive it: flags repeated, a warmup
//! far longer than the run, and stdout closed by its reader (`| head -1`). Each test fails
//! without its fix.

mod support;

use support::*;

/// `--rate 1k,1000` made two rows named `open-loop 1000/s`: `--compare` and the JSON's
/// `open_loop` figures matched both to the first. A rate named twice is now refused before any
/// server starts.
#[test]
fn a_rate_named_twice_is_refused_before_anything_runs() {
    let output = run(sockrpc().args([
        "bench",
        "--rate",
        "1k,1000",
        "--duration",
        "0.05",
        "--warmup",
        "0",
    ]));
    assert_refused_before_running(&output, 1, "--rate names 1000 calls/s twice", "open-loop");
}

/// `--payload 64,64` (or `--concurrency 4,4`) ran the same table twice: two rows of one name,
/// payload and concurrency in the table and the JSON, and `--compare` matched both to the
/// saved run's first. A value named twice is now refused before anything runs, as a rate is.
#[test]
fn a_payload_or_concurrency_named_twice_is_refused_before_anything_runs() {
    for (flag, list, says) in [
        ("--payload", "64,128,64", "--payload names 64 twice"),
        ("--concurrency", "4,4", "--concurrency names 4 twice"),
    ] {
        let output = run(tcp_bench("0.05").args([flag, list]));
        assert_refused_before_running(&output, 1, says, "raw-tcp");
    }
}

/// `--warmup 1000000000 --duration 0.2` warmed up for a billion calls (hours) before measuring
/// a fifth of a second. A warmup now ends after as long as its row then measures, and the row
/// says so.
#[test]
fn a_huge_warmup_ends_after_the_rows_duration() {
    let started = Instant::now();
    let stdout = run_ok(sockrpc().args([
        "bench",
        "--transport",
        "tcp",
        "--payload",
        "64",
        "--duration",
        "0.2",
        "--warmup",
        "1000000000",
    ]));
    // Each of the three rounds warms up for its share of the row's time.
    assert!(
        stdout.contains("warmup ended at its 0.067 s bound after"),
        "{stdout}"
    );
    // Two rows of 0.2 s warmup and 0.2 s measurement, and the server's start and stop.
    assert!(started.elapsed() < Duration::from_secs(30), "{stdout}");
}

/// The open loop's warmup (one closed-loop caller) is bounded the same way.
#[test]
fn a_huge_warmup_before_an_open_loop_ends_after_its_duration() {
    let output = run(sockrpc().args([
        "bench",
        "--rate",
        "100",
        "--duration",
        "0.2",
        "--warmup",
        "1000000000",
    ]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}\n{stderr}", output.status);
    assert!(
        stderr.contains("warmup ended at its 0.2 s bound after"),
        "{stderr}"
    );
}

/// `sockrpc bench | head -1`: Rust ignores SIGPIPE, so the next `println!` after the reader
/// left panicked (exit 101, "failed printing to stdout: Broken pipe"). The run now ends quietly
/// with 141, the status of a process SIGPIPE ended.
#[cfg(unix)]
#[test]
fn stdout_closed_by_its_reader_ends_the_run_quietly() {
    // The reader goes before the table (after the first row's 0.1 s) is written.
    let output = Running::without_reader(&mut tcp_bench("0.1")).finish("bench with stdout closed");
    let (_, stderr) = texts(&output);
    assert!(!stderr.contains("panicked"), "{}\n{stderr}", output.status);
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}

/// `--balance` over several servers, one of them down: the run waited 10 s for every server,
/// then exited 1 without measuring ("servers not reachable: 1 of the 2 endpoints wanted are
/// usable"), so a balancer could not be measured doing its job. It now measures on the live
/// ones, saying on stderr that one is not reachable.
#[test]
fn a_balanced_run_with_one_server_down_measures_the_others() {
    let dead = Refused::loopback();
    let (mut server, line) = serve(&[]);
    let live = tcp_addr(&line);
    let output = run(sockrpc().args([
        "bench",
        "--balance",
        "round-robin",
        "--target",
        &format!("tcp://{live},tcp://{}", dead.addr()),
        "--payload",
        "64",
        "--duration",
        "0.2",
        "--warmup",
        "10",
    ]));
    terminate(&mut server);
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stderr.contains("not every server is reachable"), "{stderr}");
    assert!(stdout.contains("sockrpc-balanced"), "{stdout}");
    assert!(stdout.contains(&format!("{live} ")), "{stdout}");
}

/// `--call`, `--rate` and `--timeout` with several targets were dropped without a word: the
/// balanced rows ran the bench service's Echo instead. They are now refused as a usage error
/// (exit 2, before anything runs), naming the option and the mode.
#[test]
fn call_rate_and_timeout_with_several_targets_are_refused() {
    for flag in [
        &["--call", "sockrpc.bench.Bench/Echo"][..],
        &["--rate", "100"],
        &["--timeout", "1"],
    ] {
        let output = run(sockrpc()
            .args(["bench", "--target", "tcp://127.0.0.1:1,tcp://127.0.0.1:2"])
            .args(flag));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{} has no effect with several --target servers",
                flag[0]
            )),
            "{stderr}"
        );
    }
}
