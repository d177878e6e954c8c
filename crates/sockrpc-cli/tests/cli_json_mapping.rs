//! `sockrpc call` against `tests/proto/sockrpc/json/every.proto`'s `Mirror`, whose one message
//! holds every shape protobuf's JSON mapping gives a field (64-bit integers, enums, bytes, maps
//! with integer and bool keys, a oneof, the well-known types, wrappers), through reflection and
//! through `--proto`. The server echoes the bytes it gets (a streamed request's messages
//! concatenated, which protobuf reads as one message merged), so what comes back is what the
//! CLI encoded, printed as the CLI decodes it.

// `json!` of a message with every field.
#![recursion_limit = "512"]

mod call_support;
mod support;

use bytes::{BufMut, Bytes, BytesMut};
use call_support::{call, serve_on_runtime};
use futures_util::stream::StreamExt;
use prost::Message;
use serde_json::{json, Value};
use sockrpc::codegen::{client_streaming_handler, streaming_handler, BoxFuture, Call, Codec};
use sockrpc::{Code, Response, Server, Status};
use sockrpc_reflection::ReflectionExt;
use std::task::{Context, Poll};

/// The service's full name.
const SERVICE: &str = "sockrpc.json.v1.Mirror";

/// Messages as the bytes they are.
#[derive(Clone, Copy)]
struct Raw;

impl Codec<Bytes> for Raw {
    fn encode(&self, item: &Bytes, dst: &mut BytesMut) -> Result<(), Status> {
        dst.put_slice(item);
        Ok(())
    }

    fn decode(&self, src: Bytes) -> Result<Bytes, Status> {
        Ok(src)
    }
}

/// Echoes what it gets: every message of a streamed answer (`Fan`: each twice), or one answer
/// holding every request message concatenated. A call with `x-fail: CODE MESSAGE` metadata
/// fails with that status instead.
#[derive(Clone)]
struct Mirror;

impl tower::Service<Call> for Mirror {
    type Response = Response<sockrpc::Body>;
    type Error = Status;
    type Future = BoxFuture<Result<Response<sockrpc::Body>, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Call) -> Self::Future {
        let fail = call
            .request()
            .metadata()
            .get_str("x-fail")
            .and_then(|text| text.split_once(' '))
            .map(|(code, message)| {
                Status::new(
                    Code::from_u32(code.parse().unwrap_or(2)),
                    message.to_owned(),
                )
            });
        if let Some(status) = fail {
            return Box::pin(async move { Err(status) });
        }
        // The server learns a method's shape from its name, as a generated one does.
        let times = if call.method() == "Fan" { 2 } else { 1 };
        if matches!(call.method(), "Fan" | "Chat") {
            Box::pin(streaming_handler(call, Raw, move |request| async move {
                let echoed = request
                    .into_inner()
                    .flat_map(move |message| futures_util::stream::iter(vec![message; times]));
                Ok(Response::new(echoed.boxed()))
            }))
        } else {
            Box::pin(client_streaming_handler(call, Raw, |request| async move {
                let mut all = BytesMut::new();
                let mut messages = request.into_inner();
                while let Some(message) = messages.message().await? {
                    all.put_slice(&message);
                }
                Ok(Response::new(all.freeze()))
            }))
        }
    }
}

/// `tests/proto`, where `every.proto` is.
fn proto_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/proto")
}

