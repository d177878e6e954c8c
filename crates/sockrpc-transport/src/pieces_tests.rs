//! Split messages through the frame decoder: put back together, bounded, refused interleaved.

use crate::codec::{DecodeError, FrameDecoder};
use bytes::{BufMut, Bytes, BytesMut};
use sockrpc_protocol::frame::{
    encode_message, encode_message_head_flags, Frame, FrameError, FLAG_COMPRESSED, FLAG_END_STREAM,
    FLAG_MORE, MIN_PIECE,
};
use sockrpc_protocol::Limits;
use tokio_util::codec::Decoder;

/// Appends one MESSAGE frame with `flags` as given.
fn put(wire: &mut BytesMut, call_id: u32, flags: u8, body: &[u8]) {
    encode_message_head_flags(wire, call_id, flags, body.len());
    wire.put_slice(body);
}

/// Decodes `wire` fed in `step`-byte reads: the frames, or the first error.
fn decode(decoder: &mut FrameDecoder, wire: &[u8], step: usize) -> Result<Vec<Frame>, DecodeError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in wire.chunks(step) {
        buf.put_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf)? {
            out.push(frame);
        }
    }
    Ok(out)
}

fn message(frame: &Frame) -> (u32, bool, bool, &Bytes) {
    match frame {
        Frame::Message {
            call_id,
            end_stream,
            compressed,
            body,
            ..
        } => (*call_id, *end_stream, *compressed, body),
        other => panic!("not a MESSAGE: {other:?}"),
    }
}

#[test]
fn pieces_come_out_whole_and_other_calls_pass_between_them() {
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE | FLAG_COMPRESSED, &[1u8; 70_000]);
    encode_message(&mut wire, 5, true, b"small");
    put(&mut wire, 3, FLAG_MORE | FLAG_COMPRESSED, &[2u8; 70_000]);
    put(&mut wire, 3, FLAG_END_STREAM | FLAG_COMPRESSED, &[3u8; 10]);
    for step in [1, 7, 4096, 1 << 20] {
        let mut decoder = FrameDecoder::after_preface(Limits::default());
        let frames = decode(&mut decoder, &wire, step).expect("decode");
        assert_eq!(frames.len(), 2, "step {step}");
        let (id, end, _, body) = message(&frames[0]);
        assert_eq!((id, end, &body[..]), (5, true, &b"small"[..]));
        let (id, end, compressed, body) = message(&frames[1]);
        assert_eq!((id, end, compressed, body.len()), (3, true, true, 140_010));
        assert!(body[..70_000].iter().all(|b| *b == 1));
        assert!(body[70_000..140_000].iter().all(|b| *b == 2));
        assert!(body[140_000..].iter().all(|b| *b == 3));
        assert!(!decoder.mid_frame(0), "nothing is left open");
    }
}

#[test]
fn a_split_message_holds_its_call_open_between_frames() {
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE, &[1u8; MIN_PIECE]);
    let mut decoder = FrameDecoder::after_preface(Limits::default());
    assert!(decode(&mut decoder, &wire, 1 << 20)
        .expect("decode")
        .is_empty());
    // Nothing buffered, but a message is half-read: the frame timer must run.
    assert!(decoder.mid_frame(0));
}

#[test]
fn pieces_of_two_messages_interleaved_are_a_protocol_error() {
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE, &[1u8; MIN_PIECE]);
    put(&mut wire, 5, FLAG_MORE, &[1u8; MIN_PIECE]);
    let mut decoder = FrameDecoder::after_preface(Limits::default());
    let err = decode(&mut decoder, &wire, 1 << 20).expect_err("interleaved");
    assert!(
        matches!(
            err,
            DecodeError::Frame(FrameError::Interleaved { open: 3, got: 5 })
        ),
        "{err:?}"
    );
}

#[test]
fn a_split_message_over_the_limit_is_reported_once_and_the_rest_skipped() {
    let limits = Limits::default().with_max_message_size(100_000);
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE, &[1u8; 65_536]);
    put(&mut wire, 3, FLAG_MORE, &[1u8; 65_536]);
    put(&mut wire, 3, FLAG_MORE, &[1u8; 65_536]);
    put(&mut wire, 3, 0, &[1u8; 10]);
    // The call's next message, and another call's piece: both read normally.
    encode_message(&mut wire, 3, true, b"after");
    put(&mut wire, 7, FLAG_MORE, &[b'x'; MIN_PIECE]);
    put(&mut wire, 7, 0, b"y");
    let mut decoder = FrameDecoder::after_preface(limits);
    let frames = decode(&mut decoder, &wire, 4096).expect("decode");
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(
        frames[0],
        Frame::Oversized {
            call_id: 3,
            length: 131_072
        }
    );
    assert_eq!(message(&frames[1]).3, &b"after"[..]);
    let (id, _, _, body) = message(&frames[2]);
    assert_eq!(
        (id, body.len(), body.last()),
        (7, MIN_PIECE + 1, Some(&b'y'))
    );
}

