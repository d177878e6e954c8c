//! Awkward names, comments and types in a small inline proto.

mod support;

use std::fs;

use support::*;

const ODD: &str = r#"
syntax = "proto3";
package odd.names;

import "google/protobuf/empty.proto";
import "google/protobuf/timestamp.proto";
import "other.proto";

message Msg {}

// The `Type` service: see [docs], List<String> and http://example.com/x.
//
//     let indented = "code";
//     assert!(false);
//
// ```rust
// panic!("fenced");
// ```
service Type {
  // Connects. Collides with the client's own `connect`.
  rpc Connect(Msg) returns (Msg);
  rpc New(Msg) returns (Msg);
  rpc Clone(Msg) returns (Msg);
  rpc Type(Msg) returns (Msg);
  rpc Self(Msg) returns (Msg);
  rpc Async(Msg) returns (Msg);
  rpc Await(Msg) returns (Msg);
  rpc Match(Msg) returns (Msg);
  rpc IntoInner(Msg) returns (Msg);
  rpc HTTPGet(google.protobuf.Empty) returns (google.protobuf.Timestamp);
  rpc Imported(other.pkg.Remote) returns (Msg); // Trailing comment.
  rpc Watch(Msg) returns (stream Msg);
  rpc Upload(stream Msg) returns (Msg);
  rpc Chat(stream Msg) returns (stream Msg);
}

service Self {
  rpc Super(Msg) returns (Msg);
  rpc Chat(stream Msg) returns (stream Msg);
}

service T {
  rpc Get(Msg) returns (Msg);
}

// Names of std and runtime items: the generated code must not be confused
// by a trait or message shadowing them.
message Result {}
message Option {}
service Status { rpc Get(Result) returns (Option); }
service Future {
  rpc Poll(Msg) returns (Msg);
  rpc FromText(Msg) returns (Msg);
  rpc ToUpper(Msg) returns (Msg);
  rpc AsRef(Msg) returns (Msg);
  rpc Next(Msg) returns (Msg);
  rpc Default(Msg) returns (Msg);
  rpc Drop(Msg) returns (Msg);
}
service Clone { rpc Call(Msg) returns (Msg); }
service Send { rpc PollReady(Msg) returns (Msg); }
service Service { rpc Request(Msg) returns (Msg); }
service OnlyStreams { rpc Up(stream Msg) returns (Msg); }

// Streaming rpcs with awkward names, and runtime names as messages and
// services: associated stream types must stay valid and distinct.
message Streaming {}
service Streams {
  rpc Type(Msg) returns (stream Msg);
  rpc Self(stream Msg) returns (stream Msg);
  rpc Connect(stream Msg) returns (Msg);
  rpc Async(stream Msg) returns (stream Msg);
  rpc Status(Result) returns (stream Option);
  rpc Stream(Msg) returns (stream Streaming);
  rpc StreamStream(Msg) returns (stream Msg);
  rpc Streaming(stream Streaming) returns (stream Streaming);
  rpc Unary(Msg) returns (Msg);
}
service Stream { rpc Watch(Msg) returns (stream Streaming); }
service Body { rpc Chat(stream Msg) returns (stream Msg); }
"#;

const OTHER: &str = r#"
syntax = "proto3";
package other.pkg;
message Remote {}
"#;

fn write(dir: &std::path::Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).expect("write proto");
}

