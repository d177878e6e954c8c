//! Codecs: how a message becomes the bytes of a MESSAGE frame, and back.
//!
//! The transport only ever sees bytes; a codec is chosen per call by the generated code (protobuf
//! through [`ProstCodec`]) or by a hand-written service (serde types through `BincodeCodec`, behind
//! the `bincode` cargo feature).

pub mod arena;
mod prost;
pub mod recycle;
pub use self::prost::ProstCodec;

#[cfg(feature = "bincode")]
mod bincode;
#[cfg(feature = "bincode")]
pub use self::bincode::BincodeCodec;

use crate::Status;
use bytes::{Bytes, BytesMut};

/// Encodes `T` into bytes and decodes it back.
///
/// Failures are [`Status`]es with code `Internal` — gRPC's code for a message that cannot be
/// parsed — so they reach the caller unchanged.
pub trait Codec<T>: Clone + Send + Sync + 'static {
    /// Appends the encoding of `item` to `dst`.
    fn encode(&self, item: &T, dst: &mut BytesMut) -> Result<(), Status>;

    /// Decodes one whole message.
    fn decode(&self, src: Bytes) -> Result<T, Status>;

    /// A guess at the encoded size, to reserve once; 0 when unknown.
    fn encoded_len(&self, _item: &T) -> usize {
        0
    }
}

/// Encodes `item`: a small message into a piece of a shared buffer (see [`arena`]), a large or
/// unsized one into a buffer of its own sized by the codec's hint.
pub fn encode_to_bytes<T, C: Codec<T>>(codec: &C, item: &T) -> Result<Bytes, Status> {
    arena::encode_with(codec.encoded_len(item), |buf| codec.encode(item, buf))
}
