//! Generates the `sockrpc.bench` service (payloads are `Bytes` so that an echo is a reference
//! count, not a copy: the benchmark should measure the framework, not memcpy), and, for the
//! end-to-end tests
//! only, the route guide (the tests' server is their own binary re-run; the CLI never includes
//! it), the proto2 shop of `tests/proto/sockrpc/p2/` with the extensions `addon.proto`
//! declares in a file of its own (`tests/cli_proto2.rs`), and `tests/proto/sockrpc/wrap/`,
//! whose `Any` fields carry a type from another file (`tests/cli_any.rs`), and
//! `tests/proto_more/`'s service over packages named `crate.self.v1`, `a.b.c.d` and none, one
//! reached through `import public` (`tests/cli_proto_more.rs`).
fn main() -> std::io::Result<()> {
    sockrpc_build::configure()
        .bytes(["."])
        .compile_protos(&["../../proto/bench/bench.proto"], &["../../proto"])?;
    sockrpc_build::compile_protos(
        &["../../proto/routeguide/route_guide.proto"],
        &["../../proto"],
    )?;
    sockrpc_build::compile_protos(
        &[
            "../../tests/proto/sockrpc/p2/shop.proto",
            "../../tests/proto/sockrpc/p2/addon.proto",
            // `Any` fields whose types are in a file the service's does not import
            // (`tests/cli_any.rs`).
            "../../tests/proto/sockrpc/wrap/wrap.proto",
            "../../tests/proto/sockrpc/wrap/cargo.proto",
        ],
        &["../../tests/proto"],
    )?;
    sockrpc_build::configure()
        .bytes(["."])
        .generate_default_stubs(true)
        .compile_protos(
            &["../../tests/proto_more/my_co/api_v2/x3/svc.proto"],
            &["../../tests/proto_more"],
        )
}
