//! OPEN's flags and its folded request message, encoded and parsed back.

use super::tests::round_trip;
use super::*;
use bytes::BytesMut;

#[test]
fn charged_round_trips_and_is_off_by_default() {
    let path = MethodPath::from_static("/p.S/M");
    let metadata = MetadataMap::new();
    let mut buf = BytesMut::new();
    encode_open_frame(
        &mut buf,
        3,
        &OpenFrame {
            client_streams: true,
            charged: true,
            ..OpenFrame::new(&path, &metadata)
        },
    );
    assert_eq!(buf[5], FLAG_STREAM | FLAG_CHARGED);
    assert!(matches!(
        round_trip(buf),
        Frame::Open {
            streaming: true,
            charged: true,
            ..
        }
    ));
    let mut buf = BytesMut::new();
    encode_open_frame(&mut buf, 5, &OpenFrame::new(&path, &metadata));
    assert!(matches!(
        round_trip(buf),
        Frame::Open { charged: false, .. }
    ));
}

#[test]
fn fold_end_and_end_ok_round_trip() {
    let path = MethodPath::from_static("/p.S/M");
    let metadata = MetadataMap::new();
    let mut buf = BytesMut::new();
    encode_open_frame(
        &mut buf,
        3,
        &OpenFrame {
            fold_end: true,
            ..OpenFrame::new(&path, &metadata)
        },
    );
    assert!(matches!(
        round_trip(buf),
        Frame::Open { fold_end: true, .. }
    ));
    let mut buf = BytesMut::new();
    encode_message_end_ok(&mut buf, 3, false, b"answer");
    assert_eq!(
        round_trip(buf),
        Frame::Message {
            call_id: 3,
            end_stream: true,
            compressed: false,
            end_ok: true,
            body: Bytes::from_static(b"answer"),
        }
    );
}

#[test]
fn a_folded_request_message_round_trips_after_the_encoding_fields() {
    let mut metadata = MetadataMap::new();
    metadata.insert_str("k", "v").expect("valid");
    let path = MethodPath::from_static("/p.S/M");
    let fields = EncodingFields::new(
        crate::EncodingSet::EMPTY.with(crate::CompressionEncoding::Gzip),
        Some(crate::CompressionEncoding::Gzip),
    );
    for (message, compressed) in [(&b"request"[..], true), (&b""[..], false)] {
        let mut buf = BytesMut::new();
        encode_open_frame(
            &mut buf,
            5,
            &OpenFrame {
                timeout: Some(Duration::from_millis(20)),
                encoding: Some(fields),
                fold_end: true,
                message: Some((message, compressed)),
                ..OpenFrame::new(&path, &metadata)
            },
        );
        assert_eq!(
            buf[5],
            FLAG_MESSAGE
                | FLAG_END_STREAM
                | FLAG_ENCODING
                | FLAG_FOLD_END
                | if compressed {
                    FLAG_MESSAGE_COMPRESSED
                } else {
                    0
                }
        );
        assert_eq!(
            round_trip(buf),
            Frame::Open {
                call_id: 5,
                timeout: Some(Duration::from_millis(20)),
                path: path.clone(),
                metadata: metadata.clone(),
                end_stream: true,
                streaming: false,
                reissue: None,
                encoding: Some(fields),
                fold_end: true,
                message: Some(Bytes::copy_from_slice(message)),
                message_compressed: compressed,
                charged: false,
            }
        );
    }
}

#[test]
fn a_folded_message_on_a_streaming_or_open_ended_call_is_malformed() {
    let limits = Limits::default();
    let path = MethodPath::from_static("/p.S/M");
    let mut buf = BytesMut::new();
    encode_open(&mut buf, 3, None, &path, &MetadataMap::new(), false);
    buf.extend_from_slice(b"msg");
    let body_len = (buf.len() - HEADER_LEN) as u32;
    buf[..4].copy_from_slice(&body_len.to_be_bytes());
    for flags in [FLAG_MESSAGE, FLAG_MESSAGE | FLAG_END_STREAM | FLAG_STREAM] {
        buf[5] = flags;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&buf[..HEADER_LEN]);
        let header = FrameHeader::parse(&head, &limits).expect("header");
        let body = Bytes::copy_from_slice(&buf[HEADER_LEN..]);
        assert!(
            matches!(
                Frame::parse(&header, body, &limits),
                Err(FrameError::Malformed {
                    kind: FrameKind::Open,
                    ..
                })
            ),
            "flags {flags:#04x}"
        );
    }
    // Without FLAG_MESSAGE the same trailing bytes are what they always were: an error.
    buf[5] = FLAG_END_STREAM;
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&buf[..HEADER_LEN]);
    let header = FrameHeader::parse(&head, &limits).expect("header");
    assert!(Frame::parse(&header, Bytes::copy_from_slice(&buf[HEADER_LEN..]), &limits).is_err());
}

#[test]
fn an_open_may_carry_the_largest_folded_message_and_not_a_byte_more() {
    let limits = Limits::default();
    let method = "m".repeat(usize::from(u16::MAX) - "/p.S/".len());
    let path = MethodPath::try_from_bytes(Bytes::from(format!("/p.S/{method}"))).expect("path");
    let mut metadata = MetadataMap::new();
    let value = "v".repeat(limits.max_metadata_size - 1 - 1 - 2 - METADATA_ENTRY_OVERHEAD);
    metadata.insert_str("k", value.as_str()).expect("valid");
    let message = vec![7u8; MAX_FOLDED_MESSAGE];
    let mut wire = BytesMut::new();
    encode_open_frame(
        &mut wire,
        7,
        &OpenFrame {
            timeout: Some(Duration::from_secs(1)),
            reissue: Some((1, 2)),
            encoding: Some(EncodingFields::new(crate::EncodingSet::default(), None)),
            fold_end: true,
            message: Some((&message, false)),
            ..OpenFrame::new(&path, &metadata)
        },
    );
    assert!(wire.len() - HEADER_LEN <= limits.max_open_frame());
    match round_trip(wire) {
        Frame::Open { message: got, .. } => assert_eq!(got.as_deref(), Some(&message[..])),
        other => panic!("expected OPEN, got {other:?}"),
    }
    // One byte more of message, within the OPEN's length limit still, is malformed.
    let mut wire = BytesMut::new();
    let over = vec![7u8; MAX_FOLDED_MESSAGE + 1];
    encode_open_frame(
        &mut wire,
        9,
        &OpenFrame {
            message: Some((&over, false)),
            ..OpenFrame::new(&MethodPath::from_static("/p.S/M"), &MetadataMap::new())
        },
    );
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&wire[..HEADER_LEN]);
    let header = FrameHeader::parse(&head, &limits).expect("within the OPEN limit");
    assert!(matches!(
        Frame::parse(
            &header,
            Bytes::copy_from_slice(&wire[HEADER_LEN..]),
            &limits
        ),
        Err(FrameError::Malformed {
            kind: FrameKind::Open,
            ..
        })
    ));
    let too_long = (limits.max_open_frame() + 1) as u32;
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&too_long.to_be_bytes());
    head[4] = FrameKind::Open as u8;
    head[8..].copy_from_slice(&1u32.to_be_bytes());
    assert!(matches!(
        FrameHeader::parse(&head, &limits),
        Err(FrameError::TooLong {
            kind: FrameKind::Open,
            ..
        })
    ));
}
