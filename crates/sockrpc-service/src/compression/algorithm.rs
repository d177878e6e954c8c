//! The algorithms: one message in, one message out, with the decompressed size bounded while
//! it is produced.
//!
//! Why streaming decoders with a bounded output: a message's compressed size says nothing of
//! its decompressed size (a 4 KiB zstd body can inflate to gigabytes). The decoder writes into
//! a buffer that never grows past the limit, and the call fails `RESOURCE_EXHAUSTED` the moment
//! one more byte would not fit: nothing is allocated for what lies beyond.

use bytes::Bytes;
use sockrpc_protocol::{CompressionEncoding, EncodingSet, Status};
#[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
use std::io::Read;

/// The encodings compiled into this build (cargo features `gzip`, `deflate`, `zstd`).
pub fn compiled_encodings() -> EncodingSet {
    #[allow(unused_mut)]
    let mut set = EncodingSet::EMPTY;
    #[cfg(feature = "gzip")]
    {
        set = set.with(CompressionEncoding::Gzip);
    }
    #[cfg(feature = "deflate")]
    {
        set = set.with(CompressionEncoding::Deflate);
    }
    #[cfg(feature = "zstd")]
    {
        set = set.with(CompressionEncoding::Zstd);
    }
    set
}

/// zstd's default level, and gzip/deflate's (flate2's default, 6).
#[cfg(feature = "zstd")]
const ZSTD_LEVEL: i32 = 3;

/// Compresses `message` with `encoding`. An encoding not compiled in is an `INTERNAL` error
/// (settings never select one: see [`compiled_encodings`]).
#[cfg_attr(
    not(all(feature = "gzip", feature = "deflate", feature = "zstd")),
    allow(unused_variables)
)]
pub fn compress(encoding: CompressionEncoding, message: &[u8]) -> Result<Bytes, Status> {
    let failed = |err: std::io::Error| {
        Status::internal(format!(
            "could not compress a message with {encoding}: {err}"
        ))
    };
    match encoding {
        #[cfg(feature = "gzip")]
        CompressionEncoding::Gzip => {
            use std::io::Write;
            let out = Vec::with_capacity(message.len() / 2 + 64);
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(message).map_err(failed)?;
            encoder.finish().map(Bytes::from).map_err(failed)
        }
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => {
            use std::io::Write;
            let out = Vec::with_capacity(message.len() / 2 + 64);
            let mut encoder = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
            encoder.write_all(message).map_err(failed)?;
            encoder.finish().map(Bytes::from).map_err(failed)
        }
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => {
            // With the frame's checksum, so a corrupted body is refused, not misread.
            let mut compressor = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(failed)?;
            compressor.include_checksum(true).map_err(failed)?;
            compressor
                .compress(message)
                .map(Bytes::from)
                .map_err(failed)
        }
        #[allow(unreachable_patterns)]
        other => Err(Status::internal(format!(
            "{other} is not compiled into this build (cargo feature `{other}`)"
        ))),
    }
}

/// Decompresses `message` with `encoding` into at most `limit` bytes: past it the call fails
/// `RESOURCE_EXHAUSTED` (and nothing past it was allocated); a body that is not valid for its
/// encoding fails `INTERNAL`.
#[cfg_attr(
    not(all(feature = "gzip", feature = "deflate", feature = "zstd")),
    allow(unused_variables)
)]
pub fn decompress(
    encoding: CompressionEncoding,
    message: &[u8],
    limit: usize,
) -> Result<Bytes, Status> {
    match encoding {
        #[cfg(feature = "gzip")]
        CompressionEncoding::Gzip => decompress_gzip(message, limit),
        #[cfg(feature = "deflate")]
        CompressionEncoding::Deflate => {
            let mut decoder = flate2::bufread::ZlibDecoder::new(message);
            let out = read_bounded(encoding, &mut decoder, limit)?;
            // A zlib body ends with its checksum; bytes after it are not part of the message.
            match decoder.into_inner().len() {
                0 => Ok(out),
                extra => Err(Status::internal(format!(
                    "could not decompress a {encoding} message: {extra} bytes after the end of \
                     its body"
                ))),
            }
        }
        #[cfg(feature = "zstd")]
        CompressionEncoding::Zstd => decompress_zstd(message, limit),
        #[allow(unreachable_patterns)]
        other => Err(Status::unimplemented(format!(
            "{other} is not compiled into this build"
        ))),
    }
}