/// `every.proto`'s path.
fn every_proto() -> String {
    proto_root()
        .join("sockrpc/json/every.proto")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

/// The mirror with reflection over `every.proto`, on `127.0.0.1:0`.
fn serve() -> (tokio::runtime::Runtime, String) {
    let set = protox::compile(["sockrpc/json/every.proto"], [proto_root()]).expect("compiles");
    let set = set.encode_to_vec();
    serve_on_runtime(
        Server::builder()
            .add_routes(sockrpc::Router::new().add_named(SERVICE, Mirror))
            .add_reflection(&[&set]),
    )
}

/// `sockrpc call ADDR Mirror/METHOD EXTRA…`, with `--proto every.proto` when `from_proto`.
fn run(addr: &str, method: &str, extra: &[&str], from_proto: bool, stdin: &str) -> Outcome {
    let method = format!("{SERVICE}/{method}");
    let proto = every_proto();
    let mut args = vec!["call", addr, method.as_str()];
    args.extend_from_slice(extra);
    if from_proto {
        args.extend(["--proto", proto.as_str()]);
    }
    let (code, stdout, stderr) = call(&args, stdin);
    Outcome {
        code,
        answers: stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
            .collect(),
        stderr,
    }
}

/// How a call ended.
#[derive(Debug)]
struct Outcome {
    code: i32,
    answers: Vec<Value>,
    stderr: String,
}

/// Every shape of field, read from JSON as the mapping allows it (64-bit integers as strings
/// and numbers, enums by name and number, bytes in both base64 alphabets, NaN and the
/// infinities, lowerCamel and `.proto` names, `null` for a message, a oneof arm, the
/// well-known types and wrappers, an `Any` packing a message and one packing a well-known
/// type), comes back written as the mapping writes it. A wrapper holding NaN printed `null`;
/// a whole `double` printed `3.0`.
#[test]
fn every_field_shape_reads_and_prints_as_the_json_mapping_says() {
    let (_runtime, addr) = serve();
    let request = json!({
        "i32": -1, "i64": "-9223372036854775808", "u32": 4294967295_u32,
        "u64": 18446744073709551615_u64, "s32": "-5", "s64": -7, "f32": 7, "f64": "8",
        "sf32": -9, "sf64": "-10", "real32": 1.5, "real64": 3, "flag": true, "text": "héllo",
        "blob": "-_8", "color": "COLOR_RED", "colors": [1, "COLOR_GREEN", 7],
        "longs": [1, "2", -3], "reals": ["NaN", "Infinity", "-Infinity", 0.5, 2],
        "child": null, "children": [{"text": "a"}, {}],
        "pick_number": "12", "maybe": 0, "otherName": "r", "snake_case_name": "s",
        "at": "2024-02-29T12:00:00.123+01:30", "took": "-1.5s", "doc": {"n": 1, "l": [null]},
        "value": 2.5, "list": [true, "x"], "mask": "aB.cD,eF", "nothing": {}, "null": null,
        "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
        "anys": [{"@type": "type.googleapis.com/sockrpc.json.v1.Every", "i64": 5}],
        "wBool": false, "wI64": 5, "wU64": "18446744073709551615", "wF32": "NaN",
        "wF64": "-Infinity", "wText": "", "wBlob": "/+8="
    });
    let expected = json!({
        "i32": -1, "i64": "-9223372036854775808", "u32": 4294967295_u32,
        "u64": "18446744073709551615", "s32": -5, "s64": "-7", "f32": 7, "f64": "8",
        "sf32": -9, "sf64": "-10", "real32": 1.5, "real64": 3, "flag": true, "text": "héllo",
        "blob": "+/8=", "color": "COLOR_RED", "colors": ["COLOR_RED", "COLOR_GREEN", 7],
        "longs": ["1", "2", "-3"], "reals": ["NaN", "Infinity", "-Infinity", 0.5, 2],
        "children": [{"text": "a"}, {}],
        "pickNumber": "12", "maybe": 0, "otherName": "r", "snakeCaseName": "s",
        "at": "2024-02-29T10:30:00.123Z", "took": "-1.500s", "doc": {"l": [null], "n": 1},
        "value": 2.5, "list": [true, "x"], "mask": "aB.cD,eF", "nothing": {},
        "any": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "2s"},
        "anys": [{"@type": "type.googleapis.com/sockrpc.json.v1.Every", "i64": "5"}],
        "wBool": false, "wI64": "5", "wU64": "18446744073709551615", "wF32": "NaN",
        "wF64": "-Infinity", "wText": "", "wBlob": "/+8="
    });
    let text = request.to_string();
    for from_proto in [false, true] {
        let out = run(&addr, "Unary", &["-d", &text], from_proto, "");
        assert_eq!(out.code, 0, "from_proto={from_proto}: {}", out.stderr);
        assert_eq!(
            out.answers,
            std::slice::from_ref(&expected),
            "from_proto={from_proto}"
        );
    }
}

