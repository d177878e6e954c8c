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
