//! Target `frame_decoder`: the transport's incremental [`FrameDecoder`] on arbitrary bytes,
//! delivered in arbitrary chunks, under small limits.
//!
//! Why: it is the first code that touches whatever a peer sends, on every connection, client and
//! server alike, and it must hold its promises (no panic, sizes checked before buffering) for any
//! split of the stream into reads.
//!
//! Input layout:
//!
//! ```text
//! byte 0   bit 0: expect the preface first (else start after it)
//!          bits 1-2: message limit, bits 3-4: metadata limit (see `choose::limits`)
//!          bits 5-7: n, how many chunk sizes follow (0: the whole stream in one read)
//! n bytes  chunk sizes minus one, used in turn (cycling) to cut the stream into reads
//! rest     the byte stream
//! ```
//!
//! Properties checked (each a panic when broken):
//! - the frames decoded, and whether decoding failed, do not depend on the chunking;
//! - [`FrameDecoder::bytes_wanted`] never asks for more than the limits allow one frame to be;
//! - every decoded frame, written again by `sockrpc_protocol::frame`'s encoder, decodes to an
//!   equal frame (what the receiver understood is what a sender meant).
//!
//! The fuzz binary also bounds the heap the call may use (see `fuzz/README.md`).

use crate::choose;
use bytes::BytesMut;
use sockrpc::protocol::frame::{
    encode_cancel, encode_end_capped, encode_goaway_with, encode_headers_with,
    encode_message_end_ok, encode_message_flagged, encode_open_frame, encode_ping, encode_pong,
    encode_settings, encode_settings_with_limit, encode_window, max_frame_len, EndFrame, Frame,
    OpenFrame, HEADER_LEN, MAX_STATUS_DETAILS, MAX_STATUS_MESSAGE,
};
use sockrpc::transport::FrameDecoder;
use sockrpc::Limits;
use tokio_util::codec::Decoder;

/// Input flag: the stream starts with the preface.
pub const EXPECT_PREFACE: u8 = 0x01;

/// The target.
pub fn run(data: &[u8]) {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let preface = config & EXPECT_PREFACE != 0;
    let limits = choose::limits(config >> 1, config >> 3);
    let n = usize::from(config >> 5).min(rest.len());
    let (sizes, stream) = rest.split_at(n);

    let chunked = decode(stream, sizes, preface, limits);
    let whole = decode(stream, &[], preface, limits);
    assert_eq!(
        chunked, whole,
        "the chunking changed what was decoded (sizes {sizes:?})"
    );
    for frame in &whole.frames {
        round_trip(frame, limits);
    }
}

/// Builds an input: `config` (its chunk count bits are set from `sizes`), chunk sizes, stream.
pub fn input(config: u8, sizes: &[u8], stream: &[u8]) -> Vec<u8> {
    let sizes = &sizes[..sizes.len().min(7)];
    let mut input = vec![(config & 0x1f) | ((sizes.len() as u8) << 5)];
    input.extend_from_slice(sizes);
    input.extend_from_slice(stream);
    input
}

/// What decoding a stream produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Frame>,
    failed: bool,
}

fn decode(stream: &[u8], sizes: &[u8], preface: bool, limits: Limits) -> Outcome {
    let mut decoder = if preface {
        FrameDecoder::new(limits)
    } else {
        FrameDecoder::after_preface(limits)
    };
    let most_wanted = max_frame_len(&limits).max(HEADER_LEN);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut turn = 0;
    while !rest.is_empty() {
        let size = match sizes {
            [] => rest.len(),
            _ => usize::from(sizes[turn % sizes.len()]) + 1,
        };
        turn += 1;
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => {
                    return Outcome {
                        frames,
                        failed: true,
                    }
                }
            }
        }
        let wanted = decoder.bytes_wanted(buf.len());
        assert!(
            wanted <= most_wanted,
            "bytes_wanted {wanted} exceeds the largest frame the limits allow ({most_wanted})"
        );
    }
    Outcome {
        frames,
        failed: false,
    }
}

