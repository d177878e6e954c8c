//! `sockrpc call`, `list`, `describe` and `bench --call` against a proto2 service
//! (`tests/proto/sockrpc/p2/shop.proto`: required fields, defaults, groups, extensions, a closed
//! enum), served in this process by its generated server with reflection, with descriptors from
//! reflection and from `--proto`: JSON in and out follows proto2's presence (a field set to its
//! default is written, an absent one is not), groups and extensions are JSON fields like any
//! other, and an extension the server's prost types drop does not break the call. A `--proto`
//! file in protobuf editions is refused with an error that says so.

mod call_support;
mod support;

use call_support::call;
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use sockrpc::Code;
use sockrpc::{BoxStream, Request, Response, Server, Status, Streaming};
use sockrpc_reflection::pb::server_reflection_request::MessageRequest;
use sockrpc_reflection::pb::server_reflection_response::MessageResponse;
use sockrpc_reflection::pb::server_reflection_server::{ServerReflection, ServerReflectionServer};
use sockrpc_reflection::pb::{ErrorResponse, ServerReflectionRequest, ServerReflectionResponse};
use sockrpc_reflection::ReflectionExt;
use sockrpc_reflection::{DescriptorIndex, Reflection};
use std::sync::Arc;
use support::Value;

pub mod p2 {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.p2");
}

/// Extensions of `Order` in a file `shop.proto` does not import (`p2/addon.proto`).
pub mod addon {
    #![allow(missing_docs, unreachable_pub, dead_code, clippy::all)]
    sockrpc::include_proto!("sockrpc.p2.addon");
}

use p2::shop_server::{Shop, ShopServer};
use p2::{Order, Seen};

/// Answers the order, what a handler reads of it, its lines, or the orders merged.
struct Store;

impl Shop for Store {
    async fn place(&self, request: Request<Order>) -> Result<Response<Order>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    async fn inspect(&self, request: Request<Order>) -> Result<Response<Seen>, Status> {
        let order = request.into_inner();
        let nested = order.nested.clone().unwrap_or_default();
        Ok(Response::new(Seen {
            id: Some(order.id.clone()),
            quantity: Some(order.quantity),
            note: Some(order.note().to_owned()),
            priority: Some(order.priority()),
            color: Some(order.color() as i32),
            color_number: order.color,
            tag: Some(order.tag().to_vec()),
            days: order.shipping.as_ref().map(|s| s.days()),
            level: Some(nested.level() as i32),
            ..Seen::default()
        }))
    }

    type LinesStream = BoxStream<Order>;

    async fn lines(&self, request: Request<Order>) -> Result<Response<Self::LinesStream>, Status> {
        let order = request.into_inner();
        let lines: Vec<_> = order
            .line
            .into_iter()
            .map(|line| {
                Ok(Order {
                    id: order.id.clone(),
                    line: vec![line],
                    ..Order::default()
                })
            })
            .collect();
        Ok(Response::new(stream::iter(lines).boxed()))
    }

    async fn merge(&self, request: Request<Streaming<Order>>) -> Result<Response<Order>, Status> {
        let mut orders = request.into_inner();
        let mut merged = Order::default();
        while let Some(order) = orders.next().await {
            let order = order?;
            merged.id.push_str(&order.id);
            merged.quantity += order.quantity;
            merged.packed_counts.extend(order.packed_counts);
        }
        Ok(Response::new(merged))
    }
}

/// The shop with reflection on `127.0.0.1:0`, on a runtime of its own (the CLI runs as a child
/// process from the test's thread); `tcp://ADDR`.
fn serve() -> (tokio::runtime::Runtime, String) {
    serve_with(None)
}

