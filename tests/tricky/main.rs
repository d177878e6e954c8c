//! Code generated from tricky but valid protos (`tests/proto/sockrpc/test/tricky.proto`, and
//! what it imports: `a.b.v1`, `kw.type.v1` and a file without a package) builds, and every
//! generated method answers over TCP on loopback: keyword and helper-colliding rpc names,
//! acronyms, services named `Service`, `Server` and `Empty`, well-known types, types from other and
//! missing packages, every call shape, `optional`/`oneof`/`map`/enums, deprecation and a service
//! without methods.
//!
//! One server ([`support::start_all`]) carries every service; each file holds the services of one
//! concept and the tests that call them.

mod keywords;
mod odd_services;
mod packages;
mod service;
mod support;
mod well_known;