#[test]
fn awkward_names_compile_to_valid_identifiers() {
    let src = tempfile::tempdir().expect("temp dir");
    write(src.path(), "odd.proto", ODD);
    write(src.path(), "other.proto", OTHER);
    let out = generate(&[src.path().join("odd.proto")], &[src.path()]).expect("generates");
    let file = out.parse("odd.names.rs");
    let source = out.source("odd.names.rs");

    let client = module(&file.items, "type_client");
    let fns = inherent_fns(client, "TypeClient");
    let rpcs = [
        "connect_rpc",
        "new_rpc",
        "clone_rpc",
        "r#type",
        "self_",
        "r#async",
        "r#await",
        "r#match",
        "into_inner_rpc",
        "http_get",
        "imported",
        "watch",
        "upload",
        "chat",
    ];
    let mut expected = vec![
        "connect",
        "new",
        "with_interceptor",
        "send_compressed",
        "accept_compressed",
        "compression_min_size",
        "max_decoding_message_size",
        "max_encoding_message_size",
        "into_inner",
        "get_ref",
        "get_mut",
    ];
    expected.extend(rpcs);
    assert_eq!(fns, expected);

    let server = module(&file.items, "type_server");
    let service = find_trait(server, "Type");
    assert_eq!(trait_fns(service), rpcs);

    assert_eq!(trait_types(service), ["WatchStream", "ChatStream"]);
    for (rpc, handler) in [
        ("Watch", "server_streaming_handler"),
        ("Upload", "client_streaming_handler"),
        ("Chat", "streaming_handler"),
        ("Connect", "unary_handler"),
    ] {
        assert_eq!(dispatch_handler(server, rpc), handler, "{rpc}");
    }

    // Wire names stay the proto names.
    assert!(source.contains("\"/odd.names.Type/Connect\""));
    assert!(source.contains("\"Self\" =>"));
    assert!(source.contains("const NAME: &'static str = \"odd.names.Self\";"));

    // Well-known types come from the runtime; Empty is `()`.
    assert!(source.contains("IntoRequest<()>"), "Empty maps to ()");
    assert!(source.contains("Response<::sockrpc::codegen::prost_types::Timestamp>"));
    assert!(source.contains("Request<super::super::super::other::pkg::Remote>"));

    // `service Self` and `service T`.
    // tonic's names, built on prost-build's `Self_`.
    let self_server = module(&file.items, "self__server");
    let self_trait = find_trait(self_server, "Self_");
    assert_eq!(trait_fns(self_trait), ["super_", "chat"]);
    assert_eq!(trait_types(self_trait), ["ChatStream"]);
    assert_eq!(
        inherent_fns(module(&file.items, "self__client"), "Self_Client"),
        [
            "connect",
            "new",
            "with_interceptor",
            "send_compressed",
            "accept_compressed",
            "compression_min_size",
            "max_decoding_message_size",
            "max_encoding_message_size",
            "into_inner",
            "get_ref",
            "get_mut",
            "super_",
            "chat"
        ]
    );
    let t_server = module(&file.items, "t_server");
    find_trait(t_server, "T");
    assert!(
        source.contains("impl<Svc: T>"),
        "generic renamed away from the trait name"
    );

    let future = find_trait(module(&file.items, "future_server"), "Future");
    assert_eq!(
        trait_fns(future),
        [
            "poll",
            "from_text",
            "to_upper",
            "as_ref",
            "next",
            "default",
            "drop"
        ]
    );
    let only_streams = find_trait(module(&file.items, "only_streams_server"), "OnlyStreams");
    assert_eq!(trait_fns(only_streams), ["up"]);
    assert!(
        trait_types(only_streams).is_empty(),
        "client streaming only"
    );
    assert_eq!(
        inherent_fns(
            module(&file.items, "only_streams_client"),
            "OnlyStreamsClient"
        ),
        [
            "connect",
            "new",
            "with_interceptor",
            "send_compressed",
            "accept_compressed",
            "compression_min_size",
            "max_decoding_message_size",
            "max_encoding_message_size",
            "into_inner",
            "get_ref",
            "get_mut",
            "up"
        ]
    );
}

