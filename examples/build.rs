//! Generates the examples' clients and servers from the project's `proto/`: the greeter and the
//! route guide.
fn main() -> std::io::Result<()> {
    sockrpc_build::compile_protos(
        &[
            "../proto/helloworld/helloworld.proto",
            "../proto/routeguide/route_guide.proto",
            "../proto/inventory/inventory.proto",
        ],
        &["../proto"],
    )
}
