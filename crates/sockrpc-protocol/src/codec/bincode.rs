//! serde types through bincode 2, for Rust-only services that skip `.proto`.
//!
//! bincode is pinned to `=2.0.1`: its 3.0 release is only a `compile_error!` and the crate is no
//! longer maintained, so it stays behind this feature and the [`Codec`] trait, where it can be
//! replaced without touching users' services.

use super::Codec;
use crate::Status;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{de::DeserializeOwned, Serialize};

/// The most memory a single decode may claim for containers. Without a limit a forged length
/// prefix makes bincode reserve whatever it names before reading a byte of it.
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes serde types with bincode 2 (standard configuration, varint integers).
#[derive(Debug, Clone, Copy, Default)]
pub struct BincodeCodec;

impl<T> Codec<T> for BincodeCodec
where
    T: Serialize + DeserializeOwned,
{
    fn encode(&self, item: &T, dst: &mut BytesMut) -> Result<(), Status> {
        let mut writer = dst.writer();
        bincode::serde::encode_into_std_write(item, &mut writer, config())
            .map(|_| ())
            .map_err(|err| Status::internal(format!("failed to encode bincode message: {err}")))
    }

    fn decode(&self, src: Bytes) -> Result<T, Status> {
        let (value, used) = bincode::serde::decode_from_slice(&src, config())
            .map_err(|err| Status::internal(format!("failed to decode bincode message: {err}")))?;
        if used != src.len() {
            return Err(Status::internal(format!(
                "failed to decode bincode message: {} trailing bytes",
                src.len() - used
            )));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i64,
        label: String,
        tags: Vec<u32>,
    }

    #[test]
    fn round_trip_and_hostile_lengths() {
        let point = Point {
            x: -7,
            label: "héllo".into(),
            tags: vec![1, 2, 3],
        };
        let bytes = crate::codec::encode_to_bytes(&BincodeCodec, &point).expect("encode");
        let back: Point = BincodeCodec.decode(bytes).expect("decode");
        assert_eq!(back, point);

        // A Vec<u8> claiming 2^60 elements: must fail cleanly, not allocate.
        let forged = Bytes::from_static(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0x10]);
        let err = Codec::<Vec<u8>>::decode(&BincodeCodec, forged).expect_err("forged");
        assert_eq!(err.code(), Code::Internal);
    }
}