/// A map's entries printed in the order of prost-reflect's `HashMap`, which changes from run to
/// run: the same answer printed differently each time. They are in key order now, as protojson
/// (and so grpcurl) writes them: integers by value, `false` first, strings by their bytes.
#[test]
fn maps_print_in_key_order() {
    let (_runtime, addr) = serve();
    let request = r#"{
        "byName": {"e": 5, "b": 2, "d": 4, "a": 1, "c": 3},
        "byInt": {"10": "ten", "-1": "minus one", "2": "two", "0": "zero", "-20": "x"},
        "byLong": {"9": {}, "-9223372036854775808": {"text": "min"}, "100": {}, "1": {}},
        "byUnsigned": {"18446744073709551615": "", "9": "", "10": "", "0": ""},
        "byFlag": {"true": "t", "false": "f"},
        "colorsByName": {"9": "COLOR_RED", "10": "COLOR_GREEN", "a": "COLOR_RED"},
        "anys": [{"@type": "type.googleapis.com/sockrpc.json.v1.Every",
                  "byInt": {"3": "", "1": "", "2": "", "-3": ""}}]
    }"#;
    let expected = concat!(
        r#"{"byName":{"a":"1","b":"2","c":"3","d":"4","e":"5"},"#,
        r#""byInt":{"-20":"x","-1":"minus one","0":"zero","2":"two","10":"ten"},"#,
        r#""byLong":{"-9223372036854775808":{"text":"min"},"1":{},"9":{},"100":{}},"#,
        r#""byUnsigned":{"0":"","9":"","10":"","18446744073709551615":""},"#,
        r#""byFlag":{"false":"f","true":"t"},"#,
        r#""colorsByName":{"10":"COLOR_GREEN","9":"COLOR_RED","a":"COLOR_RED"},"#,
        r#""anys":[{"@type":"type.googleapis.com/sockrpc.json.v1.Every","#,
        r#""byInt":{"-3":"","1":"","2":"","3":""}}]}"#
    );
    for from_proto in [false, true] {
        let method = format!("{SERVICE}/Unary");
        let proto = every_proto();
        let mut args = vec!["call", addr.as_str(), method.as_str(), "-d", request];
        if from_proto {
            args.extend(["--proto", proto.as_str()]);
        }
        let (code, stdout, stderr) = call(&args, "");
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout.trim_end(), expected, "from_proto={from_proto}");
    }
}

/// A value of the wrong type deep in a request was refused as `invalid digit found in string`
/// or `expected integer value`, naming neither the field nor where it stood: the request was
/// read from a parsed value, which keeps no positions. The error now says the line and column
/// where it went wrong, in `-d`'s text (any request of several) or on stdin.
#[test]
fn a_bad_value_is_said_where_it_stands() {
    let (_runtime, addr) = serve();
    let cases: [(&str, &[&str], &str, &str); 5] = [
        (
            "Unary",
            &["-d", "{\"text\": \"a\",\n  \"child\": {\"i32\": \"x\"}}"],
            "",
            "request 1: not a valid sockrpc.json.v1.Every: invalid digit found in string at \
             line 2 column 22",
        ),
        (
            "Unary",
            &["-d", "{\"i64\": 1.5}"],
            "",
            "expected integer value at line 1 column 11",
        ),
        (
            "Gather",
            &[
                "-d",
                "{\"text\": \"a\"}\n {\"children\": [{}, {\"nope\": 1}]}",
            ],
            "",
            "request 2: not a valid sockrpc.json.v1.Every: unrecognized field name 'nope' at \
             line 2 column 26",
        ),
        (
            "Chat",
            &[],
            "{\"i64\": 1}\n\n  {\"text\": \"b\", \"color\":\n \"BLUE\"}\n",
            "stdin line 4: not a valid sockrpc.json.v1.Every: unrecognized enum value 'BLUE' at \
             line 4 column 7",
        ),
        (
            "Chat",
            &[],
            "{\"i64\": 1} {\"u32\": -1}\n",
            "stdin line 1: not a valid sockrpc.json.v1.Every: out of range integral type \
             conversion attempted at line 1 column 21",
        ),
    ];
    for (method, extra, stdin, says) in cases {
        for from_proto in [false, true] {
            let out = run(&addr, method, extra, from_proto, stdin);
            assert_eq!(out.code, 64, "{method} {extra:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(says),
                "{method} {extra:?}: should say {says:?}: {}",
                out.stderr
            );
        }
    }
}