/// Re-encodes `frame` and decodes it again; they must be equal.
fn round_trip(frame: &Frame, limits: Limits) {
    let mut wire = BytesMut::new();
    if !encode(frame, &mut wire) || wire.len() - HEADER_LEN > limits.max_control_frame() {
        return;
    }
    let mut decoder = FrameDecoder::after_preface(limits);
    let back = match decoder.decode(&mut wire) {
        Ok(Some(back)) => back,
        other => panic!("re-encoded {frame:?} does not decode: {other:?}"),
    };
    assert_eq!(&back, frame, "a frame changed in a round trip");
    assert!(wire.is_empty(), "a re-encoded frame left bytes behind");
}

/// Writes `frame` with the protocol's own encoders; `false` for what they cannot write as it is
/// (not a wire frame, or a status text the encoder would cut).
fn encode(frame: &Frame, dst: &mut BytesMut) -> bool {
    match frame {
        Frame::Open {
            call_id,
            timeout,
            path,
            metadata,
            end_stream,
            streaming,
            reissue,
            encoding,
            fold_end,
            message,
            message_compressed,
            charged,
        } => encode_open_frame(
            dst,
            *call_id,
            &OpenFrame {
                timeout: *timeout,
                end_stream: *end_stream,
                client_streams: *streaming,
                reissue: *reissue,
                encoding: *encoding,
                fold_end: *fold_end,
                message: message.as_ref().map(|m| (&m[..], *message_compressed)),
                charged: *charged,
                ..OpenFrame::new(path, metadata)
            },
        ),
        Frame::Headers {
            call_id,
            metadata,
            encoding,
        } => encode_headers_with(dst, *call_id, metadata, *encoding),
        Frame::Message {
            call_id,
            end_stream,
            compressed,
            end_ok,
            body,
        } => match (*end_ok, *end_stream) {
            (false, _) => encode_message_flagged(dst, *call_id, *end_stream, *compressed, body),
            (true, true) => encode_message_end_ok(dst, *call_id, *compressed, body),
            // The encoder always marks a folded answer as the last message.
            (true, false) => return false,
        },
        Frame::End {
            call_id,
            code,
            message,
            details,
            trailers,
            not_processed,
            encoding,
        } => {
            if message.len() > MAX_STATUS_MESSAGE || details.len() > MAX_STATUS_DETAILS {
                return false;
            }
            let end = EndFrame {
                code: *code,
                message,
                details,
                trailers,
                not_processed: *not_processed,
                encoding: *encoding,
            };
            encode_end_capped(dst, *call_id, &end, MAX_STATUS_MESSAGE);
        }
        Frame::Cancel { call_id } => encode_cancel(dst, *call_id),
        Frame::Ping { payload } => encode_ping(dst, *payload),
        Frame::Pong { payload } => encode_pong(dst, *payload),
        Frame::GoAway {
            last_call_id,
            code,
            message,
            retire,
        } => {
            if message.len() > usize::from(u16::MAX) {
                return false;
            }
            encode_goaway_with(dst, *last_call_id, *code, message, *retire);
        }
        Frame::Window { call_id, credit } => encode_window(dst, *call_id, *credit),
        Frame::Settings {
            capabilities,
            max_calls,
            max_metadata,
        } => {
            // Only the capability bits 0..16 travel (a parsed frame never has others).
            if *capabilities > 0xFFFF {
                return false;
            }
            match max_metadata {
                None => encode_settings(dst, *capabilities, usize::from(*max_calls)),
                Some(limit) => encode_settings_with_limit(
                    dst,
                    *capabilities,
                    usize::from(*max_calls),
                    *limit as usize,
                ),
            }
        }
        Frame::Oversized { .. }
        | Frame::MetadataTooLarge { .. }
        | Frame::ControlTooLarge { .. }
        | Frame::InvalidPath { .. } => return false,
    }
    true
}
