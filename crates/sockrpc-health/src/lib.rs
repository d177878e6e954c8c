//! gRPC's standard health service, `grpc.health.v1.Health`, for sockrpc.
//!
//! Load balancers, orchestrators and `grpc_health_probe` ask a server whether it is fit to
//! take calls with this one well-known service, so sockrpc serves it as gRPC defines it
//! (`proto/grpc/health/v1/health.proto`, gRPC's file unchanged):
//!
//! - [`HealthReporter`]: what the application says about each of its services
//!   (`SERVING` / `NOT_SERVING`), at any time, from anywhere; cloning shares it.
//! - [`HealthService`]: the server, answering `Check`, `List` and `Watch` from the reporter
//!   (`Watch` streams every change). [`health_service`] makes the pair.
//! - [`GrpcHealthProbe`]: the client side — a balanced channel
//!   ([`sockrpc::service::balance`]) watches each endpoint through it and takes endpoints that
//!   say `NOT_SERVING` out of rotation, or whose `Watch` ended, until it answers `SERVING`.
//! - tonic-health's names for these: [`server::health_reporter`],
//!   `HealthReporter::set_service_status` / `clear_service_status` (`tonic_names.rs`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let (reporter, health) = sockrpc_health::health_service();
//! reporter.set_serving("my.package.MyService");
//! let server = sockrpc::Server::builder().add_service(health);
//! // ... later, while draining:
//! reporter.set_not_serving("my.package.MyService");
//! # Ok(()) }
//! ```

mod probe;
mod reporter;
pub mod server;
mod tonic_names;

pub use probe::GrpcHealthProbe;
pub use reporter::{HealthReporter, MAX_SERVICES, MAX_WATCHED_NAME};
pub use server::{health_service, HealthService};

/// The `grpc.health.v1` package generated from gRPC's `health.proto`: the messages and the
/// `Health` client and server.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
    sockrpc::include_proto!("grpc.health.v1");
}

pub use pb::health_check_response::ServingStatus;
