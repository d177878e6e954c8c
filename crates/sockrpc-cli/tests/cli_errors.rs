//! How `sockrpc call`, `list` and `describe` fail: against a server without reflection, with a
//! wrong method, service or symbol name, with malformed JSON, and when the server's status
//! message spans lines. Each failure is one line on stderr (`sockrpc: …`), nothing on stdout,
//! no panic, and a non-zero exit code: 12 (UNIMPLEMENTED) for absent reflection, 64 for wrong
//! input, the status code otherwise. A server with reflection only under its v1alpha name is
//! still reflected.

mod call_support;
mod support;

use call_support::*;

/// The route guide child's entry (see `call_support`).
#[test]
fn route_guide_child() {
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_child();
    }
}

const GET: &str = "routeguide.RouteGuide/GetFeature";

/// Runs `sockrpc ARGS`, and checks it failed with `code` and one line on stderr holding every
/// one of `expected`, and printed nothing on stdout.
fn fails(args: &[&str], stdin: &str, code: i32, expected: &[&str]) {
    let (got, stdout, stderr) = call(args, stdin);
    assert_eq!(got, code, "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "{args:?} printed {stdout:?}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("sockrpc: "), "{args:?}: {stderr:?}");
    for part in expected {
        assert!(stderr.contains(part), "{args:?}: no {part:?} in {stderr:?}");
    }
}

#[test]
fn without_reflection_every_command_says_so_and_proto_files_still_work() {
    let guide = spawn_guide_with(false, "none");
    let addr = guide.addr.as_str();
    let says = [
        "status Unimplemented (12)",
        "no reflection service",
        "--proto",
    ];
    fails(&["list", addr], "", 12, &says);
    fails(&["list", addr, "routeguide.RouteGuide"], "", 12, &says);
    fails(&["describe", addr, "routeguide.Point"], "", 12, &says);
    fails(&["call", addr, GET, "-d", "{}"], "", 12, &says);
    fails(&["bench", "--call", GET, "--target", addr], "", 1, &says);
    // As the error says: with the .proto file the same call works.
    let proto = route_guide_proto();
    let proto = proto.to_str().expect("utf-8");
    let (code, stdout, stderr) = call(
        &[
            "call",
            addr,
            GET,
            "--proto",
            proto,
            "-d",
            r#"{"latitude": 1, "longitude": 1}"#,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("One"), "{stdout}");
}

#[test]
fn reflection_only_under_v1alpha_is_still_used() {
    let guide = spawn_guide_with(false, "v1alpha");
    let addr = guide.addr.as_str();
    let (code, stdout, stderr) = call(&["list", addr], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().any(|line| line == "routeguide.RouteGuide"),
        "{stdout}"
    );
    let (code, stdout, stderr) = call(&["describe", addr, "routeguide.Point"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("int32 latitude = 1;"), "{stdout}");
    let (code, stdout, stderr) = call(
        &[
            "call",
            addr,
            GET,
            "-d",
            r#"{"latitude": 2, "longitude": 2}"#,
        ],
        "",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Two"), "{stdout}");
}

#[test]
fn wrong_names_are_one_line_input_errors() {
    let guide = spawn_guide(false);
    let addr = guide.addr.as_str();
    let cases: [(&[&str], &[&str]); 9] = [
        (
            &["call", addr, "routeguide.RouteGuide/Teleport"],
            &["unknown method Teleport", "GetFeature"],
        ),
        (
            &["call", addr, "routeguide.Nowhere/GetFeature"],
            &["unknown service routeguide.Nowhere"],
        ),
        (
            &["call", addr, "GetFeature"],
            &["not a method", "package.Service/Method"],
        ),
        (&["call", addr, "routeguide.RouteGuide/"], &["not a method"]),
        (
            &["list", addr, "routeguide.Nowhere"],
            &["unknown service routeguide.Nowhere"],
        ),
        (
            &["list", addr, "routeguide.Point"],
            &["unknown service routeguide.Point"],
        ),
        (
            &["describe", addr, "routeguide.Nothing"],
            &["unknown symbol routeguide.Nothing"],
        ),
        (
            &["describe", addr, "routeguide.RouteGuide/Teleport"],
            &["unknown symbol routeguide.RouteGuide.Teleport"],
        ),
        (&["describe", addr, ""], &["no symbol given"]),
    ];
    for (args, expected) in cases {
        fails(args, "", 64, expected);
    }
}

#[test]
fn malformed_json_is_a_one_line_input_error() {
    let guide = spawn_guide(false);
    let addr = guide.addr.as_str();
    let cases: [(&str, &[&str]); 8] = [
        ("{\"latitude\": ", &["request 1", "bad JSON"]),
        ("{\"latitude\": 1} garbage", &["request 2", "bad JSON"]),
        (
            "{\"latitude\": 1}\n{\"latitude\": 2}",
            &["2 requests given", "takes one"],
        ),
        ("[1, 2]", &["not a valid routeguide.Point"]),
        ("null", &["not a valid routeguide.Point"]),
        (
            "{\"latitude\": \"north\"}",
            &["not a valid routeguide.Point"],
        ),
        ("{\"altitude\": 3}", &["altitude"]),
        ("", &["no request"]),
    ];
    for (data, expected) in cases {
        fails(&["call", addr, GET, "-d", data], "", 64, expected);
    }
    // The same through stdin, and on a stream, where the bad line cuts the call.
    fails(
        &["call", addr, GET, "-d", "@-"],
        "{\"latitude\": ",
        64,
        &["bad JSON"],
    );
    fails(
        &["call", addr, "routeguide.RouteGuide/RecordRoute"],
        "{\"latitude\": 1}\n{oops}\n",
        64,
        &["stdin line 2", "bad JSON"],
    );
}

#[test]
fn a_multi_line_status_message_is_printed_on_one_line() {
    let guide = spawn_guide(false);
    let data = format!("{{\"latitude\": {MULTILINE_LATITUDE}}}");
    fails(
        &["call", &guide.addr, GET, "-d", &data],
        "",
        13,
        &["status Internal (13): first line\\nsecond line\\u{1b}[31m"],
    );
}
