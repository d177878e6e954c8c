//! `sockrpc bench` budgets at their edges: `--calls` at an open-loop `--rate`. A budget no
//! run can hold is refused before anything starts, not a panic.

mod support;

use support::*;

/// `--rate 1 --calls 18446744073709551615` made each rate's time `calls / rate` seconds, past
/// what a `Duration` holds: the conversion panicked (exit 101) once the embedded server had
/// started. A time over a day (the bound of `--duration`) is now refused, naming the flags.
#[test]
fn calls_at_a_rate_past_a_day_are_refused_not_a_panic() {
    for calls in ["18446744073709551615", "86401"] {
        let output =
            run(sockrpc().args(["bench", "--rate", "1", "--calls", calls, "--warmup", "0"]));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stderr.contains("panicked"), "--calls {calls}: {stderr}");
        assert_eq!(output.status.code(), Some(1), "--calls {calls}: {stderr}");
        assert!(
            stderr.contains(&format!("--calls {calls} at --rate 1")) && stderr.contains("a day"),
            "{stderr}"
        );
        // Refused before the run: no header, no row.
        assert!(!stdout.contains("open-loop"), "{stdout}");
    }
}