/// At most this many gzip members, or zstd frames, make one message.
///
/// Why: each member or frame costs a header and a reset of the decoder (microseconds to tens of
/// them) whatever it holds, so a body of empty ones decoded to nothing but cost the receiving
/// thread seconds: a 4 MiB message of empty 20-byte gzip members took about 3.4 s in a release
/// build (a one-member body of that size takes 60 ms), of empty 13-byte zstd frames 0.5 s.
/// Senders write one; a few concatenated ones stay accepted.
#[cfg(any(feature = "gzip", feature = "zstd"))]
const MAX_MEMBERS: usize = 64;

/// The refusal of a body of more than [`MAX_MEMBERS`] members or frames.
#[cfg(any(feature = "gzip", feature = "zstd"))]
fn too_many_members(encoding: CompressionEncoding) -> Status {
    Status::resource_exhausted(format!(
        "a {encoding} message of more than {MAX_MEMBERS} members"
    ))
}

/// Members one after another, as Go's `gzip.Reader` (grpc-go's decompressor) reads them: bytes
/// after a member are the next member's header, or the body is refused; past [`MAX_MEMBERS`]
/// it is refused `RESOURCE_EXHAUSTED`. The limit holds across members.
#[cfg(feature = "gzip")]
fn decompress_gzip(message: &[u8], limit: usize) -> Result<Bytes, Status> {
    let encoding = CompressionEncoding::Gzip;
    let mut out = Vec::new();
    let mut rest = message;
    for _ in 0..MAX_MEMBERS {
        // A member's decoder takes exactly its member: header, body, trailer.
        let mut decoder = flate2::bufread::GzDecoder::new(rest);
        read_bounded_into(encoding, &mut decoder, limit, &mut out)?;
        rest = decoder.into_inner();
        if rest.is_empty() {
            return Ok(Bytes::from(out));
        }
    }
    Err(too_many_members(encoding))
}

/// Frames one after another, as zstd's reader takes them, at most [`MAX_MEMBERS`]; bytes after
/// a frame that are not one are refused. The limit holds across frames.
#[cfg(feature = "zstd")]
fn decompress_zstd(message: &[u8], limit: usize) -> Result<Bytes, Status> {
    let encoding = CompressionEncoding::Zstd;
    let mut out = Vec::new();
    let mut rest = message;
    for _ in 0..MAX_MEMBERS {
        // A single frame's decoder takes exactly its frame.
        let mut decoder = zstd::stream::read::Decoder::with_buffer(rest)
            .map_err(|err| corrupt(encoding, &err))?
            .single_frame();
        // A frame may ask for a window of up to 2 GiB; a message within the limit never
        // needs more than the limit (or zstd's usual 2 MiB), so a frame that asks for more
        // is refused as too large, before its window is allocated.
        decoder
            .window_log_max(window_log_for(limit))
            .map_err(|err| corrupt(encoding, &err))?;
        read_bounded_into(encoding, &mut decoder, limit, &mut out).map_err(|status| {
            if status.message().contains("too much memory") {
                too_large(encoding, limit)
            } else {
                status
            }
        })?;
        rest = decoder.finish();
        if rest.is_empty() {
            return Ok(Bytes::from(out));
        }
    }
    Err(too_many_members(encoding))
}

/// The smallest zstd window log whose window holds `limit` bytes, at least 21 (the 2 MiB
/// window zstd's default levels use whatever the size) and at most 27 (128 MiB).
#[cfg(feature = "zstd")]
fn window_log_for(limit: usize) -> u32 {
    let needed = usize::BITS - limit.saturating_sub(1).leading_zeros();
    needed.clamp(21, 27)
}

#[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
fn too_large(encoding: CompressionEncoding, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "a {encoding} message decompresses to more than the limit of {limit} bytes"
    ))
}

#[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
fn corrupt(encoding: CompressionEncoding, err: &std::io::Error) -> Status {
    Status::internal(format!("could not decompress a {encoding} message: {err}"))
}

/// Reads `reader` to its end into a buffer that never grows past `limit`.
#[cfg(feature = "deflate")]
fn read_bounded(
    encoding: CompressionEncoding,
    reader: &mut impl Read,
    limit: usize,
) -> Result<Bytes, Status> {
    let mut out: Vec<u8> = Vec::new();
    read_bounded_into(encoding, reader, limit, &mut out)?;
    Ok(Bytes::from(out))
}

