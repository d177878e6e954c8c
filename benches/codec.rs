//! Codec encode/decode of a message with a 64 B and a 64 KiB bytes field: `ProstCodec`, and
//! `BincodeCodec` with the `bincode` feature.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sockrpc::{Codec, ProstCodec};
use std::hint::black_box;

const SIZES: [(&str, usize); 2] = [("64B", 64), ("64KiB", 64 * 1024)];

/// The benchmark message: a payload and an id, like the echo service's.
#[derive(Clone, PartialEq, prost::Message)]
struct Blob {
    #[prost(bytes = "bytes", tag = "1")]
    payload: Bytes,
    #[prost(uint64, tag = "2")]
    id: u64,
}

fn prost_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/prost");
    for (name, size) in SIZES {
        let message = Blob {
            payload: Bytes::from(vec![0xa5u8; size]),
            id: 42,
        };
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = BytesMut::with_capacity(size + 16);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                ProstCodec
                    .encode(black_box(&message), &mut buf)
                    .expect("encode");
                black_box(buf.len())
            })
        });
        let encoded =
            sockrpc::protocol::codec::encode_to_bytes(&ProstCodec, &message).expect("encode");
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let back: Blob = ProstCodec
                    .decode(black_box(encoded.clone()))
                    .expect("decode");
                black_box(back)
            })
        });
    }
    group.finish();
}

#[cfg(feature = "bincode")]
fn bincode_codec(c: &mut Criterion) {
    use sockrpc::BincodeCodec;

    /// The same message for serde; `Vec<u8>` goes through serde as a sequence of bytes.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct SerdeBlob {
        payload: Vec<u8>,
        id: u64,
    }

    let mut group = c.benchmark_group("codec/bincode");
    for (name, size) in SIZES {
        let message = SerdeBlob {
            payload: vec![0xa5u8; size],
            id: 42,
        };
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = BytesMut::with_capacity(size + 16);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                BincodeCodec
                    .encode(black_box(&message), &mut buf)
                    .expect("encode");
                black_box(buf.len())
            })
        });
        let encoded =
            sockrpc::protocol::codec::encode_to_bytes(&BincodeCodec, &message).expect("encode");
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                let back: SerdeBlob = BincodeCodec
                    .decode(black_box(encoded.clone()))
                    .expect("decode");
                black_box(back)
            })
        });
    }
    group.finish();
}

#[cfg(not(feature = "bincode"))]
fn bincode_codec(_: &mut Criterion) {}

/// Private, so the generated `pub fn benches` needs no doc comment.
mod group {
    use super::*;
    criterion_group!(benches, prost_codec, bincode_codec);
}
criterion_main!(group::benches);
