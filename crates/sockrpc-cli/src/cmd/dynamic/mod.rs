//! Calling a service known only at run time: its descriptors from `.proto` files compiled in
//! this process ([protox], no `protoc`) or from the server's reflection service, messages as
//! JSON (through [prost-reflect]'s protobuf JSON mapping), and calls made with encoded bytes
//! through a plain [`Channel`](sockrpc::Channel).
//!
//! - [`conn`]: the address, TLS, metadata and deadline flags every command shares.
//! - [`source`]: descriptors from `--proto` files or from reflection.
//! - [`bom`]: `--proto` files read past a leading UTF-8 byte order mark.
//! - [`reflect`]: the reflection client (list services, fetch files with their imports).
//! - [`extensions`]: through reflection, the extensions of a method's message types (or of one
//!   message, for `describe`) that are declared in files their own files do not import.
//! - [`names`]: a server's descriptors with a control character in a name are refused.
//! - [`any`]: through reflection, the types of `Any` values outside the method's files.
//! - [`json`]: JSON ⇄ protobuf for one method's messages.
//! - [`strict`]: what protojson refuses in a request and prost-reflect took: a field given
//!   twice (by one name or its two), a 64-bit integer past its range.
//! - [`canonical`]: an answer's JSON as protojson (and grpcurl) writes it: maps in key order.
//! - [`invoke`]: one call of any shape with encoded messages, over the `Channel`.
//! - [`exit`]: errors as the process exit code (the gRPC code number; 64 for bad input).
//!
//! [protox]: https://docs.rs/protox
//! [prost-reflect]: https://docs.rs/prost-reflect

pub(crate) mod any;
pub(crate) mod bom;
mod canonical;
pub(crate) mod conn;
mod editions;
pub(crate) mod exit;
pub(crate) mod extensions;
pub(crate) mod invoke;
pub(crate) mod json;
mod names;
pub(crate) mod reflect;
pub(crate) mod served;
pub(crate) mod source;
mod strict;