#[test]
fn a_first_piece_over_the_limit_skips_the_whole_message() {
    // A peer that splits at 64 KiB, to a receiver whose limit is 1 KiB.
    let limits = Limits::default().with_max_message_size(1024);
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE, &[1u8; 65_536]);
    put(&mut wire, 3, FLAG_END_STREAM, &[1u8; 500]);
    encode_message(&mut wire, 9, true, b"ok");
    let mut decoder = FrameDecoder::after_preface(limits);
    let frames = decode(&mut decoder, &wire, 1000).expect("decode");
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(
        frames[0],
        Frame::Oversized {
            call_id: 3,
            length: 65_536
        }
    );
    assert_eq!(message(&frames[1]).0, 9);
}

#[test]
fn what_a_split_message_holds_stays_within_the_limit() {
    let max = 200_000;
    let mut pieces = super::Pieces::default();
    let mut held = 0;
    let sizes = [65_536, 65_536, 65_536, 3_392];
    for (i, size) in sizes.iter().enumerate() {
        let last = i + 1 == sizes.len();
        let header = sockrpc_protocol::frame::FrameHeader {
            length: *size as u32,
            kind: sockrpc_protocol::frame::FrameKind::Message,
            flags: if last { 0 } else { FLAG_MORE },
            call_id: 3,
        };
        assert_eq!(
            pieces.admit(&header, max).expect("admit"),
            super::Admit::Read
        );
        let whole = pieces.take(&header, Bytes::from(vec![0u8; *size]));
        if let Some(open) = &pieces.open {
            // Written (resident) within the limit; the allocation at most doubles past it.
            held = open.body.as_ref().map_or(0, Vec::len);
            let capacity = open.body.as_ref().map_or(0, Vec::capacity);
            assert!(held <= max, "held {held} past the limit");
            assert!(capacity <= 2 * max, "allocated {capacity}");
        }
        assert_eq!(whole.map(|b| b.len()), last.then_some(max));
    }
    assert!(held > 0);
}

#[test]
fn a_piece_before_the_last_carries_only_more_and_the_same_compressed() {
    let refused = |pieces: &[(u8, usize)]| {
        let mut wire = BytesMut::new();
        for (flags, len) in pieces {
            put(&mut wire, 3, *flags, &vec![1u8; *len]);
        }
        let mut decoder = FrameDecoder::after_preface(Limits::default());
        match decode(&mut decoder, &wire, 4096) {
            Err(DecodeError::Frame(FrameError::BadPiece { call_id: 3, reason })) => reason,
            other => panic!("{pieces:?}: not refused: {other:?}"),
        }
    };
    for flags in [FLAG_END_STREAM, 0x04, 0x10, 0x20, 0x40, 0x80] {
        let reason = refused(&[(FLAG_MORE | flags, 10)]);
        assert!(reason.contains("flags other than MORE"), "{reason}");
    }
    for pieces in [
        [
            (FLAG_MORE, MIN_PIECE),
            (FLAG_MORE | FLAG_COMPRESSED, MIN_PIECE),
        ],
        [
            (FLAG_MORE | FLAG_COMPRESSED, MIN_PIECE),
            (FLAG_END_STREAM, 10),
        ],
    ] {
        let reason = refused(&pieces);
        assert!(reason.contains("COMPRESSED differs"), "{reason}");
    }
    // An empty last piece with the message's COMPRESSED ends it (a sender giving up on it).
    let mut wire = BytesMut::new();
    put(&mut wire, 3, FLAG_MORE | FLAG_COMPRESSED, &[1u8; MIN_PIECE]);
    put(&mut wire, 3, FLAG_COMPRESSED, &[]);
    let mut decoder = FrameDecoder::after_preface(Limits::default());
    let frames = decode(&mut decoder, &wire, 4096).expect("decode");
    assert_eq!(message(&frames[0]).3.len(), MIN_PIECE);
    // A piece before the last shorter than MIN_PIECE: a sender dripping bytes to hold the
    // assembly (and the frame clock) open. One byte short is enough; the empty last piece
    // above is not a piece before the last.
    for len in [0, 1, MIN_PIECE - 1] {
        let reason = refused(&[(FLAG_MORE, len)]);
        assert!(reason.contains("shorter than 16 KiB"), "{len}: {reason}");
    }
    assert!(!decoder.assembling());
}

#[test]
fn later_pieces_of_a_message_whose_assembly_has_room_make_no_more() {
    // After a 1 MiB message, the next one's assembly is sized for it when its first piece is
    // read; its later pieces then need no room beyond that allocation, so they can be read
    // straight into it however far the assembly is from its end.
    let max = 4 << 20;
    let mut pieces = super::Pieces::default();
    let piece = |flags: u8| sockrpc_protocol::frame::FrameHeader {
        length: 64 * 1024,
        kind: sockrpc_protocol::frame::FrameKind::Message,
        flags,
        call_id: 3,
    };
    for round in 0..2 {
        for i in 0..16 {
            let header = piece(if i == 15 { 0 } else { FLAG_MORE });
            assert_eq!(
                pieces.admit(&header, max).expect("admit"),
                super::Admit::Read
            );
            let beyond = pieces.room_beyond_held(&header).expect("a piece");
            if round == 1 && i > 0 {
                assert_eq!(beyond, 0, "piece {i} would make room");
            }
            let _ = pieces.take(&header, Bytes::from(vec![0u8; 64 * 1024]));
        }
    }
}