/// [`serve`], with reflection that, given `older`, answers the extension requests
/// (`all_extension_numbers_of_type`, `file_containing_extension`) with that error code, as
/// servers from before them do.
fn serve_with(older: Option<Code>) -> (tokio::runtime::Runtime, String) {
    let sets = [p2::FILE_DESCRIPTOR_SET, addon::FILE_DESCRIPTOR_SET];
    let builder = Server::builder().add_service(ShopServer::new(Store));
    let builder = match older {
        None => builder.add_reflection(&sets),
        Some(code) => {
            let mut index = DescriptorIndex::new();
            for set in sets {
                index.add_encoded_set(set).expect("set");
            }
            builder.add_service(ServerReflectionServer::new(Older {
                reflection: Reflection::from_index(DescriptorIndex::new()),
                index: Arc::new(index),
                code,
            }))
        }
    };
    call_support::serve_on_runtime(builder)
}

fn shop_proto() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/proto/sockrpc/p2/shop.proto");
    path.to_str().expect("utf-8 path").to_owned()
}

/// `sockrpc ARGS` (with `--proto` for the shop if `from_proto`), which must succeed; each stdout
/// line as JSON.
fn ok(args: &[&str], from_proto: bool, stdin: &str) -> Vec<Value> {
    let proto = shop_proto();
    let mut all: Vec<&str> = args.to_vec();
    if from_proto {
        all.extend(["--proto", proto.as_str()]);
    }
    call_support::json_lines(&all, stdin)
}

#[test]
fn proto2_calls_from_reflection_and_from_proto() {
    let (_runtime, addr) = serve();
    for from_proto in [false, true] {
        // Only the required fields: the handler reads the declared defaults, and every field
        // of the answer it set comes back, defaults too.
        let seen = ok(
            &[
                "call",
                &addr,
                "sockrpc.p2.Shop/Inspect",
                "-d",
                r#"{"id": "o-1", "quantity": 2, "shipping": {"address": "here"}}"#,
            ],
            from_proto,
            "",
        );
        assert_eq!(
            seen,
            [json!({
                "id": "o-1",
                "quantity": 2,
                "note": "none given",
                "priority": -5,
                "color": "GREEN",
                "tag": "AXj/",
                "days": 3,
                "level": "HIGH",
            })],
            "from_proto={from_proto}"
        );

        // Every kind of field, extensions among them, echoed: the extensions are dropped by the
        // server's prost types, everything else comes back as sent.
        let order = json!({
            "id": "o-2",
            "quantity": -3,
            "note": "",
            "gift": false,
            "color": "BLUE",
            "tag": "AAE=",
            "packedCounts": [1, -1, 2147483647],
            "plainCounts": ["-9223372036854775808", "5"],
            "shipping": {"address": "there", "days": 0},
            "line": [{"sku": "a", "count": 4}, {}],
            "nested": {"level": "LOW", "delta": "-1", "levels": ["HIGH", "LOW"]},
            "scale": 0.5,
        });
        let mut with_extensions = order.clone();
        with_extensions["[sockrpc.p2.ext_comment]"] = json!("an extension");
        with_extensions["[sockrpc.p2.ext_numbers]"] = json!([7, 8]);
        let echoed = ok(
            &[
                "call",
                &addr,
                "sockrpc.p2.Shop/Place",
                "-d",
                &with_extensions.to_string(),
            ],
            from_proto,
            "",
        );
        assert_eq!(
            echoed,
            std::slice::from_ref(&order),
            "from_proto={from_proto}"
        );

        // A server stream of the repeated group, and a client stream merged.
        let lines = ok(
            &[
                "call",
                &addr,
                "sockrpc.p2.Shop/Lines",
                "-d",
                &order.to_string(),
            ],
            from_proto,
            "",
        );
        assert_eq!(
            lines,
            [
                json!({"id": "o-2", "quantity": 0, "line": [{"sku": "a", "count": 4}]}),
                json!({"id": "o-2", "quantity": 0, "line": [{}]}),
            ]
        );
        let merged = ok(
            &["call", &addr, "sockrpc.p2.Shop/Merge"],
            from_proto,
            "{\"id\": \"a\", \"quantity\": 1, \"packedCounts\": [1]}\n\
             {\"id\": \"b\", \"quantity\": 2, \"packedCounts\": [2, 3]}\n",
        );
        assert_eq!(
            merged,
            [json!({"id": "ab", "quantity": 3, "packedCounts": [1, 2, 3]})]
        );
    }
}