#[test]
fn streaming_rpcs_with_awkward_names() {
    let src = tempfile::tempdir().expect("temp dir");
    write(src.path(), "odd.proto", ODD);
    write(src.path(), "other.proto", OTHER);
    let out = generate(&[src.path().join("odd.proto")], &[src.path()]).expect("generates");
    let file = out.parse("odd.names.rs");
    let source = out.source("odd.names.rs");

    let server = module(&file.items, "streams_server");
    let service = find_trait(server, "Streams");
    let rpcs = [
        "r#type",
        "self_",
        "connect_rpc",
        "r#async",
        "status",
        "stream",
        "stream_stream",
        "streaming",
        "unary",
    ];
    assert_eq!(trait_fns(service), rpcs);
    // UpperCamel + `Stream`: never a keyword, never needs `r#` or `_`, and
    // `Stream` / `StreamStream` stay distinct.
    assert_eq!(
        trait_types(service),
        [
            "TypeStream",
            "SelfStream",
            "AsyncStream",
            "StatusStream",
            "StreamStream",
            "StreamStreamStream",
            "StreamingStream",
        ]
    );
    let client = module(&file.items, "streams_client");
    let mut expected = vec![
        "connect",
        "new",
        "with_interceptor",
        "send_compressed",
        "accept_compressed",
        "compression_min_size",
        "max_decoding_message_size",
        "max_encoding_message_size",
        "into_inner",
        "get_ref",
        "get_mut",
    ];
    expected.extend(rpcs);
    assert_eq!(inherent_fns(client, "StreamsClient"), expected);

    // `(rpc, trait request, trait response, client parameter, client response)`,
    // with messages named like std and runtime items.
    let shapes = [
        (
            "r#type",
            "Request<super::Msg>",
            "Response<Self::TypeStream>",
            "impl IntoRequest<super::Msg>",
            "Response<Streaming<super::Msg>>",
        ),
        (
            "self_",
            "Request<Streaming<super::Msg>>",
            "Response<Self::SelfStream>",
            "impl IntoStreamingRequest<Message = super::Msg>",
            "Response<Streaming<super::Msg>>",
        ),
        (
            "connect_rpc",
            "Request<Streaming<super::Msg>>",
            "Response<super::Msg>",
            "impl IntoStreamingRequest<Message = super::Msg>",
            "Response<super::Msg>",
        ),
        (
            "status",
            "Request<super::Result>",
            "Response<Self::StatusStream>",
            "impl IntoRequest<super::Result>",
            "Response<Streaming<super::Option>>",
        ),
        (
            "streaming",
            "Request<Streaming<super::Streaming>>",
            "Response<Self::StreamingStream>",
            "impl IntoStreamingRequest<Message = super::Streaming>",
            "Response<Streaming<super::Streaming>>",
        ),
    ];
    for (name, request, response, param, client_response) in shapes {
        let (p, r) = param_and_return(&trait_fn(service, name).sig);
        assert_eq!(p, expand(request), "{name}");
        assert_eq!(
            r,
            expand(&format!(
                "impl Future<Output = Result<{response}, Status>> + Send"
            )),
            "{name}"
        );
        let (p, r) = param_and_return(&inherent_fn(client, "StreamsClient", name).sig);
        assert_eq!(p, expand(param), "{name}");
        assert_eq!(
            r,
            expand(&format!("Result<{client_response}, Status>")),
            "{name}"
        );
    }
    assert_eq!(
        trait_type_bounds(service, "StatusStream"),
        expand("Stream<Item = Result<super::Option, Status>> + Send + 'static")
    );
    assert_eq!(
        support::docs(&trait_type(service, "SelfStream").attrs),
        " Server streaming response type for the Self method."
    );
    for (rpc, handler) in [
        ("Type", "server_streaming_handler"),
        ("Self", "streaming_handler"),
        ("Connect", "client_streaming_handler"),
        ("Streaming", "streaming_handler"),
        ("Unary", "unary_handler"),
    ] {
        assert_eq!(dispatch_handler(server, rpc), handler, "{rpc}");
    }
    assert!(source.contains("\"/odd.names.Streams/Self\""));

    // Services named after the runtime's `Stream` and `Body`.
    let stream = find_trait(module(&file.items, "stream_server"), "Stream");
    assert_eq!(trait_types(stream), ["WatchStream"]);
    assert_eq!(
        trait_type_bounds(stream, "WatchStream"),
        expand("Stream<Item = Result<super::Streaming, Status>> + Send + 'static")
    );
    let body = find_trait(module(&file.items, "body_server"), "Body");
    assert_eq!(trait_types(body), ["ChatStream"]);
    assert!(service_impl(module(&file.items, "body_server"))
        .contains("typeResponse=::sockrpc::codegen::Response<::sockrpc::codegen::Body>;"));
}

