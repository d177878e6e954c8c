//! Generates the `grpc.testing` package (messages, `TestService` and `UnimplementedService`
//! clients and servers) from the copies of gRPC's interop protos under the repository's `proto/`.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(&["../../proto/grpc/testing/test.proto"], &["../../proto"])
}
