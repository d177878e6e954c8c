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

#[test]
fn test_service_client_has_unary_methods_only() {
    let Some(out) = generate_all() else { return };
    let file = out.parse("grpc.testing.rs");
    let client = module(&file.items, "test_service_client");
    let fns = inherent_fns(client, "TestServiceClient");
    for name in [
        "connect",
        "new",
        "into_inner",
        "empty_call",
        "unary_call",
        "cacheable_unary_call",
        "unimplemented_call",
    ] {
        assert!(
            fns.iter().any(|f| f == name),
            "client lacks {name}: {fns:?}"
        );
    }
    for streaming in [
        "streaming_output_call",
        "streaming_input_call",
        "full_duplex_call",
        "half_duplex_call",
    ] {
        assert!(
            !fns.iter().any(|f| f == streaming),
            "client has {streaming}"
        );
    }
    let docs = struct_docs(client, "TestServiceClient");
    assert!(
        docs.contains("A simple service to test the various types of RPCs"),
        "{docs}"
    );

    let source = out.source("grpc.testing.rs");
    assert!(source.contains("\"/grpc.testing.TestService/UnaryCall\""));
    assert!(source.contains("\"/grpc.testing.TestService/EmptyCall\""));
    assert!(!source.contains("/grpc.testing.TestService/FullDuplexCall"));
    assert!(source.contains("/// One request followed by one response."));
}

#[test]
fn test_service_server_trait() {
    let Some(out) = generate_all() else { return };
    let file = out.parse("grpc.testing.rs");
    let server = module(&file.items, "test_service_server");
    let service = find_trait(server, "TestService");
    let fns = trait_fns(service);
    assert_eq!(
        fns,
        [
            "empty_call",
            "unary_call",
            "cacheable_unary_call",
            "unimplemented_call"
        ]
    );
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

    let source = out.source("grpc.testing.rs");
    assert!(source.contains("const NAME: &'static str = \"grpc.testing.TestService\";"));
    // Local messages are reached from the generated module through `super`.
    assert!(
        source.contains("::sockrpc::codegen::Request<super::SimpleRequest>"),
        "request type path"
    );
    assert!(!source.contains("\"StreamingOutputCall\" =>"));
}

#[test]
fn other_services() {
    let Some(out) = generate_all() else { return };

    let health = out.parse("grpc.health.v1.rs");
    let fns = inherent_fns(module(&health.items, "health_client"), "HealthClient");
    assert!(fns.iter().any(|f| f == "check"));
    assert!(
        !fns.iter().any(|f| f == "watch"),
        "server-streaming Watch must be skipped"
    );

    // Only bidi streaming: the modules still exist and parse, with no rpcs.
    let reflection = out.parse("grpc.reflection.v1.rs");
    let server = module(&reflection.items, "server_reflection_server");
    assert!(trait_fns(find_trait(server, "ServerReflection")).is_empty());
    assert!(has_module(&reflection.items, "server_reflection_client"));

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
