//! The frame decoder's tests: partial input, refused prefaces and lengths, frames skipped
//! over their limits.

use super::*;
use bytes::{BufMut, Bytes};
use sockrpc_protocol::frame::{encode_message, encode_ping};

fn feed(decoder: &mut FrameDecoder, chunks: &[&[u8]]) -> Result<Vec<Frame>, DecodeError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.put_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf)? {
            out.push(frame);
        }
    }
    Ok(out)
}

#[test]
fn byte_by_byte() {
    let mut wire = BytesMut::new();
    wire.put_slice(&PREFACE);
    encode_message(&mut wire, 1, true, b"abc");
    encode_ping(&mut wire, 9);
    let chunks: Vec<&[u8]> = wire.chunks(1).collect();
    let frames = feed(&mut FrameDecoder::new(Limits::default()), &chunks).expect("decode");
    assert_eq!(
        frames,
        vec![
            Frame::Message {
                call_id: 1,
                end_stream: true,
                compressed: false,
                end_ok: false,
                body: Bytes::from_static(b"abc")
            },
            Frame::Ping { payload: 9 }
        ]
    );
}

#[test]
fn wrong_preface_fails_on_first_byte() {
    let err = feed(&mut FrameDecoder::new(Limits::default()), &[b"G"]).expect_err("bad");
    assert!(matches!(err, DecodeError::Frame(FrameError::BadPreface)));
    let err = feed(&mut FrameDecoder::new(Limits::default()), &[b"SOCKRPC\x09"]).expect_err("v");
    assert!(matches!(
        err,
        DecodeError::Frame(FrameError::UnsupportedVersion(9))
    ));
}

#[test]
fn huge_length_fails_on_four_bytes() {
    let mut decoder = FrameDecoder::after_preface(Limits::default());
    let err = feed(&mut decoder, &[&[0xff, 0xff, 0xff, 0xff]]).expect_err("huge");
    assert!(matches!(
        err,
        DecodeError::Frame(FrameError::TooLong { .. })
    ));
}

#[test]
fn oversized_message_is_skipped() {
    let limits = Limits::default().with_max_message_size(8);
    let mut wire = BytesMut::new();
    encode_message(&mut wire, 3, true, &[7u8; 100]);
    encode_message(&mut wire, 5, true, b"ok");
    let chunks: Vec<&[u8]> = wire.chunks(7).collect();
    let frames = feed(&mut FrameDecoder::after_preface(limits), &chunks).expect("decode");
    assert_eq!(
        frames[0],
        Frame::Oversized {
            call_id: 3,
            length: 100
        }
    );
    assert!(matches!(frames[1], Frame::Message { call_id: 5, .. }));
}

#[test]
fn control_frames_over_their_limit_are_skipped_unread() {
    let limits = Limits::default().with_max_metadata_size(64);
    let open_len = limits.max_open_frame() + 1;
    let mut wire = BytesMut::new();
    // An OPEN (flags: STREAM, which is MORE on a MESSAGE) and an END past their limits,
    // their bodies junk that is never parsed, then a MESSAGE.
    wire.put_slice(&(open_len as u32).to_be_bytes());
    wire.put_slice(&[1, 0x02, 0, 0, 0, 0, 0, 7]);
    wire.put_bytes(0xAB, open_len);
    let end_len = limits.max_control_frame() + 1;
    wire.put_slice(&(end_len as u32).to_be_bytes());
    wire.put_slice(&[4, 0, 0, 0, 0, 0, 0, 9]);
    wire.put_bytes(0xAB, end_len);
    encode_message(&mut wire, 11, true, b"ok");
    let mut decoder = FrameDecoder::after_preface(limits);
    let chunks: Vec<&[u8]> = wire.chunks(4096).collect();
    let frames = feed(&mut decoder, &chunks).expect("decode");
    assert_eq!(
        frames[0],
        Frame::ControlTooLarge {
            kind: FrameKind::Open,
            call_id: 7,
            flags: 0x02,
            length: open_len as u32,
            limit: open_len - 1,
        }
    );
    assert!(matches!(
        frames[1],
        Frame::ControlTooLarge {
            kind: FrameKind::End,
            call_id: 9,
            ..
        }
    ));
    assert!(matches!(frames[2], Frame::Message { call_id: 11, .. }));
    assert_eq!(decoder.piece_bytes(), 0, "an OPEN is no piece of a message");
    // Past the skippable size (and a GOAWAY past its limit) the connection is refused.
    let mut wire = BytesMut::new();
    let past = limits.max_skippable_message() + 1;
    wire.put_slice(&(past as u32).to_be_bytes());
    wire.put_slice(&[2, 0, 0, 0, 0, 0, 0, 1]);
    let mut decoder = FrameDecoder::after_preface(limits);
    assert!(feed(&mut decoder, &[&wire]).is_err());
    let mut wire = BytesMut::new();
    wire.put_slice(&(end_len as u32).to_be_bytes());
    wire.put_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    let mut decoder = FrameDecoder::after_preface(limits);
    assert!(feed(&mut decoder, &[&wire]).is_err());
}