#[test]
fn proto2_list_and_describe() {
    let (_runtime, addr) = serve();
    for from_proto in [false, true] {
        let proto = shop_proto();
        let with = |args: &[&str]| {
            let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            if from_proto {
                all.extend(["--proto".to_owned(), proto.clone()]);
            }
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let (code, stdout, stderr) = call(&all, "");
            assert_eq!(code, 0, "{all:?} failed: {stderr}");
            stdout
        };
        let listed = with(&["list", &addr]);
        assert!(listed.contains("sockrpc.p2.Shop"), "{listed}");
        let order = with(&["describe", &addr, "sockrpc.p2.Order"]);
        for line in [
            "required string id = 1;",
            "optional string note = 3 [default = \"none given\"];",
            "optional int32 priority = 4 [default = -5];",
            "optional .sockrpc.p2.Color color = 7 [default = GREEN];",
            "optional bytes tag = 8 [default = \"\\001x\\377\"];",
            "optional float scale = 18 [default = -0.125];",
            "optional group Shipping = 11 {",
            "required string address = 12;",
            "repeated group Line = 14 {",
            "repeated int32 packed_counts = 9 [packed = true];",
            "extensions 100 to 199;",
        ] {
            assert!(
                order.contains(line),
                "from_proto={from_proto}: {line}\n{order}"
            );
        }
        let file = if from_proto {
            "shop.proto"
        } else {
            "sockrpc/p2/shop.proto"
        };
        let file = with(&["describe", &addr, file]);
        for line in ["syntax = \"proto2\";", "rpc Place", "extend"] {
            assert!(
                file.contains(line),
                "from_proto={from_proto}: {line}\n{file}"
            );
        }
    }
}

