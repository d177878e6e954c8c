//! Generates `grpc.reflection.v1` (messages, the `ServerReflection` client and server) from the
//! copy of gRPC's reflection.proto under this crate's `proto/`, so the crate builds standalone.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(&["proto/grpc/reflection/v1/reflection.proto"], &["proto"])
}