/// A method whose request is a number (a `google.protobuf.Value`, an `Int32Value`) could not be
/// given a negative one: clap took `-d -2.5` for a flag `-2` and refused it (exit code 2).
/// `-d`'s value may now start with `-`, as grpcurl's may.
#[test]
fn a_negative_number_is_a_request() {
    let (_runtime, addr) = serve();
    for from_proto in [false, true] {
        let out = run(&addr, "Any", &["-d", "-2.5"], from_proto, "");
        assert_eq!(out.code, 0, "from_proto={from_proto}: {}", out.stderr);
        assert_eq!(out.answers, [json!(-2.5)]);
    }
}

/// A field given twice was sent without a word: the request was read from a parsed value,
/// whose objects keep one value per key in key order, so `{"text": "a", "text": "b"}` sent
/// `"b"`, and of a field given by both its names the one sorting last won, not the one written
/// last. protojson (so grpcurl) refuses both; so does `call` now, in a message, a map or a
/// `Struct`, and on stdin, naming the key and where it stands.
#[test]
fn a_field_given_twice_is_refused() {
    let (_runtime, addr) = serve();
    let cases: [(&str, &str, &str); 5] = [
        (
            "Unary",
            "{\"snake_case_name\": \"x\",\n \"snakeCaseName\": \"y\"}",
            "\"snakeCaseName\" is given twice (first as \"snake_case_name\", one field's two \
             names) at line 2 column 16",
        ),
        (
            "Unary",
            "{\"text\": \"a\", \"text\": \"b\"}",
            "\"text\" is given twice at line 1 column 20",
        ),
        (
            "Unary",
            "{\"children\": [{}, {\"i32\": 1, \"i32\": 2}]}",
            "\"i32\" is given twice at line 1 column 34",
        ),
        (
            "Unary",
            "{\"byName\": {\"a\": 1, \"a\": 2}}",
            "\"a\" is given twice at line 1 column 23",
        ),
        (
            "Doc",
            "{\"k\": 1, \"k\": 2}",
            "\"k\" is given twice at line 1 column 12",
        ),
    ];
    for (method, data, says) in cases {
        for from_proto in [false, true] {
            let out = run(&addr, method, &["-d", data], from_proto, "");
            assert_eq!(out.code, 64, "{data}: {}", out.stderr);
            assert!(
                out.stderr.contains(says),
                "{data}: should say {says:?}: {}",
                out.stderr
            );
        }
    }
    let out = run(
        &addr,
        "Chat",
        &[],
        false,
        "{\"i64\": 1}\n{\"i64\": 1, \"i64\": 2}\n",
    );
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.contains("stdin line 2") && out.stderr.contains("at line 2 column 16"),
        "{}",
        out.stderr
    );
}

