//! `sockrpc call` prints a server's strings in its JSON answers with DEL and the C1 controls
//! escaped (`\u009b`), as serde_json escapes the C0 ones: an 8-bit CSI (U+009B) written raw as
//! UTF-8 drives a terminal that reads C1 controls (xterm does), so a hostile server's answer
//! could recolour or clear the user's screen. The JSON is the same to a parser. The server here
//! echoes what it is sent (`Wrap/Pack`), so the test chooses the string.
//!
//! An answer of `Any`s packed in `Any`s, 80,000 deep, is refused as nested too deep: writing it
//! recursed once a level, and the CLI died of a stack overflow.

mod call_support;
mod support;

use call_support::{call, serve_on_runtime};
use serde_json::json;
use sockrpc::{BoxStream, Request, Response, Server, Status};
use sockrpc_reflection::ReflectionExt;

pub mod wrap {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.wrap");
}

pub mod cargo {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.cargo");
}

use wrap::wrap_server::{Wrap, WrapServer};
use wrap::{Order, Packed};

/// Echoes `Pack`; `Make` is not called here.
struct Echo;

impl Wrap for Echo {
    async fn pack(&self, request: Request<Packed>) -> Result<Response<Packed>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type MakeStream = BoxStream<Packed>;

    async fn make(&self, _: Request<Order>) -> Result<Response<Self::MakeStream>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[test]
fn c1_controls_in_an_answers_strings_are_escaped() {
    let (_runtime, addr) = serve_on_runtime(
        Server::builder()
            .add_service(WrapServer::new(Echo))
            .add_reflection(&[wrap::FILE_DESCRIPTOR_SET, cargo::FILE_DESCRIPTOR_SET]),
    );
    let label = "csi \u{9b}2J del \u{7f} esc \u{1b} é";
    let request = json!({
        "item": {"@type": "type.googleapis.com/sockrpc.cargo.Crate", "label": label},
    });
    let args = [
        "call",
        &addr,
        "sockrpc.wrap.Wrap/Pack",
        "-d",
        &request.to_string(),
    ];
    let (code, stdout, stderr) = call(&args, "");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "raw control characters: {stdout:?}"
    );
    assert!(
        stdout.contains("\\u009b2J del \\u007f esc \\u001b é"),
        "{stdout:?}"
    );
    let answer: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(answer, request, "the same JSON to a parser");
}

/// Answers `Pack` with an `Any` holding an `Any`, `LEVELS` deep (an empty `Crate` innermost).
struct Deep;

const LEVELS: usize = 80_000;

impl Wrap for Deep {
    async fn pack(&self, _: Request<Packed>) -> Result<Response<Packed>, Status> {
        use sockrpc::codegen::prost_types::Any;
        const ANY: &[u8] = b"type.googleapis.com/google.protobuf.Any";
        let varint = |mut v: usize, out: &mut Vec<u8>| {
            let mut bytes = Vec::new();
            while v >= 0x80 {
                bytes.push((v as u8) | 0x80);
                v >>= 7;
            }
            bytes.push(v as u8);
            out.extend(bytes.iter().rev());
        };
        // An `Any`'s encoding, written backwards (each level's header after what it holds) and
        // turned round once: no level's bytes are copied again (about 45 bytes a level, 3.6 MB
        // in all, under the 4 MiB message limit).
        let mut reversed: Vec<u8> = Vec::new();
        for level in 0..LEVELS - 1 {
            let url: &[u8] = if level == 0 {
                b"type.googleapis.com/sockrpc.cargo.Crate"
            } else {
                ANY
            };
            varint(reversed.len(), &mut reversed);
            reversed.push(0x12);
            reversed.extend(url.iter().rev());
            varint(url.len(), &mut reversed);
            reversed.push(0x0a);
        }
        reversed.reverse();
        let any = Any {
            type_url: String::from_utf8_lossy(ANY).into_owned(),
            value: reversed,
        };
        Ok(Response::new(Packed {
            item: Some(any),
            items: Vec::new(),
        }))
    }

    type MakeStream = BoxStream<Packed>;

    async fn make(&self, _: Request<Order>) -> Result<Response<Self::MakeStream>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

#[test]
fn anys_packed_too_deep_in_an_answer_are_refused_not_a_crash() {
    let (_runtime, addr) = serve_on_runtime(
        Server::builder()
            .add_service(WrapServer::new(Deep))
            .add_reflection(&[wrap::FILE_DESCRIPTOR_SET, cargo::FILE_DESCRIPTOR_SET]),
    );
    // `call` asserts an exit code, not a signal (SIGABRT, the stack overflow, without the bound).
    let (code, stdout, stderr) = call(&["call", &addr, "sockrpc.wrap.Wrap/Pack"], "");
    assert_ne!(code, 0, "{stdout}");
    assert!(stderr.contains("nested deeper than 100"), "{stderr}");
}
