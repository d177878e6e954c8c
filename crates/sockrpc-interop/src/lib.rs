//! gRPC's interop test service and test cases, ported onto sockrpc.
//!
//! The protos are gRPC's own (`proto/grpc/testing/{test,messages,empty,benchmark_service}.proto`,
//! copied from `../shared/protos`), the procedures and asserts follow
//! `../shared/specs/grpc/interop-test-descriptions.md`.
//!
//! - [`server`]: [`server::InteropServer`], the `TestService` as gRPC's interop
//!   servers implement it, and [`run_server`] to serve it on a listener.
//! - [`benchmark`]: [`BenchmarkServer`], gRPC's `BenchmarkService` as its reference servers
//!   implement it, for gRPC's benchmark scenarios and load generators.
//! - [`client`]: one `async fn` per test case, each returning `Ok(())` or a message saying
//!   precisely what differed from the spec; [`run_case`] runs one by name against an address.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
//! let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
//! tokio::spawn(sockrpc_interop::run_server(listener, std::future::pending()));
//! for case in sockrpc_interop::all_cases() {
//!     sockrpc_interop::run_case(case, &addr).await?;
//! }
//! # Ok(())
//! # }
//! ```

pub mod benchmark;
mod cancel;
pub mod client;
mod compressed;
pub mod server;
mod soak;

pub use benchmark::BenchmarkServer;
pub use client::{run_case, SoakConfig};
pub use server::{run_server, serve, InteropServer, ServerEvents};

/// The `grpc.testing` package generated from gRPC's interop and benchmark protos: messages, the
/// `TestService`, `UnimplementedService` and `BenchmarkService` clients and servers (and the
/// package's other services, unused here).
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
    sockrpc::include_proto!("grpc.testing");
}

/// The test cases [`run_case`] knows, by their names in the interop spec.
pub fn all_cases() -> &'static [&'static str] {
    client::CASES
}
