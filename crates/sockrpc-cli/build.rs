//! Generates the `sockrpc.bench` service. Payloads are `Bytes` so that an echo is a reference
//! count, not a copy: the benchmark should measure the framework, not memcpy.
fn main() -> std::io::Result<()> {
    sockrpc_build::configure()
        .bytes(["."])
        .compile_protos(&["../../proto/bench/bench.proto"], &["../../proto"])
}
