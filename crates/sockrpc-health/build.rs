//! Generates `grpc.health.v1` (messages, the `Health` client and server) from the unchanged copy
//! of gRPC's `health.proto` under this crate's own `proto/`, so the crate builds on its own.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(&["proto/grpc/health/v1/health.proto"], &["proto"])
}