/// The other shapes, through reflection and `--proto`: a server stream prints each answer on a
/// line of its own; a client stream's requests (here merged by the server) come from `-d` or
/// stdin; a bidirectional stream answers each stdin line; a well-known type is a method's whole
/// message; a server's status is the exit code, said with its name and message; an unknown
/// method or service is named (exit code 64).
#[test]
fn every_call_shape_and_its_errors() {
    let (_runtime, addr) = serve();
    for from_proto in [false, true] {
        let ok = |method: &str, extra: &[&str], stdin: &str| {
            let out = run(&addr, method, extra, from_proto, stdin);
            assert_eq!(out.code, 0, "{method}: {}", out.stderr);
            assert!(out.stderr.contains("status OK (0)"), "{}", out.stderr);
            out.answers
        };
        assert_eq!(
            ok("Fan", &["-d", r#"{"i64": 7}"#], ""),
            [json!({"i64": "7"}), json!({"i64": "7"})]
        );
        assert_eq!(
            ok("Gather", &["-d", r#"{"i64": 1} {"text": "b"}"#], ""),
            [json!({"i64": "1", "text": "b"})]
        );
        assert_eq!(
            ok(
                "Gather",
                &[],
                "{\"u32\": 1}\n{\"colors\": [\"COLOR_RED\"]}\n"
            ),
            [json!({"u32": 1, "colors": ["COLOR_RED"]})]
        );
        assert_eq!(
            ok(
                "Chat",
                &[],
                "{\"i64\": 1}\n{\"text\":\n \"b\"} {\"flag\": true}\n"
            ),
            [
                json!({"i64": "1"}),
                json!({"text": "b"}),
                json!({"flag": true})
            ]
        );
        assert_eq!(
            ok("Stamp", &["-d", r#""2020-01-01T00:00:00+02:00""#], ""),
            [json!("2019-12-31T22:00:00Z")]
        );
        assert_eq!(
            ok("Big", &["-d", "18446744073709551615"], ""),
            [json!("18446744073709551615")]
        );
        assert_eq!(ok("Mask", &["-d", r#""a.bC,d""#], ""), [json!("a.bC,d")]);
        assert_eq!(
            ok("Doc", &["-d", r#"{"z": [1, null], "a": {"b": true}}"#], ""),
            [json!({"a": {"b": true}, "z": [1, null]})]
        );
        let failed = run(&addr, "Fan", &["-H", "x-fail: 9 not now"], from_proto, "");
        assert_eq!(failed.code, 9, "{}", failed.stderr);
        assert!(
            failed
                .stderr
                .contains("status FailedPrecondition (9): not now"),
            "{}",
            failed.stderr
        );
        let unknown = run(&addr, "Teleport", &[], from_proto, "");
        assert_eq!(unknown.code, 64, "{}", unknown.stderr);
        assert!(
            unknown
                .stderr
                .contains("unknown method Teleport in sockrpc.json.v1.Mirror"),
            "{}",
            unknown.stderr
        );
    }
    let (code, _, stderr) = call(&["call", &addr, "sockrpc.json.v1.Nowhere/Unary"], "");
    assert_eq!(code, 64, "{stderr}");
    assert!(
        stderr.contains("unknown service sockrpc.json.v1.Nowhere"),
        "{stderr}"
    );
}

/// A 64-bit integer written as a number past its type's range was sent clamped: serde_json
/// reads `18446744073709551616` (2⁶⁴) as a float, which became `u64::MAX`, and −2⁶³−1 became
/// `i64::MIN`. Both are refused now, as protojson refuses them, in fields, lists and wrappers.
#[test]
fn a_64_bit_integer_past_its_range_is_refused() {
    let (_runtime, addr) = serve();
    let cases = [
        (
            "Unary",
            r#"{"u64": 18446744073709551616}"#,
            "unsigned 64-bit",
        ),
        (
            "Unary",
            r#"{"i64": -9223372036854775809}"#,
            "out of range for a 64-bit",
        ),
        (
            "Unary",
            r#"{"longs": [1, 9223372036854775808.0]}"#,
            "out of range for a 64-bit",
        ),
        (
            "Unary",
            r#"{"wU64": 18446744073709551616}"#,
            "unsigned 64-bit",
        ),
        ("Big", "18446744073709551616", "unsigned 64-bit"),
    ];
    for (method, data, says) in cases {
        for from_proto in [false, true] {
            let out = run(&addr, method, &["-d", data], from_proto, "");
            assert_eq!(out.code, 64, "{data}: {:?} {}", out.answers, out.stderr);
            assert!(
                out.stderr.contains(says),
                "{data}: should say {says:?}: {}",
                out.stderr
            );
        }
    }
    // The ends of the ranges still go through.
    let out = run(
        &addr,
        "Unary",
        &[
            "-d",
            r#"{"u64": 18446744073709551615, "i64": -9223372036854775808}"#,
        ],
        false,
        "",
    );
    assert_eq!(
        out.answers,
        [json!({"i64": "-9223372036854775808", "u64": "18446744073709551615"})],
        "{}",
        out.stderr
    );
}

/// A method taking a `google.protobuf.Any` could not be called without `-d`: the default
/// request `{}` (an empty `Any` to protojson) was refused for want of an `"@type"`, and an empty
/// `Any` answer failed to print (exit code 13). It is an empty request now, with or without
/// `-d '{}'`, and the answer prints `{}`.
#[test]
fn an_empty_any_is_a_request() {
    let (_runtime, addr) = serve();
    for from_proto in [false, true] {
        for extra in [&[][..], &["-d", "{}"][..]] {
            let out = run(&addr, "Packed", extra, from_proto, "");
            assert_eq!(out.code, 0, "{extra:?}: {}", out.stderr);
            assert_eq!(out.answers, [json!({})], "{extra:?}");
        }
    }
}
