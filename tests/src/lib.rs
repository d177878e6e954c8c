//! Generated code and helpers shared by the integration tests.
//!
//! Lints that are allowed by default but that a user may deny crate-wide are denied here, so
//! that the generated code is shown to pass them.
#![deny(trivial_casts, trivial_numeric_casts, unused_qualifications)]

pub mod bounded;
pub mod child;
pub mod logs;
pub mod mirror;
pub mod panics;
pub mod rebind;
pub mod refused;
pub mod serve;
pub mod starve;
pub mod summary;

/// `proto/helloworld/helloworld.proto`.
pub mod helloworld {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("helloworld");
}

/// `tests/proto/sockrpc/test/echo.proto`.
pub mod echo {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("sockrpc.test");
}

/// `tests/proto/parity/test.proto`: the peer framework's test services (`tests/parity/`).
pub mod parity {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("test");
}

/// `tests/proto/sockrpc/test/stream.proto`.
pub mod stream {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("sockrpc.test.stream");
}

/// `tests/proto/kw/type/v1/kw.proto` through `include_proto!` by its package name as written
/// (prost-build's file is `kw.r#type.v1.rs`); `tricky::kw::r#type::v1` is the same package
/// through an include file.
pub mod kw_type {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("kw.type.v1");
}

/// Every `.proto` under `../shared/protos`, as one module tree by package. Rustdoc's and clippy's
/// lints stay on, so `cargo doc` and `cargo clippy` with `-D warnings` check what real protos
/// generate, but for `large_enum_variant`: prost-build's oneof enums in `grpc.testing` (as
/// tonic users get them).
#[allow(missing_docs, unreachable_pub, clippy::large_enum_variant)]
pub mod shared {
    include!(concat!(env!("OUT_DIR"), "/shared/shared.rs"));
}

/// `tests/proto/sockrpc/test/counter.proto`: methods with idempotency levels.
pub mod counter {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("sockrpc.test.counter");
}

/// `tests/proto/sockrpc/test/blob.proto`: an idempotent method with an answer of any size.
pub mod blob {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    sockrpc::include_proto!("sockrpc.test.blob");
}

/// `tests/proto/sockrpc/test/options.proto`, generated with default stubs and the well-known
/// types compiled in (`google.protobuf` beside it).
#[allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
pub mod options {
    include!(concat!(env!("OUT_DIR"), "/options/options.rs"));
}

/// `tests/proto/sockrpc/test/tricky.proto` and what it imports (`a.b.v1`, `kw.type.v1` as
/// `kw::r#type::v1`, and a file without a package whose items sit at the top of this module), as
/// one module tree by package. Rustdoc's and clippy's lints stay on (`cargo doc` and `cargo
/// clippy` with `-D warnings` check the generated code).
#[allow(missing_docs, unreachable_pub)]
pub mod tricky {
    include!(concat!(env!("OUT_DIR"), "/tricky/tricky.rs"));
}

/// `tests/proto/brought/`: protos a tonic user brings, served by `tests/brought/`. Rustdoc's and
/// clippy's lints stay on here (no `rustdoc::all`, no `clippy::all`), so `cargo doc` and `cargo
/// clippy` with `-D warnings` check the generated code as a user's crate would
/// (`module_inception`: the package `brought` sits in this module `brought`).
#[allow(missing_docs, unreachable_pub, clippy::module_inception)]
pub mod brought {
    include!(concat!(env!("OUT_DIR"), "/brought/brought.rs"));
}

/// `tests/proto_more/`: protos real projects have (keyword packages, `import public`, well-known
/// types streamed, CRLF), served by `tests/proto_more/`, with rustdoc's and clippy's lints on.
#[allow(missing_docs, unreachable_pub)]
pub mod more {
    include!(concat!(env!("OUT_DIR"), "/more/more.rs"));
}

/// `tests/proto/sockrpc/p2/shop.proto`: proto2 (required fields, defaults, groups, extensions,
/// closed enums), served by `tests/proto2/`.
#[allow(missing_docs, unreachable_pub, clippy::all, rustdoc::all)]
pub mod p2 {
    include!(concat!(env!("OUT_DIR"), "/p2/p2.rs"));
}