#[test]
fn comments_become_safe_docs() {
    let src = tempfile::tempdir().expect("temp dir");
    write(src.path(), "odd.proto", ODD);
    write(src.path(), "other.proto", OTHER);
    let out = generate(&[src.path().join("odd.proto")], &[src.path()]).expect("generates");
    let file = out.parse("odd.names.rs");

    let server = module(&file.items, "type_server");
    let service = find_trait(server, "Type");
    let docs = support::docs(&service.attrs);
    let expected = [
        " The `Type` service: see \\[docs\\], List\\<String> and <http://example.com/x>.",
        "",
        " ```text",
        " let indented = \"code\";",
        " assert!(false);",
        " ```",
        "",
        " ```text",
        " panic!(\"fenced\");",
        " ```",
    ]
    .join("\n");
    assert_eq!(docs, expected);
    assert_eq!(
        trait_fn_docs(service, "connect_rpc"),
        " Connects. Collides with the client's own `connect`."
    );
    assert_eq!(trait_fn_docs(service, "imported"), " Trailing comment.");
    let client = module(&file.items, "type_client");
    assert_eq!(struct_docs(client, "TypeClient"), expected);
}

#[test]
fn no_package_and_client_or_server_only() {
    let src = tempfile::tempdir().expect("temp dir");
    write(
        src.path(),
        "bare.proto",
        "syntax = \"proto3\"; message M {} service Echo { rpc Echo(M) returns (M); }",
    );
    let out = generate(&[src.path().join("bare.proto")], &[src.path()]).expect("generates");
    let source = out.source("_.rs");
    assert!(source.contains("\"/Echo/Echo\""));
    assert!(source.contains("const NAME: &'static str = \"Echo\";"));

    let dir = tempfile::tempdir().expect("temp dir");
    sockrpc_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .build_server(false)
        .compile_protos(&[src.path().join("bare.proto")], &[src.path()])
        .expect("generates");
    let source = fs::read_to_string(dir.path().join("_.rs")).expect("read");
    assert!(source.contains("pub mod echo_client") && !source.contains("pub mod echo_server"));
}

