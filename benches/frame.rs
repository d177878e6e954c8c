//! Frame encoding and decoding: OPEN + MESSAGE written into a reused buffer, and a
//! `FrameDecoder` reading a buffer of many frames, for 64 B and 64 KiB messages.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sockrpc::protocol::frame::{encode_message, encode_open};
use sockrpc::transport::FrameDecoder;
use sockrpc::{Limits, MetadataMap, MethodPath};
use std::hint::black_box;
use std::time::Duration;
use tokio_util::codec::Decoder;

const SIZES: [(&str, usize); 2] = [("64B", 64), ("64KiB", 64 * 1024)];

fn path() -> MethodPath {
    MethodPath::from_static("/bench.Echo/Echo")
}

/// One call's request frames, as a client writes them.
fn encode_call(dst: &mut BytesMut, call_id: u32, path: &MethodPath, body: &[u8]) {
    encode_open(
        dst,
        call_id,
        Some(Duration::from_secs(1)),
        path,
        &MetadataMap::new(),
        false,
    );
    encode_message(dst, call_id, true, body);
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/encode_open_message");
    let path = path();
    for (name, size) in SIZES {
        let body = vec![0xa5u8; size];
        let mut buf = BytesMut::with_capacity(2 * (size + 64));
        group.throughput(Throughput::Elements(1));
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                encode_call(&mut buf, black_box(7), &path, black_box(&body));
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame/decode_open_message");
    let path = path();
    for (name, size) in SIZES {
        // About 1 MiB of wire per batch, at least 16 calls.
        let calls = ((1 << 20) / (size + 64)).max(16) as u32;
        let body = vec![0xa5u8; size];
        let mut wire = BytesMut::new();
        for id in 1..=calls {
            encode_call(&mut wire, id, &path, &body);
        }
        let wire = wire.freeze();
        let limits = Limits::default();
        // Two frames per call: throughput is per frame.
        group.throughput(Throughput::Elements(u64::from(calls) * 2));
        group.bench_function(name, |b| {
            b.iter_batched(
                || BytesMut::from(&wire[..]),
                |mut src| {
                    let mut decoder = FrameDecoder::after_preface(limits);
                    let mut frames = 0u32;
                    while let Some(frame) = decoder.decode(&mut src).expect("valid frames") {
                        black_box(frame);
                        frames += 1;
                    }
                    assert_eq!(frames, calls * 2);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Private, so the generated `pub fn benches` needs no doc comment.
mod group {
    use super::*;
    criterion_group!(benches, encode, decode);
}
criterion_main!(group::benches);