/// A `--proto` file in protobuf editions: refused before any call with an input error (exit 64)
/// that names editions, the file and the statement, not protox's parse error at `edition`.
#[test]
fn an_editions_proto_is_refused_by_name() {
    let (_runtime, addr) = serve();
    let dir = support::temp_path("editions");
    std::fs::create_dir_all(&dir).expect("dir");
    let proto = dir.join("ed.proto");
    std::fs::write(
        &proto,
        "edition = \"2023\";\npackage ed;\noption features.field_presence = EXPLICIT;\n\
         message E { int32 x = 1 [features.message_encoding = DELIMITED]; }\n\
         service S { rpc M(E) returns (E); }\n",
    )
    .expect("ed.proto");
    let proto = proto.to_str().expect("utf-8 path").to_owned();
    for args in [
        vec!["call", &addr, "ed.S/M", "-d", "{}", "--proto", &proto],
        vec!["describe", &addr, "ed.E", "--proto", &proto],
    ] {
        let (code, stdout, stderr) = call(&args, "");
        assert_eq!(code, 64, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("protobuf editions are not supported"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("ed.proto:1:1: `edition = \"2023\";`"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// v1 reflection over `index` that answers the extension requests with `code`.
#[derive(Clone)]
struct Older {
    reflection: Reflection,
    index: Arc<DescriptorIndex>,
    code: Code,
}

impl ServerReflection for Older {
    type ServerReflectionInfoStream = BoxStream<ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        let this = self.clone();
        let mut sent = sockrpc_reflection::SentFiles::default();
        let answers = request.into_inner().map(move |request| {
            let request = request?;
            let extension = matches!(
                request.message_request,
                Some(
                    MessageRequest::AllExtensionNumbersOfType(_)
                        | MessageRequest::FileContainingExtension(_)
                )
            );
            if !extension {
                return Ok(this.reflection.answer(&this.index, request, &mut sent));
            }
            Ok(ServerReflectionResponse {
                valid_host: String::new(),
                original_request: Some(request),
                message_response: Some(MessageResponse::ErrorResponse(ErrorResponse {
                    error_code: this.code as i32,
                    error_message: "not supported here".to_owned(),
                })),
            })
        });
        Ok(Response::new(answers.boxed()))
    }
}

/// An order naming the extensions `addon.proto` declares, a file `shop.proto` does not import.
fn order_with_addon() -> String {
    json!({
        "id": "o-4",
        "quantity": 1,
        "[sockrpc.p2.addon.addon_note]": "leave at the door",
        "[sockrpc.p2.addon.wrapping]": {"paper": "red", "ribbon": true},
        "[sockrpc.p2.ext_comment]": "same file",
    })
    .to_string()
}

/// Through reflection, JSON may name an extension of the request type declared in a file the
/// service's file does not import: the CLI asks for the type's extensions and their files (as
/// grpcurl does) and encodes it, where before it refused the field as unknown (exit 64).
#[test]
fn reflection_fetches_extensions_declared_in_other_files() {
    let (_runtime, addr) = serve();
    let order = order_with_addon();
    for method in ["sockrpc.p2.Shop/Place", "sockrpc.p2.Shop/Inspect"] {
        let args = ["call", addr.as_str(), method, "-d", order.as_str()];
        let (code, stdout, stderr) = call(&args, "");
        assert_eq!(code, 0, "{method}: {stderr}");
        assert!(stdout.contains("\"o-4\""), "{method}: {stdout}");
    }
    // The server's prost types drop the extensions; the rest comes back.
    let echoed = ok(
        &["call", &addr, "sockrpc.p2.Shop/Place", "-d", &order],
        false,
        "",
    );
    assert_eq!(echoed, [json!({"id": "o-4", "quantity": 1})]);
}

/// A server whose reflection answers the extension requests NOT_FOUND or UNIMPLEMENTED (older
/// servers) still serves calls: only the extensions of other files stay unknown, refused as an
/// unknown field before any call.
#[test]
fn a_server_without_extension_requests_still_serves_calls() {
    for older in [Code::NotFound, Code::Unimplemented] {
        let (_runtime, addr) = serve_with(Some(older));
        let echoed = ok(
            &[
                "call",
                &addr,
                "sockrpc.p2.Shop/Place",
                "-d",
                r#"{"id": "o-5", "quantity": 2, "[sockrpc.p2.ext_comment]": "x"}"#,
            ],
            false,
            "",
        );
        assert_eq!(echoed, [json!({"id": "o-5", "quantity": 2})], "{older:?}");
        let order = order_with_addon();
        let args = ["call", addr.as_str(), "sockrpc.p2.Shop/Place", "-d", &order];
        let (code, stdout, stderr) = call(&args, "");
        assert_eq!(code, 64, "{older:?}: {stdout}");
        assert!(stderr.contains("addon"), "{older:?}: {stderr}");
    }
}

/// `tests/proto` and `addon.proto` in it, which imports `sockrpc/p2/shop.proto` from there.
fn addon_proto() -> (String, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/proto");
    let addon = root.join("sockrpc/p2/addon.proto");
    let text = |path: &std::path::Path| path.to_str().expect("utf-8 path").to_owned();
    (text(&root), text(&addon))
}

/// `describe` of a message extended in a file its own does not import: through reflection the
/// extensions are fetched (as `call` fetches them) and written after the message as `extend`
/// blocks, each naming where it is declared; a server without the extension requests still
/// describes it. With `--proto`, the extensions of the files given are written.
#[test]
fn describe_writes_the_extensions_declared_in_other_files() {
    let addon_block = [
        "// Declared in sockrpc.p2.addon (sockrpc/p2/addon.proto):\nextend .sockrpc.p2.Order {",
        "  optional string addon_note = 150;\n  optional .sockrpc.p2.addon.Wrapping wrapping = 151;",
    ];
    let own_block =
        "// Declared in sockrpc.p2 (sockrpc/p2/shop.proto):\nextend .sockrpc.p2.Order {";
    let (_runtime, addr) = serve();
    let (root, addon) = addon_proto();
    let shop = shop_proto();
    let runs: [(&[&str], bool); 3] = [
        (&[], true),
        (&["--proto", &addon, "--import-path", &root], true),
        (&["--proto", &shop], false),
    ];
    for (extra, has_addon) in runs {
        let mut args = vec!["describe", addr.as_str(), "sockrpc.p2.Order"];
        args.extend(extra);
        let (code, described, stderr) = call(&args, "");
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(described.starts_with("sockrpc.p2.Order is a message:\nmessage Order {"));
        for block in addon_block {
            assert_eq!(
                described.contains(block),
                has_addon,
                "{args:?}:\n{described}"
            );
        }
        // Given alone, shop.proto is named from its own directory.
        let own = if has_addon {
            own_block.to_owned()
        } else {
            own_block.replace("sockrpc/p2/shop.proto", "shop.proto")
        };
        assert!(described.contains(&own), "{args:?}:\n{described}");
    }
    for older in [Code::NotFound, Code::Unimplemented] {
        let (_runtime, addr) = serve_with(Some(older));
        let args = ["describe", addr.as_str(), "sockrpc.p2.Order"];
        let (code, described, stderr) = call(&args, "");
        assert_eq!(code, 0, "{older:?}: {stderr}");
        assert!(described.contains(own_block), "{older:?}:\n{described}");
        assert!(!described.contains("addon_note"), "{older:?}:\n{described}");
    }
}

/// `bench --call` and `call` with JSON naming extensions declared in a file the service's file
/// does not import: through reflection (`bench` refused the field as unknown before it fetched
/// them as `call` does) and with that file among the `--proto` files, the calls succeed;
/// without it, the error names the extension and says to give its file.
#[test]
fn bench_and_call_find_extensions_through_reflection_or_the_files_given() {
    let (_runtime, addr) = serve();
    let (root, addon) = addon_proto();
    let shop = shop_proto();
    let order = order_with_addon();
    let bench = |extra: &[&str], name: &str| {
        let json = support::temp_path(name);
        let json_text = json.to_str().expect("utf-8 path").to_owned();
        let mut args = vec![
            "bench",
            "--call",
            "sockrpc.p2.Shop/Place",
            "-d",
            order.as_str(),
            "--target",
            addr.as_str(),
            "--calls",
            "20",
            "--warmup",
            "0",
            "--concurrency",
            "1",
            "--json",
            json_text.as_str(),
        ];
        args.extend(extra);
        let (code, _, stderr) = call(&args, "");
        (code, stderr, json)
    };
    for (extra, name) in [
        (&[][..], "ext-reflect.json"),
        (
            &["--proto", &addon, "--import-path", &root][..],
            "ext-proto.json",
        ),
    ] {
        let (code, stderr, json) = bench(extra, name);
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        let report = support::read_json(&json);
        assert_eq!(report["rows"][0]["calls"], 20, "{report:#}");
        assert_eq!(report["rows"][0]["errors"], 0, "{report:#}");
        let mut args = vec!["call", addr.as_str(), "sockrpc.p2.Shop/Place", "-d", &order];
        args.extend(extra);
        let echoed = ok(&args, false, "");
        assert_eq!(echoed, [json!({"id": "o-4", "quantity": 1})], "{extra:?}");
    }
    let (code, stderr, _) = bench(&["--proto", &shop], "ext-missing.json");
    let call_args = [
        "call",
        addr.as_str(),
        "sockrpc.p2.Shop/Place",
        "-d",
        &order,
        "--proto",
        &shop,
    ];
    let (call_code, _, call_stderr) = call(&call_args, "");
    // bench exits 1 on any failure, call 64 on bad input.
    for (code, want, stderr) in [(code, 1, stderr), (call_code, 64, call_stderr)] {
        assert_eq!(code, want, "{stderr}");
        assert!(
            stderr.contains(
                "[sockrpc.p2.addon.addon_note] is not a known extension of sockrpc.p2.Order"
            ) && stderr.contains("--proto"),
            "{stderr}"
        );
    }
}
