//! Code generated from tricky but valid protos (`tests/proto/sockrpc/test/tricky.proto`, and
//! what it imports: `a.b.v1`, `kw.type.v1`, a file without a package, `sunset.proto` and
//! `rust_blocks.proto`) builds,
//! and every generated method answers over TCP on loopback: keyword and helper-colliding rpc
//! names, acronyms, services named `Service`, `Server` and `Empty`, well-known types, types from
//! other and missing packages, every call shape, `optional`/`oneof`/`map`/enums, deprecation (of
//! rpcs and of whole services) and a service without methods.
//!
//! One server ([`support::start_all`]) carries every service but `sunset.proto`'s, which
//! `sunset.rs` compiles once more under `#![deny(warnings)]` and serves on its own; each file
//! holds the services of one concept and the tests that call them. `rust_blocks.rs` runs
//! rustdoc's doctests over every doc comment generated.

mod keywords;
mod odd_services;
mod packages;
mod rust_blocks;
mod service;
mod sunset;
mod support;
mod well_known;
