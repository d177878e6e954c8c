//! Protos a user of tonic brings, generated with sockrpc-build and served end to end (a server
//! on `127.0.0.1:0`, the generated clients): services and messages named like Rust's prelude and
//! like sockrpc's generated items (`names.rs`), nested packages, one service name in three
//! packages and a package in capitals (`deep.rs`), every call shape over
//! `google.protobuf.Empty` with deprecated rpcs and doc-breaking comments (`empties.rs`), and
//! every service of `../shared/protos` that no other test serves (`shared_testing.rs`,
//! `shared_other.rs`).

mod deep;
mod empties;
mod names;
mod shared_other;
mod shared_testing;
mod support;
