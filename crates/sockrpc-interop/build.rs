//! Generates the `grpc.testing` package (messages, `TestService`, `UnimplementedService` and
//! `BenchmarkService` clients and servers) from the copies of gRPC's interop and benchmark protos
//! under the repository's `proto/`.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(
        &[
            "../../proto/grpc/testing/test.proto",
            "../../proto/grpc/testing/benchmark_service.proto",
        ],
        &["../../proto"],
    )
}
