//! `sockrpc call` as grpcurl users type it (found by a probe comparing the two): JSON values on
//! stdin in any layout for a stream, `-d @` for stdin, an empty request for empty input, and a
//! reader that leaves early (`| head -1`) ending the command quietly with 141, not 64.

mod call_support;
mod support;

use call_support::*;
use support::*;

/// The route guide child's entry (see `cli_call.rs`).
#[test]
fn route_guide_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_child();
    }
}

/// `sockrpc call` against `guide`, `stdin` fed: its JSON answers, asserting it succeeded.
fn answers(guide: &GuideChild, extra: &[&str], stdin: &str) -> Vec<Value> {
    let mut args = vec!["call", guide.addr.as_str()];
    args.extend_from_slice(extra);
    json_lines(&args, stdin)
}

#[test]
fn a_streams_json_values_may_span_lines_or_share_one() {
    let guide = spawn_guide(false);
    // One value over three lines, then two on one line: three points, two of them features.
    let stdin = "{\n  \"latitude\": 1,\n  \"longitude\": 1\n}\n{\"latitude\": 9} {\"latitude\": 3, \"longitude\": 3}\n";
    let got = answers(&guide, &["routeguide.RouteGuide/RecordRoute"], stdin);
    assert_eq!(
        got,
        [serde_json::json!({"pointCount": 3, "featureCount": 2})]
    );
    // A value the input ends inside of is named, and the call is not made whole.
    let args = [
        "call",
        guide.addr.as_str(),
        "routeguide.RouteGuide/RecordRoute",
    ];
    let (code, _, stderr) = call(&args, "{\"latitude\": 1}\n{\"latitude\":\n");
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("cut short"), "{stderr}");
}

#[test]
fn at_alone_reads_stdin_and_empty_input_is_an_empty_request() {
    let guide = spawn_guide(false);
    let get = "routeguide.RouteGuide/GetFeature";
    let got = answers(
        &guide,
        &[get, "-d", "@"],
        r#"{"latitude": 2, "longitude": 2}"#,
    );
    assert_eq!(
        got,
        [serde_json::json!({"name": "Two", "location": {"latitude": 2, "longitude": 2}})]
    );
    // grpcurl sends an empty message for no input; so does `-d ''` here (the point 0,0: no
    // feature there, an answer all defaults).
    for extra in [&[get, "-d", ""][..], &[get, "-d", "@-"][..]] {
        let got = answers(&guide, extra, "");
        assert_eq!(got.len(), 1, "{extra:?}: {got:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_reader_that_leaves_early_ends_call_quietly_with_141() {
    let guide = spawn_guide(false);
    let output = Running::without_reader(sockrpc().args([
        "call",
        guide.addr.as_str(),
        "routeguide.RouteGuide/ListFeatures",
        "-d",
        r#"{"lo": {"latitude": 1, "longitude": 1}, "hi": {"latitude": 2, "longitude": 2}}"#,
    ]))
    .finish("call with stdout closed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}
