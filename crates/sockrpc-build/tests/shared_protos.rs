//! Runs the generator over the real-world protos in `/work/shared/protos`
//! (gRPC and OpenTelemetry), which are what users will feed it.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn shared_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/protos");
    if root.is_dir() {
        Some(root)
    } else {
        eprintln!("skipping: {} does not exist", root.display());
        None
    }
}

fn protos_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read proto dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            protos_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

fn generate_all() -> Option<Output> {
    let root = shared_root()?;
    let mut protos = Vec::new();
    protos_under(&root, &mut protos);
    protos.sort();
    assert!(
        protos.len() >= 20,
        "expected the shared protos, found {}",
        protos.len()
    );
    Some(generate(&protos, &[&root]).expect("generation succeeds"))
}

#[test]
fn every_generated_file_parses() {
    let Some(out) = generate_all() else { return };
    let files = out.files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    for expected in [
        "_includes.rs",
        "grpc.testing.rs",
        "grpc.core.rs",
        "grpc.health.v1.rs",
        "grpc.reflection.v1.rs",
        "helloworld.rs",
        "opentelemetry.proto.collector.trace.v1.rs",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read");
        assert!(!source.trim().is_empty(), "{} is empty", file.display());
        if let Err(e) = syn::parse_file(&source) {
            panic!("{} does not parse: {e}", file.display());
        }
    }
    // Well-known types come from the runtime, never generated locally.
    assert!(
        !names.iter().any(|n| n.starts_with("google.protobuf")),
        "{names:?}"
    );
}

/// `(rpc, client parameter, client return type, Client method)` for the
/// TestService rpcs, in `expand` shorthand.
const TEST_SERVICE_CLIENT: &[(&str, &str, &str, &str)] = &[
    (
        "empty_call",
        "impl IntoRequest<super::Empty>",
        "Result<Response<super::Empty>, Status>",
        "unary",
    ),
    (
        "unary_call",
        "impl IntoRequest<super::SimpleRequest>",
        "Result<Response<super::SimpleResponse>, Status>",
        "unary",
    ),
    (
        "cacheable_unary_call",
        "impl IntoRequest<super::SimpleRequest>",
        "Result<Response<super::SimpleResponse>, Status>",
        "unary",
    ),
    (
        "streaming_output_call",
        "impl IntoRequest<super::StreamingOutputCallRequest>",
        "Result<Response<Streaming<super::StreamingOutputCallResponse>>, Status>",
        "server_streaming",
    ),
    (
        "streaming_input_call",
        "impl IntoStreamingRequest<Message = super::StreamingInputCallRequest>",
        "Result<Response<super::StreamingInputCallResponse>, Status>",
        "client_streaming",
    ),
    (
        "full_duplex_call",
        "impl IntoStreamingRequest<Message = super::StreamingOutputCallRequest>",
        "Result<Response<Streaming<super::StreamingOutputCallResponse>>, Status>",
        "streaming",
    ),
    (
        "half_duplex_call",
        "impl IntoStreamingRequest<Message = super::StreamingOutputCallRequest>",
        "Result<Response<Streaming<super::StreamingOutputCallResponse>>, Status>",
        "streaming",
    ),
    (
        "unimplemented_call",
        "impl IntoRequest<super::Empty>",
        "Result<Response<super::Empty>, Status>",
        "unary",
    ),
];