/// Reads `reader` to its end onto `out`, which never grows past `limit`.
#[cfg(any(feature = "gzip", feature = "deflate", feature = "zstd"))]
fn read_bounded_into(
    encoding: CompressionEncoding,
    reader: &mut impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), Status> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(corrupt(encoding, &err)),
        };
        if n > limit - out.len() {
            return Err(too_large(encoding, limit));
        }
        if out.capacity() - out.len() < n {
            // Double, but never past the limit.
            let target = (out.capacity() * 2).max(out.len() + n).max(4096).min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockrpc_protocol::Code;

    fn sample() -> Vec<u8> {
        (0..100_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn every_compiled_encoding_round_trips() {
        let message = sample();
        for encoding in compiled_encodings().iter() {
            let packed = compress(encoding, &message).expect("compress");
            assert!(
                packed.len() < message.len() / 4,
                "{encoding} did not compress"
            );
            let unpacked = decompress(encoding, &packed, message.len()).expect("decompress");
            assert_eq!(&unpacked[..], &message[..], "{encoding}");
            // One byte short of the size: refused, bounded.
            let err = decompress(encoding, &packed, message.len() - 1).expect_err("limit");
            assert_eq!(err.code(), Code::ResourceExhausted, "{encoding}");
        }
    }

    #[test]
    fn corrupt_bodies_are_internal() {
        let message = sample();
        for encoding in compiled_encodings().iter() {
            let mut packed = compress(encoding, &message).expect("compress").to_vec();
            let middle = packed.len() / 2;
            for byte in &mut packed[middle..middle + 8] {
                *byte ^= 0x5a;
            }
            let err = decompress(encoding, &packed, 1 << 20).expect_err("corrupt");
            assert_eq!(err.code(), Code::Internal, "{encoding}: {err}");
            let err = decompress(encoding, b"not compressed at all", 1 << 20).expect_err("junk");
            assert_eq!(err.code(), Code::Internal, "{encoding}: {err}");
        }
    }

    #[test]
    fn bytes_after_the_body_are_refused() {
        let message = sample();
        for encoding in compiled_encodings().iter() {
            let mut packed = compress(encoding, &message).expect("compress").to_vec();
            packed.extend_from_slice(b"trailing junk");
            let err = decompress(encoding, &packed, 1 << 20).expect_err("trailing bytes");
            assert_eq!(err.code(), Code::Internal, "{encoding}: {err}");
        }
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzip_members_one_after_another_are_one_message() {
        let gzip = CompressionEncoding::Gzip;
        let mut packed = compress(gzip, b"first ").expect("compress").to_vec();
        packed.extend_from_slice(&compress(gzip, b"second").expect("compress"));
        let unpacked = decompress(gzip, &packed, 1 << 10).expect("two members");
        assert_eq!(&unpacked[..], b"first second");
        // The limit holds across members.
        let err = decompress(gzip, &packed, 8).expect_err("limit");
        assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    }

    #[cfg(any(feature = "gzip", feature = "zstd"))]
    #[test]
    fn members_or_frames_are_bounded_in_count() {
        for encoding in compiled_encodings().iter() {
            if encoding == CompressionEncoding::Deflate {
                continue;
            }
            let first = compress(encoding, b"first ").expect("compress");
            let empty = compress(encoding, b"").expect("compress");
            let many = |count: usize| -> Vec<u8> {
                let mut packed = first.to_vec();
                for _ in 1..count {
                    packed.extend_from_slice(&empty);
                }
                packed
            };
            let unpacked =
                decompress(encoding, &many(MAX_MEMBERS), 1 << 10).expect("up to the bound");
            assert_eq!(&unpacked[..], b"first ", "{encoding}");
            let err = decompress(encoding, &many(MAX_MEMBERS + 1), 1 << 10).expect_err("past it");
            assert_eq!(err.code(), Code::ResourceExhausted, "{encoding}: {err}");
        }
    }

    #[test]
    fn bodies_cut_short_are_internal() {
        let message = sample();
        for encoding in compiled_encodings().iter() {
            let packed = compress(encoding, &message).expect("compress");
            for len in [1, packed.len() / 2, packed.len() - 4, packed.len() - 1] {
                let err = decompress(encoding, &packed[..len], 1 << 20).expect_err("cut short");
                assert_eq!(err.code(), Code::Internal, "{encoding} cut to {len}: {err}");
            }
            // A second member or frame cut short too.
            let mut two = compress(encoding, b"first ").expect("compress").to_vec();
            two.extend_from_slice(&packed[..packed.len() - 1]);
            let err = decompress(encoding, &two, 1 << 20).expect_err("second cut short");
            assert_eq!(err.code(), Code::Internal, "{encoding}: {err}");
        }
    }
}
