//! tonic-build's `btree_map`, `boxed`, `codec_path`, `file_descriptor_set_path` and
//! `compile_fds`, its one-path and by-name forms, and the descriptor constant left out, read
//! back from the generated source (`tests/codegen_gaps/codec.rs` and `tonic_style.rs` serve
//! them).

use prost::Message;

const PROTO: &str = r#"
syntax = "proto3";
package topts;
import "google/protobuf/empty.proto";
// A tree.
message Tree { Tree child = 1; map<string, uint32> counts = 2; Leaf leaf = 3; }
message Leaf { string name = 1; }
service Grower { rpc Grow(Tree) returns (google.protobuf.Empty); }
"#;

fn compile(
    builder: impl FnOnce(sockrpc_build::Builder) -> sockrpc_build::Builder,
) -> (tempfile::TempDir, String) {
    let protos = tempfile::tempdir().expect("temp dir");
    let proto = protos.path().join("topts.proto");
    std::fs::write(&proto, PROTO).expect("write");
    builder(
        sockrpc_build::configure()
            .out_dir(protos.path())
            .emit_rerun_if_changed(false),
    )
    .compile_protos(&[&proto], &[protos.path()])
    .expect("generates");
    let source = std::fs::read_to_string(protos.path().join("topts.rs")).expect("generated");
    (protos, source)
}

#[test]
fn maps_and_boxes_reach_prost() {
    let (_dir, source) = compile(|b| b);
    assert!(source.contains("HashMap<"), "{source}");
    // prost boxes the recursive `child` by itself; `leaf` only when asked.
    assert!(!source.contains("::prost::alloc::boxed::Box<Leaf>"));
    let (_dir, source) = compile(|b| b.btree_map(["."]).boxed(".topts.Tree.leaf"));
    assert!(source.contains("BTreeMap<"), "{source}");
    assert!(
        source.contains("::prost::alloc::boxed::Box<Leaf>"),
        "{source}"
    );
}

#[test]
fn the_codec_is_the_one_named() {
    let (_dir, source) = compile(|b| b);
    assert_eq!(source.matches("::sockrpc::codegen::ProstCodec").count(), 2);
    let (_dir, source) = compile(|b| b.codec_path("crate::MyCodec"));
    assert!(!source.contains("ProstCodec"));
    assert_eq!(
        source
            .matches("<crate::MyCodec as ::core::default::Default>::default()")
            .count(),
        2,
        "client and server: {source}"
    );
}

#[test]
fn the_descriptor_set_is_written_and_generates_the_same_code() {
    let set_dir = tempfile::tempdir().expect("temp dir");
    let set_path = set_dir.path().join("set.bin");
    let (_dir, source) = compile(|b| b.file_descriptor_set_path(&set_path));
    let bytes = std::fs::read(&set_path).expect("the set is written");
    let set = prost_types::FileDescriptorSet::decode(bytes.as_slice()).expect("decodes");
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    // Imports first, with source info (comments), as protoc's -o with both flags.
    assert_eq!(names, ["google/protobuf/empty.proto", "topts.proto"]);
    assert!(set.file[1].source_code_info.is_some());

    let out = tempfile::tempdir().expect("temp dir");
    sockrpc_build::configure()
        .out_dir(out.path())
        .emit_rerun_if_changed(false)
        .compile_fds(set)
        .expect("generates from the set");
    let again = std::fs::read_to_string(out.path().join("topts.rs")).expect("generated");
    assert_eq!(again, source);
}

#[test]
fn a_descriptor_set_of_editions_is_refused() {
    let set = prost_types::FileDescriptorSet {
        file: vec![prost_types::FileDescriptorProto {
            name: Some("ed.proto".to_owned()),
            syntax: Some("editions".to_owned()),
            ..Default::default()
        }],
    };
    let out = tempfile::tempdir().expect("temp dir");
    let err = sockrpc_build::configure()
        .out_dir(out.path())
        .compile_fds(set)
        .expect_err("editions");
    assert!(
        err.to_string().starts_with("ed.proto: protobuf editions"),
        "{err}"
    );
}

#[test]
fn attributes_given_by_the_services_name_alone_reach_it() {
    // tonic-build's `attrs` example names the service without its package.
    let (_dir, source) = compile(|b| {
        b.server_attribute("Grower", "#[doc = \"by name: server\"]")
            .client_attribute("Grower", "#[doc = \"by name: client\"]")
            .trait_attribute("Grower", "#[doc = \"by name: trait\"]")
            .server_attribute("rower", "#[doc = \"not at a boundary\"]")
    });
    for (attribute, item) in [
        ("by name: server", "pub struct GrowerServer"),
        ("by name: client", "pub struct GrowerClient"),
        ("by name: trait", "pub trait Grower"),
    ] {
        let at = source
            .find(attribute)
            .unwrap_or_else(|| panic!("{attribute}: {source}"));
        let next = source[at..].find("pub ").map(|i| &source[at + i..]);
        assert!(
            next.is_some_and(|rest| rest.starts_with(item)),
            "{attribute} is not on {item}: {source}"
        );
    }
    assert!(!source.contains("not at a boundary"));
}

#[test]
fn one_path_is_taken_where_prost_build_takes_a_list() {
    let (_dir, source) = compile(|b| b.btree_map(".").disable_comments("."));
    assert!(source.contains("BTreeMap<"), "{source}");
    assert!(!source.contains("A tree."), "{source}");
}

#[test]
fn the_descriptor_set_constant_can_be_left_out() {
    let declared = "pub const FILE_DESCRIPTOR_SET: &[u8]";
    let (_dir, source) = compile(|b| b);
    assert!(source.contains(declared));
    let (_dir, source) = compile(|b| b.file_descriptor_set_const(false));
    assert!(!source.contains(declared), "{source}");
    assert!(source.contains("pub struct GrowerServer"));
}

#[test]
fn build_transport_and_emit_package_change_what_they_do_in_tonic() {
    let (_dir, source) = compile(|b| b);
    assert!(source.contains("pub async fn connect"));
    assert!(source.contains("\"/topts.Grower/Grow\""), "{source}");
    assert!(
        source.contains("const NAME: &'static str = \"topts.Grower\""),
        "{source}"
    );
    let (_dir, source) = compile(|b| b.build_transport(false).emit_package(false));
    assert!(!source.contains("pub async fn connect"), "{source}");
    assert!(source.contains("\"/Grower/Grow\""), "{source}");
    assert!(!source.contains("\"/topts.Grower/Grow\""), "{source}");
    assert!(
        source.contains("const NAME: &'static str = \"Grower\""),
        "{source}"
    );
}

#[test]
fn protoc_args_are_taken_only_when_nothing_needs_doing() {
    let (_dir, source) = compile(|b| b.protoc_arg("--experimental_allow_proto3_optional"));
    assert!(source.contains("pub struct GrowerServer"));
    let protos = tempfile::tempdir().expect("temp dir");
    let proto = protos.path().join("topts.proto");
    std::fs::write(&proto, PROTO).expect("write");
    let err = sockrpc_build::configure()
        .out_dir(protos.path())
        .emit_rerun_if_changed(false)
        .protoc_arg("--include_source_info")
        .compile_protos(&[&proto], &[protos.path()])
        .expect_err("a flag nothing carries out");
    assert!(
        err.to_string()
            .starts_with("protoc_arg(\"--include_source_info\")"),
        "{err}"
    );
}
