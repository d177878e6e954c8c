//! How `sockrpc call`, `list` and `describe` fail: against a server without reflection, with a
//! wrong method, service or symbol name, with malformed JSON, and when the server's status
//! message spans lines. Each failure is one line on stderr (`sockrpc: …`), nothing on stdout,
//! no panic, and a non-zero exit code: 12 (UNIMPLEMENTED) for absent reflection, 64 for wrong
//! input, the status code otherwise (13 for an answer that does not decode as the method's
//! output). A server with reflection only under its v1alpha name is still reflected, and
//! `--timeout` bounds the whole command, connecting and reflection included. An answer whose
//! message is flagged compressed while the server named no encoding is a protocol error:
//! `INTERNAL` (13), as a generated client says, not `UNIMPLEMENTED`. A Unix socket address with
//! a host (`unix://tmp/x.sock`) is wrong input, refused before connecting.

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

/// `unix://tmp/x.sock` names a host `tmp`, which a Unix socket has none of: every command that
/// takes an address refuses it as wrong input (64), naming the forms taken, before connecting
/// (before the fix: the relative path `tmp/x.sock`, and only "No such file or directory").
#[test]
fn a_unix_uri_with_a_host_is_a_one_line_input_error() {
    let uri = "unix://tmp/x.sock";
    let says = [
        "invalid (non-empty) authority \"tmp\"",
        "unix:PATH (relative or absolute) or unix:///ABSOLUTE/PATH",
        "\"unix:///tmp/x.sock\"",
    ];
    fails(&["list", uri], "", 64, &says);
    fails(&["call", uri, GET, "-d", "{}"], "", 64, &says);
    fails(&["health", uri], "", 64, &says);
    fails(&["describe", uri, "routeguide.Point"], "", 64, &says);
    fails(&["bench", "--call", GET, "--target", uri], "", 1, &says);
    fails(&["bench", "--target", uri], "", 1, &says);
}

#[test]
fn malformed_json_is_a_one_line_input_error() {
    let guide = spawn_guide(false);
    let addr = guide.addr.as_str();
    // Empty input is no error: an empty request, as grpcurl sends (`cli_input.rs`).
    let cases: [(&str, &[&str]); 7] = [
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

#[test]
fn an_answer_that_does_not_decode_is_internal_not_bad_input() {
    let guide = spawn_guide(false);
    // The route guide's service, with a Feature whose field 1 is a number: the server's answer
    // (a string there) does not decode.
    let dir = std::env::temp_dir().join(format!("sockrpc-cli-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let proto = dir.join("route_guide.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\npackage routeguide;\n\
         message Point { int32 latitude = 1; int32 longitude = 2; }\n\
         message Feature { int32 name = 1; }\n\
         service RouteGuide { rpc GetFeature(Point) returns (Feature); }\n",
    )
    .expect("write the proto");
    let proto_arg = proto.to_str().expect("utf-8");
    let data = r#"{"latitude": 1, "longitude": 1}"#;
    let args = ["call", &guide.addr, GET, "--proto", proto_arg, "-d", data];
    fails(
        &args,
        "",
        13,
        &["status Internal (13)", "not a valid routeguide.Feature"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_timeout_bounds_connecting_too() {
    // A listener that never accepts: the kernel completes the TCP handshake, sockrpc's never
    // comes. Connecting alone allows 10 s; --timeout 1 ends the command after about 1 s.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("tcp://{}", listener.local_addr().expect("addr"));
    fails(
        &["call", &addr, GET, "-d", "{}", "--timeout", "1"],
        "",
        4,
        &["DeadlineExceeded", "--timeout of 1s"],
    );
    fails(
        &["list", &addr, "--timeout", "1"],
        "",
        4,
        &["--timeout of 1s"],
    );
    drop(listener);
}

/// A server that speaks only enough of sockrpc's wire to answer every call it is opened with
/// HEADERS naming no encoding, one MESSAGE flagged compressed (its bytes need not be gzip: they
/// are refused before anything reads them), and an OK END. Each connection is served on a
/// thread of its own, every read bounded by a timeout; accepting stops when the flag returned
/// is set (or after 20 s). Its `tcp://` address, the flag, the accepting thread.
fn answering_compressed_unnamed() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    const PREFACE: &[u8; 8] = b"SOCKRPC\x01";
    const OPEN: u8 = 1;
    const HEADERS: u8 = 2;
    const MESSAGE: u8 = 3;
    const END: u8 = 4;
    const FLAG_COMPRESSED: u8 = 0x08;
    fn frame(kind: u8, flags: u8, call_id: u32, body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&[kind, flags, 0, 0]);
        out.extend_from_slice(&call_id.to_be_bytes());
        out.extend_from_slice(body);
        out
    }
    /// Answers the first call opened on `stream`, then reads (and drops) the rest.
    fn serve(mut stream: std::net::TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(PREFACE)?;
        let mut preface = [0u8; 8];
        stream.read_exact(&mut preface)?;
        let mut answered = false;
        for _ in 0..1000 {
            let mut head = [0u8; 12];
            stream.read_exact(&mut head)?;
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body)?;
            let id = u32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            if head[4] == OPEN && !answered {
                answered = true;
                // An empty metadata block, and no encoding fields: the END's code, message,
                // details, then its (empty) trailers.
                let end = [[0u8; 12].as_slice(), &[0, 0]].concat();
                let answer = [
                    frame(HEADERS, 0, id, &[0, 0]),
                    frame(MESSAGE, FLAG_COMPRESSED, id, b"\x1f\x8b not read"),
                    frame(END, 0, id, &end),
                ]
                .concat();
                stream.write_all(&answer)?;
            }
        }
        Ok(())
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = format!("tcp://{}", listener.local_addr().expect("addr"));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let accepting = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(20);
        while !stopped.load(Ordering::Relaxed) && Instant::now() < until {
            match listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(false).is_ok() {
                        std::thread::spawn(move || serve(stream));
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, stop, accepting)
}

#[test]
fn an_answer_flagged_compressed_with_no_encoding_named_is_internal() {
    let (addr, stop, accepting) = answering_compressed_unnamed();
    let proto = route_guide_proto();
    let proto = proto.to_str().expect("utf-8");
    let says = ["status Internal (13)", "named no encoding"];
    // Unary, then server-streaming: the channel's body refuses the message either way.
    fails(
        &["call", &addr, GET, "--proto", proto, "-d", "{}"],
        "",
        13,
        &says,
    );
    let list = "routeguide.RouteGuide/ListFeatures";
    fails(
        &["call", &addr, list, "--proto", proto, "-d", "{}"],
        "",
        13,
        &says,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    accepting
        .join()
        .expect("the fake server's accepting thread");
}