#[test]
fn test_service_client_has_all_four_shapes() {
    let Some(out) = generate_all() else { return };
    let file = out.parse("grpc.testing.rs");
    let client = module(&file.items, "test_service_client");
    let fns = inherent_fns(client, "TestServiceClient");
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
    expected.extend(TEST_SERVICE_CLIENT.iter().map(|m| m.0));
    assert_eq!(fns, expected);

    for &(name, param, ret, call) in TEST_SERVICE_CLIENT {
        let f = inherent_fn(client, "TestServiceClient", name);
        assert!(f.sig.asyncness.is_some(), "{name} is async");
        let (p, r) = param_and_return(&f.sig);
        assert_eq!(p, expand(param), "{name} parameter");
        assert_eq!(r, expand(ret), "{name} return type");
        let body = compact(&f.block);
        assert!(
            body.starts_with(&format!("{{self.inner.{call}(")),
            "{name} calls Client::{call}: {body}"
        );
        let proto_name = heck_camel(name);
        assert!(
            body.contains(&format!("\"/grpc.testing.TestService/{proto_name}\"")),
            "{name} path: {body}"
        );
        let into = if param.contains("IntoStreamingRequest") {
            "::sockrpc::codegen::IntoStreamingRequest::into_streaming_request(request)"
        } else {
            "::into_request(request)"
        };
        assert!(body.contains(into), "{name}: {body}");
    }

    let docs = struct_docs(client, "TestServiceClient");
    assert!(
        docs.contains("A simple service to test the various types of RPCs"),
        "{docs}"
    );
    let docs = support::docs(&inherent_fn(client, "TestServiceClient", "full_duplex_call").attrs);
    assert!(
        docs.contains("each request served by the server immediately"),
        "{docs}"
    );
    let source = out.source("grpc.testing.rs");
    assert!(source.contains("/// One request followed by one response."));
}

