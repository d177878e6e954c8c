//! gRPC server reflection for sockrpc: a client (grpcurl, `sockrpc list`/`describe`/`call`)
//! asks a server which services it serves and for their `.proto` descriptors, and can then
//! build and read messages without having the `.proto` files.
//!
//! Register the descriptor sets `sockrpc-build` generates (every package module has a
//! `FILE_DESCRIPTOR_SET` constant), with one builder call:
//!
//! ```ignore
//! use sockrpc_reflection::ReflectionExt;
//! Server::builder()
//!     .add_service(RouteGuideServer::new(guide))
//!     .add_reflection(&[routeguide::FILE_DESCRIPTOR_SET])
//!     .serve(addr)
//!     .await?;
//! ```
//!
//! That mounts `grpc.reflection.v1.ServerReflection` and the same service under its older
//! name, `grpc.reflection.v1alpha.ServerReflection` (the messages are identical on the wire),
//! which older clients still ask for. Both are listed, as grpc-go and tonic list them, and
//! both files are handed out (v1alpha's is v1's renamed, see [`v1alpha::file_descriptor`]).
//!
//! - [`index`]: the registered descriptors, by file name and by symbol.
//! - [`service`]: the `ServerReflectionInfo` stream: one answer per request.
//! - [`v1alpha`]: the service under its v1alpha name.
//! - [`v1alpha_client`]: a client of that name (`pb::v1alpha::server_reflection_client`).
//! - [`server`]: tonic-reflection's `Builder`, by its names, for one version at a time.

pub mod index;
pub mod server;
pub mod service;
pub mod v1alpha;
pub mod v1alpha_client;

pub use index::{DescriptorIndex, IndexError, SentFiles};
pub use service::Reflection;

/// `grpc.reflection.v1`, generated from gRPC's reflection.proto: the messages, the
/// `ServerReflection` client and server, and this package's own `FILE_DESCRIPTOR_SET`.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
    sockrpc::include_proto!("grpc.reflection.v1");

    /// The same, at tonic-reflection's path for it (`pb::v1`).
    pub mod v1 {
        pub use super::*;
    }

    /// tonic-reflection's `pb::v1alpha`: v1's messages (gRPC renamed the package, not a
    /// message) and a client of the v1alpha name.
    pub mod v1alpha {
        pub use super::{
            server_reflection_request, server_reflection_response, ErrorResponse,
            ExtensionNumberResponse, ExtensionRequest, FileDescriptorResponse, ListServiceResponse,
            ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
        };
        pub use crate::v1alpha_client as server_reflection_client;
    }
}

use sockrpc::server::ServerBuilder;

/// The reflection service's own full name.
pub const SERVICE_NAME: &str = "grpc.reflection.v1.ServerReflection";

/// Adds reflection to a [`ServerBuilder`] in one call.
pub trait ReflectionExt: Sized {
    /// Mounts reflection (v1 and v1alpha) over `sets`, encoded `FileDescriptorSet`s such as the
    /// `FILE_DESCRIPTOR_SET` constants of generated packages. The services it lists are those
    /// the sets declare, plus reflection itself under both names, as tonic-reflection lists
    /// them (grpc-go lists the services mounted instead): a package's set declares all of its
    /// services, mounted or not. A set that does not decode makes every
    /// reflection call fail with `Internal` and the decoding error, rather than a panic.
    fn add_reflection(self, sets: &[&[u8]]) -> Self;
}

impl<L> ReflectionExt for ServerBuilder<L> {
    fn add_reflection(self, sets: &[&[u8]]) -> Self {
        let reflection = Reflection::from_sets(sets);
        self.add_service(reflection.v1())
            .add_service(reflection.v1alpha())
    }
}
