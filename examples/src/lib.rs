//! Shared code for the examples: the generated `helloworld` and `routeguide` packages, and the
//! middleware examples' stack.

/// The `helloworld` package from `proto/helloworld/helloworld.proto`.
pub mod helloworld {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("helloworld");
}

/// The `routeguide` package from `proto/routeguide/route_guide.proto`.
pub mod routeguide {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("routeguide");
}

/// The `inventory` package from `proto/inventory/inventory.proto`: one method per idempotency
/// level, for the resilience example.
pub mod inventory {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("inventory");
}

/// The middleware stack of the `middleware-client` and `middleware-server` examples: one place
/// to add a layer to both.
#[path = "../middleware/stack.rs"]
pub mod middleware;
