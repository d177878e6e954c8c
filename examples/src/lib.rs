//! Shared code for the examples: the generated `helloworld` package.

/// The `helloworld` package from `proto/helloworld/helloworld.proto`.
pub mod helloworld {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("helloworld");
}
