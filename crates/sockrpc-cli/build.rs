//! Generates the `sockrpc.bench` service (payloads are `Bytes` so that an echo is a reference
//! count, not a copy: the benchmark should measure the framework, not memcpy), and, for the
//! end-to-end tests
//! only, the route guide (the tests' server is their own binary re-run; the CLI never includes
//! it) and the proto2 shop of `tests/proto/sockrpc/p2/` with the extensions `addon.proto`
//! declares in a file of its own (`tests/cli_proto2.rs`).
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
        ],
        &["../../tests/proto"],
    )
}
