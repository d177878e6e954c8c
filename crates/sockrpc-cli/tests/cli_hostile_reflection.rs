//! A hostile reflection server's names and comments, as `sockrpc list` and `describe` print them.
//!
//! protoc never writes a name with a control character in it, but a server sends whatever
//! descriptors it likes: here a file built by hand, whose service name holds a terminal escape
//! (OSC: retitle the window), a bell and a newline followed by a fake line, and another file
//! whose comments hold a screen clear, a carriage return and an 8-bit CSI. Printed raw they
//! drove the user's terminal and faked lines of output. `list` prints each name escaped on one
//! line; `describe` escapes every control character but its own newlines; a descriptor with a
//! control character in a name is refused, `INTERNAL`, naming it escaped, as any malformed
//! descriptor is (it would also have gone into a call's path).

mod call_support;
mod support;

use call_support::{call, serve_on_runtime};
use prost::Message as _;
use sockrpc::codegen::prost_types::field_descriptor_proto::{Label, Type};
use sockrpc::codegen::prost_types::source_code_info::Location;
use sockrpc::codegen::prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, ServiceDescriptorProto, SourceCodeInfo,
};
use sockrpc::Server;
use sockrpc_reflection::ReflectionExt;

/// The hostile service's name: an OSC retitling the terminal, ended by BEL, then a fake line.
const EVIL: &str = "Svc\u{1b}]0;owned\u{7}\nsockrpc: all good";
/// How `list` must print its full name.
const EVIL_ESCAPED: &str = "evil.Svc\\u{1b}]0;owned\\u{7}\\nsockrpc: all good";

/// A file of `package` with one empty message `Req` and one service `service`, whose method
/// `Do` takes and answers `Req`.
fn file(name: &str, package: &str, service: &str) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(name.to_owned()),
        package: Some(package.to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("Req".to_owned()),
            ..Default::default()
        }],
        service: vec![ServiceDescriptorProto {
            name: Some(service.to_owned()),
            method: vec![MethodDescriptorProto {
                name: Some("Do".to_owned()),
                input_type: Some(format!(".{package}.Req")),
                output_type: Some(format!(".{package}.Req")),
                ..Default::default()
            }],
            ..Default::default()
        }],
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    }
}

/// A comment location at `path`.
fn comment(path: Vec<i32>, leading: &str, trailing: Option<&str>) -> Location {
    Location {
        path,
        span: vec![0, 0, 0],
        leading_comments: Some(leading.to_owned()),
        trailing_comments: trailing.map(str::to_owned),
        leading_detached_comments: vec!["detached\u{1b}[8m hidden\n".to_owned()],
    }
}

/// Reflection over the hostile files, on `127.0.0.1:0`.
fn serve() -> (tokio::runtime::Runtime, String) {
    let mut quiet = file("quiet.proto", "quiet", "Quiet");
    quiet.source_code_info = Some(SourceCodeInfo {
        location: vec![
            // The service, its method, the message.
            comment(vec![6, 0], " clear\u{1b}[2J\rsockrpc: fake\n", None),
            comment(
                vec![6, 0, 2, 0],
                " bell\u{7}\n",
                Some(" csi \u{9b}31m red\n"),
            ),
            comment(vec![4, 0], "block\u{1b}[1A up", None),
        ],
    });
    let set = FileDescriptorSet {
        file: vec![file("evil.proto", "evil", EVIL), quiet, windows(), held()],
    }
    .encode_to_vec();
    serve_on_runtime(Server::builder().add_reflection(&[&set]))
}

/// A file whose comments end their lines in CR LF, as protoc keeps them from a `.proto` file
/// written on Windows (its line comments end at the LF only): one message `Msg`, no service.
fn windows() -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("windows.proto".to_owned()),
        package: Some("windows".to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("Msg".to_owned()),
            ..Default::default()
        }],
        source_code_info: Some(SourceCodeInfo {
            location: vec![Location {
                path: vec![4, 0],
                span: vec![0, 0, 0],
                leading_comments: Some(" Première ligne.\r\n 二行目。\r\n".to_owned()),
                trailing_comments: None,
                leading_detached_comments: vec![],
            }],
        }),
        syntax: Some("proto3".to_owned()),
        ..Default::default()
    }
}

