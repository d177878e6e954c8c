//! Every generated package carries `FILE_DESCRIPTOR_SET`: the encoded descriptors of its files
//! and everything they import, imports first, without source info.

mod support;

use prost::Message;
use std::path::Path;
use support::*;

/// The bytes of `FILE_DESCRIPTOR_SET` in a generated file.
fn descriptor_set(file: &syn::File) -> Vec<u8> {
    file.items
        .iter()
        .find_map(|item| match item {
            syn::Item::Const(item) if item.ident == "FILE_DESCRIPTOR_SET" => match &*item.expr {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::ByteStr(bytes),
                    ..
                }) => Some(bytes.value()),
                other => panic!("not a byte string: {}", compact(other)),
            },
            _ => None,
        })
        .expect("a FILE_DESCRIPTOR_SET const")
}

#[test]
fn a_package_carries_its_files_and_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let out = generate(&[root.join("grpc/testing/test.proto")], &[&root]).expect("generates");
    let bytes = descriptor_set(&out.parse("grpc.testing.rs"));
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decodes");
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert_eq!(names.last(), Some(&"grpc/testing/test.proto"), "{names:?}");
    for import in ["grpc/testing/empty.proto", "grpc/testing/messages.proto"] {
        let at = names.iter().position(|n| *n == import);
        assert!(at.is_some(), "{import} missing from {names:?}");
    }
    assert!(set.file.iter().all(|f| f.source_code_info.is_none()));
    assert!(set
        .file
        .iter()
        .any(|f| f.service.iter().any(|s| s.name() == "TestService")));
}

/// Custom options (extensions of `MethodOptions`, `ServiceOptions`), which `prost_types` cannot
/// hold, reach both the package's `FILE_DESCRIPTOR_SET` (what reflection serves) and the
/// `file_descriptor_set_path` file, as protoc's `-o` keeps them for tonic.
#[test]
fn custom_options_stay_in_the_descriptor_sets() {
    let protos = tempfile::tempdir().expect("temp dir");
    let opts = protos.path().join("opts.proto");
    std::fs::write(
        &opts,
        "syntax = \"proto3\"; package copt;\n\
         import \"google/protobuf/descriptor.proto\";\n\
         extend google.protobuf.MethodOptions { string scope = 50001; }\n\
         extend google.protobuf.ServiceOptions { string owner = 50002; }\n\
         message M { string s = 1; }\n\
         service Things {\n\
           option (owner) = \"team-zebra\";\n\
           rpc Get(M) returns (M) { option (scope) = \"admin-scope-xyz\"; }\n\
         }\n",
    )
    .expect("write");
    let out = tempfile::tempdir().expect("temp dir");
    let set_path = out.path().join("set.bin");
    sockrpc_build::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .file_descriptor_set_path(&set_path)
        .compile_protos(&[&opts], &[protos.path()])
        .expect("generates");
    let text = std::fs::read_to_string(out.path().join("copt.rs")).expect("generated");
    let embedded = descriptor_set(&syn::parse_file(&text).expect("parses"));
    let written = std::fs::read(&set_path).expect("the set is written");
    for (what, bytes) in [
        ("FILE_DESCRIPTOR_SET", &embedded),
        ("the written set", &written),
    ] {
        for option in [&b"admin-scope-xyz"[..], b"team-zebra"] {
            assert!(
                bytes.windows(option.len()).any(|w| w == option),
                "{what} lost the option {}",
                String::from_utf8_lossy(option)
            );
        }
        let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decodes");
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        assert_eq!(
            names,
            ["google/protobuf/descriptor.proto", "opts.proto"],
            "{what}"
        );
        let method = &set.file[1].service[0].method[0];
        assert!(method.options.is_some(), "{what}: {method:?}");
    }
    // The embedded set still carries no source info; the written one does, as protoc's -o.
    let embedded = prost_types::FileDescriptorSet::decode(embedded.as_slice()).expect("decodes");
    assert!(embedded.file.iter().all(|f| f.source_code_info.is_none()));
    let written = prost_types::FileDescriptorSet::decode(written.as_slice()).expect("decodes");
    assert!(written.file[1].source_code_info.is_some());
}

/// Two builds into one directory, the second reaching the first's package through
/// `extern_path`: the first's file keeps one `FILE_DESCRIPTOR_SET`, not two.
#[test]
fn a_second_build_into_the_same_directory_leaves_the_first_s_set_alone() {
    let protos = tempfile::tempdir().expect("temp dir");
    let common = protos.path().join("common.proto");
    let svc = protos.path().join("svc.proto");
    std::fs::write(
        &common,
        "syntax = \"proto3\"; package inc.common; message M { string s = 1; }",
    )
    .expect("write");
    std::fs::write(
        &svc,
        "syntax = \"proto3\"; package inc.svc; import \"common.proto\";\n\
         service S { rpc A(inc.common.M) returns (inc.common.M); }",
    )
    .expect("write");
    let out = tempfile::tempdir().expect("temp dir");
    let build = || {
        sockrpc_build::configure()
            .out_dir(out.path())
            .emit_rerun_if_changed(false)
    };
    build()
        .compile_protos(&[&common], &[protos.path()])
        .expect("first build");
    build()
        .extern_path(".inc.common", "crate::common")
        .compile_protos(&[&svc], &[protos.path()])
        .expect("second build");
    for file in ["inc.common.rs", "inc.svc.rs"] {
        let text = std::fs::read_to_string(out.path().join(file)).expect("generated");
        assert_eq!(
            text.matches("pub const FILE_DESCRIPTOR_SET").count(),
            1,
            "{file}"
        );
        syn::parse_file(&text).expect("parses");
    }
}

/// A file that is not there is named as missing, not as outside the include paths.
#[test]
fn a_missing_proto_is_reported_as_missing() {
    let protos = tempfile::tempdir().expect("temp dir");
    let missing = protos.path().join("nope.proto");
    let Err(err) = generate(&[&missing], &[protos.path()]) else {
        panic!("a missing file compiled");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(
        err.to_string().contains("nope.proto: no such file"),
        "{err}"
    );
}

/// A mistake in a .proto is reported with its file, line and column, as protoc does.
#[test]
fn a_proto_error_names_its_file_line_and_column() {
    let protos = tempfile::tempdir().expect("temp dir");
    let bad = protos.path().join("bad.proto");
    std::fs::write(
        &bad,
        "syntax = \"proto3\";\npackage p;\nmessage M { Missing m = 1; }\n",
    )
    .expect("write");
    let Err(err) = generate(&[&bad], &[protos.path()]) else {
        panic!("an unknown type compiled");
    };
    let text = err.to_string();
    assert!(text.starts_with("bad.proto:3:13: "), "{text}");
    assert!(text.contains("Missing"), "{text}");
}

/// The constant's own declaration, as text in the package (a string field's default), does
/// not pass for the constant: it is still appended.
#[test]
fn the_constant_is_appended_when_its_text_appears_in_the_package() {
    let protos = tempfile::tempdir().expect("temp dir");
    let file = protos.path().join("quoted.proto");
    std::fs::write(
        &file,
        "syntax = \"proto2\"; package quoted;\n\
         message M { optional string s = 1 [default = \"pub const FILE_DESCRIPTOR_SET: &[u8]\"]; }\n\
         service S { rpc A(M) returns (M); }\n",
    )
    .expect("write");
    let out = generate(&[&file], &[protos.path()]).expect("generates");
    let bytes = descriptor_set(&out.parse("quoted.rs"));
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decodes");
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["quoted.proto"]);
}