/// `unary_call` → `UnaryCall`: the proto names of the TestService rpcs.
fn heck_camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn test_service_server_trait() {
    let Some(out) = generate_all() else { return };
    let file = out.parse("grpc.testing.rs");
    let server = module(&file.items, "test_service_server");
    let service = find_trait(server, "TestService");
    assert_eq!(
        trait_fns(service),
        TEST_SERVICE_CLIENT.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    assert_eq!(
        trait_types(service),
        [
            "StreamingOutputCallStream",
            "FullDuplexCallStream",
            "HalfDuplexCallStream"
        ]
    );
    for ty in trait_types(service) {
        assert_eq!(
            trait_type_bounds(service, &ty),
            expand(
                "Stream<Item = Result<super::StreamingOutputCallResponse, Status>> + Send + 'static"
            ),
            "{ty}"
        );
        let docs = support::docs(&trait_type(service, &ty).attrs);
        let rpc = ty.trim_end_matches("Stream");
        assert_eq!(
            docs,
            format!(" Server streaming response type for the {rpc} method.")
        );
    }
    // `(rpc, request, response, handler)`.
    let shapes = [
        (
            "unary_call",
            "Request<super::SimpleRequest>",
            "Response<super::SimpleResponse>",
            "unary_handler",
        ),
        (
            "streaming_output_call",
            "Request<super::StreamingOutputCallRequest>",
            "Response<Self::StreamingOutputCallStream>",
            "server_streaming_handler",
        ),
        (
            "streaming_input_call",
            "Request<Streaming<super::StreamingInputCallRequest>>",
            "Response<super::StreamingInputCallResponse>",
            "client_streaming_handler",
        ),
        (
            "full_duplex_call",
            "Request<Streaming<super::StreamingOutputCallRequest>>",
            "Response<Self::FullDuplexCallStream>",
            "streaming_handler",
        ),
        (
            "half_duplex_call",
            "Request<Streaming<super::StreamingOutputCallRequest>>",
            "Response<Self::HalfDuplexCallStream>",
            "streaming_handler",
        ),
    ];
    let source = out.source("grpc.testing.rs");
    for (name, request, response, handler) in shapes {
        let f = trait_fn(service, name);
        assert!(f.sig.asyncness.is_none() && f.default.is_none(), "{name}");
        let (p, r) = param_and_return(&f.sig);
        assert_eq!(p, expand(request), "{name} request");
        assert_eq!(
            r,
            expand(&format!(
                "impl Future<Output = Result<{response}, Status>> + Send"
            )),
            "{name} return type"
        );
        assert_eq!(
            dispatch_handler(server, &heck_camel(name)),
            handler,
            "{name}"
        );
        // The closure's parameter is typed like the trait method's.
        assert!(
            service_impl(server).contains(&format!(
                "move|request:{}|asyncmove{{<TasTestService>::{name}(&*inner,request).await}}",
                expand(request)
            )),
            "{name} dispatch closure"
        );
    }

    assert!(support::docs(&service.attrs).contains("performance with various types of payload."));
    let doc = trait_fn_docs(service, "empty_call");
    assert_eq!(
        doc.trim(),
        "One empty request followed by one empty response."
    );
    let doc = trait_fn_docs(service, "cacheable_unary_call");
    assert!(
        doc.contains("headers set such that a caching HTTP proxy"),
        "{doc}"
    );

    assert!(source.contains("const NAME: &'static str = \"grpc.testing.TestService\";"));
    // The service layer's body type is `Body`, never raw `Bytes`.
    assert!(service_impl(server)
        .contains("typeResponse=::sockrpc::codegen::Response<::sockrpc::codegen::Body>;"));
    assert!(!source.contains("codegen::Bytes"));
}

#[test]
fn other_services() {
    let Some(out) = generate_all() else { return };

    let health = out.parse("grpc.health.v1.rs");
    let fns = inherent_fns(module(&health.items, "health_client"), "HealthClient");
    assert!(fns.iter().any(|f| f == "check"));
    let watch = inherent_fn(
        module(&health.items, "health_client"),
        "HealthClient",
        "watch",
    );
    assert_eq!(
        param_and_return(&watch.sig),
        (
            expand("impl IntoRequest<super::HealthCheckRequest>"),
            expand("Result<Response<Streaming<super::HealthCheckResponse>>, Status>")
        )
    );
    let health_trait = find_trait(module(&health.items, "health_server"), "Health");
    assert_eq!(trait_types(health_trait), ["WatchStream"]);
    assert_eq!(
        dispatch_handler(module(&health.items, "health_server"), "Watch"),
        "server_streaming_handler"
    );

    // Only bidi streaming.
    let reflection = out.parse("grpc.reflection.v1.rs");
    let server = module(&reflection.items, "server_reflection_server");
    let reflection_trait = find_trait(server, "ServerReflection");
    assert_eq!(trait_fns(reflection_trait), ["server_reflection_info"]);
    assert_eq!(
        trait_types(reflection_trait),
        ["ServerReflectionInfoStream"]
    );
    assert_eq!(
        trait_type_bounds(reflection_trait, "ServerReflectionInfoStream"),
        expand("Stream<Item = Result<super::ServerReflectionResponse, Status>> + Send + 'static")
    );
    let client = module(&reflection.items, "server_reflection_client");
    let info = inherent_fn(client, "ServerReflectionClient", "server_reflection_info");
    assert_eq!(
        param_and_return(&info.sig),
        (
            expand("impl IntoStreamingRequest<Message = super::ServerReflectionRequest>"),
            expand("Result<Response<Streaming<super::ServerReflectionResponse>>, Status>")
        )
    );

    let hello = out.parse("helloworld.rs");
    let fns = inherent_fns(module(&hello.items, "greeter_client"), "GreeterClient");
    assert!(fns.iter().any(|f| f == "say_hello"));
    assert!(out
        .source("helloworld.rs")
        .contains("\"/helloworld.Greeter/SayHello\""));

    let otel = out.parse("opentelemetry.proto.collector.trace.v1.rs");
    let fns = inherent_fns(
        module(&otel.items, "trace_service_client"),
        "TraceServiceClient",
    );
    assert!(fns.iter().any(|f| f == "export"));

    // grpc.testing imports grpc.core types: the path climbs out of testing.
    let testing = out.source("grpc.testing.rs");
    assert!(testing.contains("super::core::Stats"), "cross-package path");
}

/// The real protos' comments (`<package>.<service>` in reflection, `rejected_<signal>` in
/// OpenTelemetry's collectors) reach the docs with no HTML for rustdoc to report.
#[test]
fn no_html_reaches_the_docs() {
    let Some(out) = generate_all() else { return };
    let mut docs = 0;
    for file in out.files() {
        let source = std::fs::read_to_string(&file).expect("read generated file");
        for doc in doc_blocks(&source) {
            let html = html_in(&doc);
            assert!(
                html.is_empty(),
                "{}: HTML {html:?} in:\n{doc}",
                file.display()
            );
            docs += 1;
        }
    }
    assert!(docs > 500, "only {docs} doc comments found");
}
