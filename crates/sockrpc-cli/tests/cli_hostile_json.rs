//! `sockrpc call` prints a server's strings in its JSON answers with DEL and the C1 controls
//! escaped (`\u009b`), as serde_json escapes the C0 ones: an 8-bit CSI (U+009B) written raw as
//! UTF-8 drives a terminal that reads C1 controls (xterm does), so a hostile server's answer
//! could recolour or clear the user's screen. The JSON is the same to a parser. The server here
//! echoes what it is sent (`Wrap/Pack`), so the test chooses the string.

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
