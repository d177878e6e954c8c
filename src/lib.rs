//! sockrpc: an RPC framework layered directly on sockets.
//!
//! Define services in `.proto` files, generate clients and servers in `build.rs` with
//! [`sockrpc-build`](https://docs.rs/sockrpc-build) (no `protoc` needed), and call them over TCP
//! with deadlines, metadata and gRPC's status codes.
//!
//! ```ignore
//! // build.rs
//! fn main() -> std::io::Result<()> {
//!     sockrpc_build::compile_protos(&["proto/helloworld.proto"], &["proto"])
//! }
//!
//! // src/main.rs
//! pub mod hello { sockrpc::include_proto!("helloworld"); }
//! let mut client = hello::greeter_client::GreeterClient::connect("tcp://127.0.0.1:50051").await?;
//! let reply = client.say_hello(hello::HelloRequest { name: "you".into() }).await?;
//! ```
//!
//! # Crates
//! - [`protocol`]: wire format (frames and UDP datagrams), [`Status`]/[`Code`], metadata, codecs.
//! - [`transport`]: sockets (socket2), framing, both ends of a multiplexed connection, the
//!   connection pool, UDP, Unix sockets.
//! - [`service`]: tower router, server builder, client channel.
//! - [`tls`]: TLS and mutual TLS on TCP and Unix connections (feature `tls`, on by default),
//!   certificates that rotate without a restart.

pub use sockrpc_middleware as middleware;
pub use sockrpc_protocol as protocol;

/// The service crate ([`sockrpc_service`]: router, server builder, channel), with tonic's
/// `service` names beside it: [`Interceptor`](service::Interceptor),
/// [`interceptor::InterceptedService`](service::interceptor::InterceptedService) and
/// [`interceptor(f)`](service::interceptor()), the layer of an interceptor closure.
pub mod service {
    pub use sockrpc_service::*;

    /// Interceptors (`sockrpc_middleware::interceptor`), where tonic has them:
    /// `service::interceptor::InterceptedService`.
    pub mod interceptor {
        pub use sockrpc_middleware::interceptor::*;
    }
    pub use sockrpc_middleware::interceptor::{InterceptedService, Interceptor, InterceptorLayer};

    /// tonic's `service::interceptor(f)`: a tower layer that runs `f` on every call's
    /// `Request<()>` (client or server side), the same as [`InterceptorLayer::new`].
    pub fn interceptor<F>(f: F) -> InterceptorLayer<F> {
        InterceptorLayer::new(f)
    }
}

/// The transport crate ([`sockrpc_transport`]: sockets, framing, connections, `Endpoint`),
/// with [`Server`] and [`Channel`] beside it, where tonic users look for them
/// (`tonic::transport::{Channel, Endpoint, Server}`), and
/// [`EndpointExt`], tonic's `endpoint.connect().await`.
pub mod transport {
    pub use sockrpc_service::{Channel, EndpointExt, Server};
    pub use sockrpc_transport::*;

    /// The transport's server side ([`sockrpc_transport::server`]), with tonic's
    /// `transport::server::{Routes, RoutesBuilder}` beside it (also in
    /// [`service`](crate::service), tonic's newer home for them) and its `TcpIncoming`.
    pub mod server {
        pub use sockrpc_service::server::TcpIncoming;
        pub use sockrpc_service::{Routes, RoutesBuilder};
        pub use sockrpc_transport::server::*;
    }
}

/// Metadata as tonic's `metadata` module names it: [`MetadataMap`], the typed values
/// ([`MetadataValue`](metadata::MetadataValue),
/// [`AsciiMetadataValue`](metadata::AsciiMetadataValue),
/// [`BinaryMetadataValue`](metadata::BinaryMetadataValue)) its setters take and its getters
/// lend out, the keys ([`MetadataKey`](metadata::MetadataKey),
/// [`AsciiMetadataKey`](metadata::AsciiMetadataKey),
/// [`BinaryMetadataKey`](metadata::BinaryMetadataKey)) it takes beside `&str`, and the views
/// its `values`, `values_mut` and `iter_mut` lend them out as ([`ValueRef`](metadata::ValueRef),
/// [`ValueRefMut`](metadata::ValueRefMut), [`KeyAndMutValueRef`](metadata::KeyAndMutValueRef)),
/// and the entry its `entry` and `entry_bin` give ([`Entry`](metadata::Entry),
/// [`OccupiedEntry`](metadata::OccupiedEntry), [`VacantEntry`](metadata::VacantEntry), with
/// [`ValueIter`](metadata::ValueIter), [`ValueIterMut`](metadata::ValueIterMut) and
/// [`ValueDrain`](metadata::ValueDrain)).
pub mod metadata {
    pub use sockrpc_protocol::metadata_key::*;
    pub use sockrpc_protocol::metadata_value::*;
    pub use sockrpc_protocol::{
        is_bin_key, Entry, KeyAndMutValueRef, MetadataError, MetadataMap, OccupiedEntry,
        VacantEntry, ValueDrain, ValueIter, ValueIterMut, ValueRef, ValueRefMut,
    };
}

