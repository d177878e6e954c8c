//! `sockrpc call` with `google.protobuf.Any` values of a type the method's files do not declare
//! (`tests/proto/sockrpc/wrap/`: `cargo.proto` is registered with reflection but not imported by
//! `wrap.proto`). The CLI asks reflection for the type when the JSON needs it, as grpcurl does:
//! an answer packing one is printed (it exited 13, a stream's later messages lost), and a
//! request naming one with `"@type"` is sent (it exited 64).

mod call_support;
mod support;

use call_support::{call, json_lines, serve_on_runtime};
use futures_util::stream::{self, StreamExt};
use prost::Message;
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

const URL: &str = "type.googleapis.com/sockrpc.cargo.Crate";

struct Packer;

impl Wrap for Packer {
    async fn pack(&self, request: Request<Packed>) -> Result<Response<Packed>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    type MakeStream = BoxStream<Packed>;

    async fn make(&self, request: Request<Order>) -> Result<Response<Self::MakeStream>, Status> {
        let packed = (1..=request.into_inner().count).map(|n| {
            let made = cargo::Crate {
                label: format!("crate {n}"),
                weight: i64::from(n) * 1000,
            };
            Ok(Packed {
                item: Some(sockrpc::codegen::prost_types::Any {
                    type_url: URL.to_owned(),
                    value: made.encode_to_vec(),
                }),
                items: Vec::new(),
            })
        });
        Ok(Response::new(
            stream::iter(packed.collect::<Vec<_>>()).boxed(),
        ))
    }
}

/// The service with reflection over both files on `127.0.0.1:0`, on a runtime of its own;
/// `tcp://ADDR`.
fn serve() -> (tokio::runtime::Runtime, String) {
    serve_on_runtime(
        Server::builder()
            .add_service(WrapServer::new(Packer))
            .add_reflection(&[wrap::FILE_DESCRIPTOR_SET, cargo::FILE_DESCRIPTOR_SET]),
    )
}

#[test]
fn an_answer_packing_a_type_from_another_file_is_printed() {
    let (_runtime, addr) = serve();
    let args = [
        "call",
        &addr,
        "sockrpc.wrap.Wrap/Make",
        "-d",
        r#"{"count": 2}"#,
    ];
    let got = json_lines(&args, "");
    assert_eq!(
        got,
        [
            json!({"item": {"@type": URL, "label": "crate 1", "weight": "1000"}}),
            json!({"item": {"@type": URL, "label": "crate 2", "weight": "2000"}}),
        ]
    );
}

#[test]
fn a_request_naming_a_type_from_another_file_is_sent() {
    let (_runtime, addr) = serve();
    let request = json!({
        "item": {"@type": URL, "label": "sent", "weight": "7"},
        "items": [{"@type": URL, "label": "also"}],
    });
    let got = json_lines(
        &[
            "call",
            &addr,
            "sockrpc.wrap.Wrap/Pack",
            "-d",
            &request.to_string(),
        ],
        "",
    );
    assert_eq!(got, [request]);
    // A type nobody describes is still the input error it was, naming it.
    let (code, _, stderr) = call(
        &[
            "call",
            &addr,
            "sockrpc.wrap.Wrap/Pack",
            "-d",
            r#"{"item": {"@type": "type.googleapis.com/no.Such"}}"#,
        ],
        "",
    );
    assert_eq!(code, 64, "{stderr}");
    assert!(stderr.contains("no.Such"), "{stderr}");
}
