//! `sockrpc describe` through reflection writes custom options (values of extensions of the
//! `*Options` messages, as `google.api.http` on an rpc is) as it does from `--proto` files.
//!
//! The CLI used to decode each file reflection sent into `prost_types`, which drops unknown
//! fields, and with them every custom option's value, before building its pool: a service
//! annotated for HTTP transcoding was described without its annotations. The server here serves
//! reflection over the descriptors of `tests/proto/sockrpc/describe/` (custom options on every
//! kind of element), encoded by protox as `sockrpc-build` encodes its `FILE_DESCRIPTOR_SET`;
//! each file is described through reflection and from `--proto`, and every line naming a custom
//! option that the second writes must be in the first.

mod call_support;
mod support;

use call_support::call;
use sockrpc::Server;
use sockrpc_reflection::ReflectionExt;
use std::path::PathBuf;

/// The files described: proto2 and proto3, with custom options of every options message.
const FILES: [&str; 2] = [
    "sockrpc/describe/everything2.proto",
    "sockrpc/describe/everything3.proto",
];

/// The repository's `tests/proto`, the include root of [`FILES`].
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/proto")
}

/// [`FILES`] and their imports as an encoded `FileDescriptorSet`, without source info (as a
/// generated package's `FILE_DESCRIPTOR_SET`).
fn encoded_set() -> Vec<u8> {
    let mut compiler = protox::Compiler::new([root()]).expect("compiler");
    compiler.include_imports(true);
    compiler.include_source_info(false);
    compiler
        .open_files(FILES)
        .expect("the describe protos compile");
    compiler.encode_file_descriptor_set()
}

#[test]
fn describe_through_reflection_writes_custom_options() {
    let set = encoded_set();
    let (_runtime, addr) =
        call_support::serve_on_runtime(Server::builder().add_reflection(&[set.as_slice()]));
    let root = root();
    let root = root.to_str().expect("utf-8 path");
    let mut checked = 0;
    for file in FILES {
        let (code, reflected, stderr) = call(&["describe", &addr, file], "");
        assert_eq!(code, 0, "describe {file} through reflection: {stderr}");
        let path = format!("{root}/{file}");
        let args = [
            "describe",
            &addr,
            file,
            "--proto",
            &path,
            "--import-path",
            root,
        ];
        let (code, compiled, stderr) = call(&args, "");
        assert_eq!(code, 0, "describe {file} --proto: {stderr}");
        let option_lines = compiled
            .lines()
            .filter(|line| line.contains("(sockrpc.describe.") && !line.trim().starts_with("//"));
        for line in option_lines {
            assert!(
                reflected.lines().any(|r| r == line),
                "{file}: `{line}` is missing through reflection:\n{reflected}"
            );
            checked += 1;
        }
    }
    // The files hold custom options on a file, messages, fields, a oneof, enums, values, a
    // service and methods: the comparison must have had them to compare.
    assert!(checked >= 10, "only {checked} custom option lines compared");
}
