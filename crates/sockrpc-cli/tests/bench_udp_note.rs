//! The note under a sockrpc-udp row says which transport carried the calls. A call whose
//! deadline passed on UDP went over UDP, not over TCP.

mod support;

use support::*;

/// Against `serve --delay 5ms` with `--timeout 0.001`, every call went out as a datagram and
/// expired there (on the server, or waiting for its reply), none fell back to TCP; the note
/// said "NOT ALL OVER UDP: ... the rest over TCP".
#[test]
fn calls_past_their_deadline_on_udp_are_not_counted_as_tcp() {
    let (mut server, lines) =
        spawn_server(sockrpc().args(["serve", "--udp", "127.0.0.1:0", "--delay", "5ms"]));
    let line = first_line(&lines);
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_owned()
    };
    let output = run(sockrpc().args([
        "bench",
        "--target",
        &format!("tcp://{}", field("tcp=")),
        "--udp-target",
        &field("udp="),
        "--transport",
        "udp",
        "--payload",
        "64",
        "--timeout",
        "0.001",
        "--duration",
        "0.2",
        "--warmup",
        "0",
    ]));
    terminate(&mut server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let note = stdout
        .lines()
        .find(|line| line.contains("note: sockrpc-udp:"))
        .unwrap_or_else(|| panic!("no sockrpc-udp note:\n{stdout}"));
    assert!(note.contains("0 fallbacks"), "{note}");
    assert!(!note.contains("NOT ALL OVER UDP"), "{note}");
    assert!(note.contains("UDP carried all"), "{note}");
}