/// tonic's `#[async_trait]` on an `impl` of a generated server trait: accepted and left as is
/// (the traits' methods return `impl Future`, which `async fn` implements), so a service
/// implementation ported from tonic compiles unchanged.
pub use sockrpc_macros::async_trait;
#[cfg(feature = "bincode")]
pub use sockrpc_protocol::BincodeCodec;
/// tonic's name for the method a call is for, as a client interceptor finds it in the
/// request's extensions (`request.extensions().get::<GrpcMethod>()`): [`MethodPath`], with
/// tonic's `service()` and `method()`.
pub use sockrpc_protocol::MethodPath as GrpcMethod;
pub use sockrpc_protocol::{
    Code, Codec, IntoRequest, IntoStreamingRequest, Limits, MetadataMap, MethodPath, ProstCodec,
    Request, Response, Status, Timing, MAX_TIMEOUT,
};
pub use sockrpc_protocol::{ConnInfo, Extensions, TransportKind, UCred};
pub use sockrpc_service::{
    client, server, Body, BoxStream, Call, Channel, Client, Endpoint, EndpointExt, IntoEndpoint,
    NamedService, Router, RpcService, Server, ServerConfig, Streaming,
};
pub use sockrpc_service::{
    status_from_error, BoxError, ClientService, Idempotency, ReadyQueue, RpcMethod,
};
pub use sockrpc_transport::{Keepalive, SocketConfig};

/// Per-message compression (gzip, deflate, zstd; cargo features, gzip and zstd on by default)
/// and the send/receive message limits of generated clients and servers.
pub use sockrpc_service::compression;
pub use sockrpc_service::compression::{CompressionEncoding, CompressionSwitch};

/// What tonic users import from `tonic::codec`, at the same path: `CompressionEncoding`
/// (`use tonic::codec::CompressionEncoding;` ports by the crate name alone), `Streaming`, and
/// the message codecs `Codec` and `ProstCodec`. `Codec` is sockrpc's trait (`encode`/`decode`
/// on bytes), not tonic's pair of `Encoder`/`Decoder` types: a custom tonic codec is rewritten
/// over it.
pub mod codec {
    pub use sockrpc_protocol::{Codec, ProstCodec};
    pub use sockrpc_service::compression::CompressionEncoding;
    pub use sockrpc_service::Streaming;
}

/// TLS: [`ClientTlsConfig`](tls::ClientTlsConfig) for an [`Endpoint`],
/// [`ServerTlsConfig`](tls::ServerTlsConfig) and [`ServerTls`](tls::ServerTls) for the
/// [`Server`] builder, [`TlsPeer`](tls::TlsPeer) for what a handshake established.
pub use sockrpc_transport::tls;

/// Protobuf's well-known types (`google.protobuf.Timestamp`, `Duration`, `Any`, `Struct`,
/// `FieldMask`, ...), prost-types' structs, which generated messages use for them: a crate
/// builds them as `sockrpc::prost_types::Timestamp { .. }` without a `prost-types` dependency of
/// its own (that would have to be the very version sockrpc uses).
pub use prost_types;

/// Includes the code `sockrpc-build` generated for a protobuf package, e.g.
/// `sockrpc::include_proto!("helloworld")`.
///
/// The package is named as in its `.proto` file's `package` line, whatever its case or
/// segments: `include_proto!("kw.type.v1")` for `package kw.type.v1;`, although prost-build
/// names the file after the Rust module path (`kw.r#type.v1.rs`; `sockrpc-build` writes
/// `kw.type.v1.rs` beside it, including it). That file name works too, and `"_"` includes
/// the items of `.proto` files without a package.
///
/// ```ignore
/// pub mod kw {
///     sockrpc::include_proto!("kw.type.v1");
/// }
/// ```
///
/// Like tonic's, the macro reads `$OUT_DIR`: for code generated elsewhere
/// ([`out_dir`](https://docs.rs/sockrpc-build/latest/sockrpc_build/struct.Builder.html#method.out_dir)),
/// `include!` the file prost-build named, or use an
/// [`include_file`](https://docs.rs/sockrpc-build/latest/sockrpc_build/struct.Builder.html#method.include_file).
#[macro_export]
macro_rules! include_proto {
    ($package:tt) => {
        include!(concat!(env!("OUT_DIR"), concat!("/", $package, ".rs")));
    };
}

/// The bytes of an encoded `FileDescriptorSet` written to `$OUT_DIR/<name>.bin`, as tonic's
/// macro of the same name reads them: the build script passes
/// `file_descriptor_set_path(out_dir.join("<name>.bin"))` to `sockrpc_build::configure()`.
/// Every generated package also carries its own set as `FILE_DESCRIPTOR_SET` (unless the build
/// turns that off with `file_descriptor_set_const(false)`).
///
/// ```ignore
/// pub const DESCRIPTORS: &[u8] = sockrpc::include_file_descriptor_set!("greeter_descriptor");
/// ```
#[macro_export]
macro_rules! include_file_descriptor_set {
    ($name:tt) => {
        include_bytes!(concat!(env!("OUT_DIR"), concat!("/", $name, ".bin")))
    };
}

/// What generated code refers to, under one stable path. Not for direct use.
#[doc(hidden)]
pub mod codegen {
    pub use bytes::Bytes;
    pub use futures_core::Stream;
    pub use prost_types;
    pub use sockrpc_middleware::interceptor::{InterceptedService, Interceptor};
    pub use sockrpc_protocol::{
        Codec, IntoRequest, IntoStreamingRequest, ProstCodec, Request, Response, Status,
    };
    pub use sockrpc_service::compression::{CompressionEncoding, MessageSettings};
    pub use sockrpc_service::{
        client_streaming_handler, server_streaming_handler, streaming_handler, unary_handler, Body,
        BoxFuture, Call, Channel, Client, IntoEndpoint, NamedService, RpcService, Streaming,
    };
    pub use sockrpc_service::{BoxStream, CallFuture, ClientService, Idempotency, RpcMethod};
    pub use tower_service::Service;
}