/// A proto2 file whose message `Held` holds a server's text outside names and comments: a
/// reserved name and a bytes field's default (which protoc writes C-escaped), each with a
/// newline and a fake line, and a screen clear.
fn held() -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some("held.proto".to_owned()),
        package: Some("held".to_owned()),
        message_type: vec![DescriptorProto {
            name: Some("Held".to_owned()),
            field: vec![FieldDescriptorProto {
                name: Some("b".to_owned()),
                number: Some(1),
                label: Some(Label::Optional as i32),
                r#type: Some(Type::Bytes as i32),
                default_value: Some("x\u{1b}[2J\nsockrpc: fake default".to_owned()),
                ..Default::default()
            }],
            reserved_name: vec!["y\u{1b}[2J\nsockrpc: fake reserved".to_owned()],
            ..Default::default()
        }],
        syntax: Some("proto2".to_owned()),
        ..Default::default()
    }
}

/// Whether `text` holds a control character other than the newline.
fn drives_a_terminal(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn list_prints_each_hostile_name_escaped_on_one_line() {
    let (_runtime, addr) = serve();
    let (code, stdout, stderr) = call(&["list", &addr], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !drives_a_terminal(&stdout),
        "raw control characters: {stdout:?}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        EVIL_ESCAPED,
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "quiet.Quiet",
    ];
    assert_eq!(lines, expected, "{stdout:?}");
}

#[test]
fn describe_escapes_hostile_comments() {
    let (_runtime, addr) = serve();
    for symbol in ["quiet.Quiet", "quiet.Req", "quiet.proto"] {
        let (code, stdout, stderr) = call(&["describe", &addr, symbol], "");
        assert_eq!(code, 0, "{symbol}: {stderr}");
        assert!(
            !drives_a_terminal(&stdout),
            "{symbol}: raw control characters: {stdout:?}"
        );
        assert!(
            !stdout.lines().any(|l| l.starts_with("sockrpc: fake")),
            "{symbol}: a faked line: {stdout:?}"
        );
        eprintln!("{symbol}:\n{stdout}");
    }
    let (_, stdout, _) = call(&["describe", &addr, "quiet.Quiet"], "");
    for escaped in ["\\u{1b}[2J\\rsockrpc: fake", "\\u{7}", "\\u{9b}31m"] {
        assert!(stdout.contains(escaped), "no {escaped:?} in {stdout:?}");
    }
}

#[test]
fn a_name_with_control_characters_is_refused_escaped() {
    let (_runtime, addr) = serve();
    let full = format!("evil.{EVIL}");
    let method = format!("{full}/Do");
    for args in [
        vec!["describe", &addr, &full],
        vec!["list", &addr, &full],
        vec!["describe", &addr, "evil.proto"],
        vec!["call", &addr, &method, "-d", "{}"],
    ] {
        let (code, stdout, stderr) = call(&args, "");
        assert_eq!(code, 13, "{args:?}: {stdout:?} {stderr:?}");
        assert!(stdout.is_empty(), "{args:?} printed {stdout:?}");
        assert!(!drives_a_terminal(&stderr), "{args:?}: {stderr:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(
            stderr.contains("control character") && stderr.contains("\\u{1b}]0;owned"),
            "{args:?}: {stderr:?}"
        );
    }
}

/// A legitimate comment is printed as it was written: its non-ASCII text as it is, and the CR
/// of its CR LF line ends (a `.proto` file written on Windows, compiled by protoc) not written
/// as a visible `\r` at the end of every line; only a CR that would return to the start of a
/// line and overwrite it is escaped.
#[test]
fn describe_prints_a_comment_with_windows_line_ends_as_written() {
    let (_runtime, addr) = serve();
    let (code, stdout, stderr) = call(&["describe", &addr, "windows.Msg"], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("// Première ligne.\n// 二行目。\nmessage Msg {"),
        "{stdout:?}"
    );
    assert!(!stdout.contains('\\'), "an escape in {stdout:?}");
    assert!(!drives_a_terminal(&stdout), "{stdout:?}");
}

/// A reserved name and a bytes default are a server's text too: printed with their control
/// characters escaped inside their string literals, so that neither clears the screen nor fakes
/// a line of output.
#[test]
fn describe_escapes_a_hostile_reserved_name_and_bytes_default() {
    let (_runtime, addr) = serve();
    for symbol in ["held.Held", "held.proto"] {
        let (code, stdout, stderr) = call(&["describe", &addr, symbol], "");
        assert_eq!(code, 0, "{symbol}: {stderr}");
        assert!(
            !drives_a_terminal(&stdout),
            "{symbol}: raw control characters: {stdout:?}"
        );
        assert!(
            !stdout.lines().any(|l| l.starts_with("sockrpc: fake")),
            "{symbol}: a faked line: {stdout:?}"
        );
        for escaped in [
            "\"x\\033[2J\\nsockrpc: fake default\"",
            "\"y\\033[2J\\nsockrpc: fake reserved\"",
        ] {
            assert!(
                stdout.contains(escaped),
                "{symbol}: no {escaped:?} in {stdout:?}"
            );
        }
    }
}
