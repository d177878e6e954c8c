//! Generates the greeter's client and server from the project's `proto/`.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(&["../proto/helloworld/helloworld.proto"], &["../proto"])
}
