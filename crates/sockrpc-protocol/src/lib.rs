//! The wire protocol's types and the codecs.
//!
//! # Layout
//! - [`frame`]: the preface, the 12-byte frame header and every frame body, with diagrams.
//! - [`Status`] and [`Code`]: the one error at the RPC boundary, with gRPC's codes and numbers.
//! - [`MetadataMap`]: ASCII keys; keys ending in `-bin` carry bytes; [`metadata_value`] and
//!   [`metadata_key`]: tonic's typed values and keys for it.
//! - [`Request`], [`Response`], [`IntoRequest`]: messages with their metadata and timeout.
//! - [`Extensions`]: typed values middleware attaches to a request, never sent.
//! - [`RequestCharge`]: what a compressed request decompresses to, counted against its
//!   connection's budget of running requests.
//! - [`ConnInfo`] and [`TransportKind`]: the connection a server-side call came in on, with
//!   the [`TlsPeer`] when it runs TLS.
//! - [`MethodPath`]: the path a call is routed by, `/package.Service/Method`.
//! - [`Limits`]: every size checked before allocation.
//! - [`CompressionEncoding`], [`EncodingSet`], [`EncodingFields`]: compression as the wire
//!   names it (the algorithms are the service layer's).
//! - [`codec`]: [`Codec`], [`ProstCodec`] and (feature `bincode`) `BincodeCodec`.

mod code;
pub mod codec;
mod conn_info;
pub mod datagram;
mod encoding;
mod extensions;
pub mod frame;
mod grpc_timeout;
mod limits;
mod metadata;
mod metadata_entry;
pub mod metadata_key;
mod metadata_str;
mod metadata_tonic;
pub mod metadata_value;
mod method;
mod path_cache;
mod request;
mod request_charge;
mod request_timing;
mod request_wire;
mod status;
mod tls_peer;

pub use code::Code;
#[cfg(feature = "bincode")]
pub use codec::BincodeCodec;
pub use codec::{Codec, ProstCodec};
pub use conn_info::{ConnInfo, TransportKind, UCred};
pub use encoding::{
    CompressionDisabled, CompressionEncoding, EncodingFields, EncodingSet, ENCODING_FIELDS_LEN,
};
pub use extensions::Extensions;
pub use grpc_timeout::{parse_grpc_timeout, take_grpc_timeout, GRPC_TIMEOUT_KEY};
pub use limits::{Limits, CONTROL_OVERHEAD, SKIP_FACTOR, SKIP_FLOOR, STATUS_MESSAGE_CEILING};
pub use metadata::{is_bin_key, MetadataError, MetadataMap, MAX_KEY_LEN, RESERVED_PREFIX};
pub use metadata_entry::{Entry, OccupiedEntry, VacantEntry, ValueDrain, ValueIter, ValueIterMut};
pub use metadata_tonic::{KeyAndMutValueRef, ValueRef, ValueRefMut};
pub use method::{InvalidPath, MethodPath, StaticMethodPath};
pub use path_cache::PathCache;
pub use request::{IntoRequest, IntoStreamingRequest, Request, Response, MAX_TIMEOUT};
pub use request_charge::RequestCharge;
pub use request_timing::Timing;
pub use status::Status;
pub use tls_peer::{TlsPeer, TlsVersion};