#[test]
fn builder_options_reach_prost() {
    let src = tempfile::tempdir().expect("temp dir");
    write(
        src.path(),
        "opts.proto",
        "syntax = \"proto3\"; package opts; message M { bytes data = 1; } enum E { E_ZERO = 0; }",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    sockrpc_build::configure()
        .out_dir(dir.path())
        .emit_rerun_if_changed(false)
        .type_attribute(".opts", "#[doc(alias = \"typeattr\")]")
        .message_attribute(".opts.M", "#[doc(alias = \"msgattr\")]")
        .enum_attribute(".opts.E", "#[doc(alias = \"enumattr\")]")
        .field_attribute(".opts.M.data", "#[doc(alias = \"fieldattr\")]")
        .bytes(["."])
        .compile_protos(&[src.path().join("opts.proto")], &[src.path()])
        .expect("generates");
    let source = fs::read_to_string(dir.path().join("opts.rs")).expect("read");
    for needle in [
        "typeattr",
        "msgattr",
        "enumattr",
        "fieldattr",
        "::prost::bytes::Bytes",
    ] {
        assert!(source.contains(needle), "{needle} missing:\n{source}");
    }
}

#[test]
fn errors_are_returned_not_panicked() {
    let src = tempfile::tempdir().expect("temp dir");
    write(src.path(), "bad.proto", "syntax = \"proto3\"; message {");
    let err = generate(&[src.path().join("bad.proto")], &[src.path()])
        .err()
        .expect("fails");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    write(
        src.path(),
        "missing.proto",
        "syntax = \"proto3\"; import \"nope.proto\";",
    );
    assert!(generate(&[src.path().join("missing.proto")], &[src.path()]).is_err());

    assert!(generate(&[src.path().join("absent.proto")], &[src.path()]).is_err());

    // Semantic errors, with rerun-if-changed on: the error path lists the
    // files read so far and must not trip over the half-built descriptor pool.
    write(
        src.path(),
        "ok.proto",
        "syntax = \"proto3\"; package ok; message Fine {}",
    );
    write(
        src.path(),
        "undefined.proto",
        "syntax = \"proto3\"; import \"ok.proto\"; message M { Undefined x = 1; }",
    );
    let err = sockrpc_build::configure()
        .out_dir(src.path())
        .compile_protos(&[src.path().join("undefined.proto")], &[src.path()])
        .expect_err("fails");
    assert!(err.to_string().contains("Undefined"), "{err}");

    write(
        src.path(),
        "clash.proto",
        "syntax = \"proto3\"; package c; message M {} \
         service S { rpc Connect(M) returns (M); rpc ConnectRpc(M) returns (M); }",
    );
    let err = generate(&[src.path().join("clash.proto")], &[src.path()])
        .err()
        .expect("fails");
    let msg = err.to_string();
    assert!(
        msg.contains("Connect") && msg.contains("ConnectRpc") && msg.contains("connect_rpc"),
        "{msg}"
    );

    // Distinct method names (`a1`, `a_1`), and distinct associated types: tonic's are the proto
    // names plus `Stream`, so no two rpcs of a service can share one.
    write(
        src.path(),
        "stream_clash.proto",
        "syntax = \"proto3\"; package c; message M {} \
         service S { rpc A1(M) returns (stream M); rpc A_1(stream M) returns (stream M); }",
    );
    let out = generate(&[src.path().join("stream_clash.proto")], &[src.path()]).expect("generates");
    let file = out.parse("c.rs");
    let service = find_trait(module(&file.items, "s_server"), "S");
    assert_eq!(trait_fns(service), ["a1", "a_1"]);
    assert_eq!(trait_types(service), ["A1Stream", "A_1Stream"]);
    // Only one of them streams its response: no associated type clash.
    write(
        src.path(),
        "no_clash.proto",
        "syntax = \"proto3\"; package c; message M {} \
         service S { rpc A1(M) returns (stream M); rpc A_1(stream M) returns (M); }",
    );
    let out = generate(&[src.path().join("no_clash.proto")], &[src.path()]).expect("generates");
    let file = out.parse("c.rs");
    let service = find_trait(module(&file.items, "s_server"), "S");
    assert_eq!(trait_fns(service), ["a1", "a_1"]);
    assert_eq!(trait_types(service), ["A1Stream"]);
}

#[test]
fn types_whose_rust_names_collide_fail_the_build_naming_both() {
    // Two types to protox, one `pub struct M` (and one `pub enum KindOneOf`) to rustc.
    let src = tempfile::tempdir().expect("temp dir");
    write(
        src.path(),
        "case.proto",
        "syntax = \"proto3\"; package p.q; message M {} message m {} \
         message Shape { enum Kind { K = 0; } enum KindOneOf { L = 0; } oneof kind { int32 x = 1; } }",
    );
    let err = generate(&[src.path().join("case.proto")], &[src.path()])
        .err()
        .expect("fails");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("`p.q.M`") && msg.contains("`p.q.m`") && msg.contains("`p::q::M`"),
        "{msg}"
    );
    // prost-build names the oneof's enum `KindOneOf`, as a nested `Kind` exists.
    assert!(msg.contains("`p::q::shape::KindOneOf`"), "{msg}");
}
