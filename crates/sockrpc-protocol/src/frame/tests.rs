//! Frames round-trip and are refused as the format says.

use super::*;
use bytes::BytesMut;

pub(super) fn round_trip(encoded: BytesMut) -> Frame {
    let limits = Limits::default();
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&encoded[..HEADER_LEN]);
    let header = FrameHeader::parse(&head, &limits).expect("header");
    assert_eq!(header.length as usize, encoded.len() - HEADER_LEN);
    let body = Bytes::copy_from_slice(&encoded[HEADER_LEN..]);
    Frame::parse(&header, body, &limits).expect("body")
}

#[test]
fn every_kind_round_trips() {
    let mut metadata = MetadataMap::new();
    metadata.insert_str("k", "v").expect("valid");
    metadata
        .insert_bin("b-bin", vec![0u8, 1, 2].into())
        .expect("valid");
    let path = MethodPath::from_static("/p.S/M");

    let mut buf = BytesMut::new();
    encode_open(
        &mut buf,
        7,
        Some(Duration::from_millis(50)),
        &path,
        &metadata,
        false,
    );
    assert_eq!(
        round_trip(buf),
        Frame::Open {
            call_id: 7,
            timeout: Some(Duration::from_millis(50)),
            path: path.clone(),
            metadata: metadata.clone(),
            end_stream: false,
            streaming: false,
            reissue: None,
            encoding: None,
            fold_end: false,
            message: None,
            message_compressed: false,
            charged: false,
        }
    );

    let mut buf = BytesMut::new();
    encode_reissue(
        &mut buf,
        9,
        None,
        &path,
        &metadata,
        (0xdead_beef_0000_0001, 42),
    );
    assert_eq!(
        round_trip(buf),
        Frame::Open {
            call_id: 9,
            timeout: None,
            path: path.clone(),
            metadata: metadata.clone(),
            end_stream: false,
            streaming: false,
            reissue: Some((0xdead_beef_0000_0001, 42)),
            encoding: None,
            fold_end: false,
            message: None,
            message_compressed: false,
            charged: false,
        }
    );

    let mut buf = BytesMut::new();
    encode_message(&mut buf, 7, true, b"hello");
    assert_eq!(
        round_trip(buf),
        Frame::Message {
            call_id: 7,
            end_stream: true,
            compressed: false,
            end_ok: false,
            body: Bytes::from_static(b"hello")
        }
    );

    let message = "tab\t crlf\r\n astral 𝄞";
    let mut buf = BytesMut::new();
    encode_end(&mut buf, 7, Code::NotFound, message, b"\x00\x01", &metadata);
    assert_eq!(
        round_trip(buf),
        Frame::End {
            call_id: 7,
            code: Code::NotFound,
            message: message.into(),
            details: Bytes::from_static(b"\x00\x01"),
            trailers: metadata.clone(),
            not_processed: false,
            encoding: None,
        }
    );

    // An error with the server's encoding fields after its metadata block.
    let mut buf = BytesMut::new();
    let fields = EncodingFields {
        accept: crate::EncodingSet::EMPTY.with(crate::CompressionEncoding::Zstd),
        send: 0,
    };
    let end = EndFrame {
        code: Code::Unimplemented,
        message: "refused",
        details: b"",
        trailers: &metadata,
        not_processed: false,
        encoding: Some(fields),
    };
    encode_end_capped(&mut buf, 9, &end, MAX_STATUS_MESSAGE);
    assert!(matches!(
        round_trip(buf),
        Frame::End { call_id: 9, code: Code::Unimplemented, encoding: Some(f), .. } if f == fields
    ));

    let mut buf = BytesMut::new();
    encode_end_flagged(
        &mut buf,
        8,
        Code::Unavailable,
        "draining",
        &[],
        &metadata,
        true,
    );
    assert!(matches!(
        round_trip(buf),
        Frame::End {
            call_id: 8,
            not_processed: true,
            ..
        }
    ));

    let mut buf = BytesMut::new();
    encode_goaway(&mut buf, 9, Code::Unavailable, "shutting down");
    assert!(matches!(
        round_trip(buf),
        Frame::GoAway {
            last_call_id: 9,
            retire: false,
            ..
        }
    ));
    let mut buf = BytesMut::new();
    encode_goaway_with(
        &mut buf,
        3,
        Code::Unavailable,
        "idle connection closed",
        true,
    );
    assert!(matches!(
        round_trip(buf),
        Frame::GoAway {
            last_call_id: 3,
            retire: true,
            ..
        }
    ));
    let mut buf = BytesMut::new();
    encode_ping(&mut buf, 42);
    assert_eq!(round_trip(buf), Frame::Ping { payload: 42 });
    let mut buf = BytesMut::new();
    encode_cancel(&mut buf, 3);
    assert_eq!(round_trip(buf), Frame::Cancel { call_id: 3 });
    let mut buf = BytesMut::new();
    encode_window(&mut buf, 3, 65536);
    assert_eq!(
        round_trip(buf),
        Frame::Window {
            call_id: 3,
            credit: 65536
        }
    );
    let mut buf = BytesMut::new();
    encode_headers(&mut buf, 3, &metadata);
    assert_eq!(
        round_trip(buf),
        Frame::Headers {
            call_id: 3,
            metadata: metadata.clone(),
            encoding: None,
        }
    );

    // Encoding fields on OPEN and HEADERS, the COMPRESSED flag on MESSAGE.
    let fields = EncodingFields::new(
        crate::EncodingSet::EMPTY.with(crate::CompressionEncoding::Zstd),
        Some(crate::CompressionEncoding::Gzip),
    );
    let mut buf = BytesMut::new();
    encode_open_frame(
        &mut buf,
        11,
        &OpenFrame {
            client_streams: true,
            encoding: Some(fields),
            ..OpenFrame::new(&path, &metadata)
        },
    );
    assert!(matches!(
        round_trip(buf),
        Frame::Open { call_id: 11, streaming: true, encoding: Some(f), .. } if f == fields
    ));
    let mut buf = BytesMut::new();
    encode_headers_with(&mut buf, 11, &metadata, Some(fields));
    assert_eq!(
        round_trip(buf),
        Frame::Headers {
            call_id: 11,
            metadata,
            encoding: Some(fields),
        }
    );
    let mut buf = BytesMut::new();
    encode_message_flagged(&mut buf, 11, false, true, b"zz");
    assert!(matches!(
        round_trip(buf),
        Frame::Message {
            compressed: true,
            end_stream: false,
            ..
        }
    ));
}

#[test]
fn a_long_status_message_is_cut_and_marked() {
    let limits = Limits::default();
    let long = "é".repeat(20_000); // 40,000 bytes, two per character
    let mut buf = BytesMut::new();
    let end = EndFrame {
        code: Code::Internal,
        message: &long,
        details: b"",
        trailers: &MetadataMap::new(),
        not_processed: false,
        encoding: None,
    };
    encode_end_capped(&mut buf, 1, &end, 1000);
    let Frame::End { message, .. } = round_trip(buf) else {
        panic!("not an END");
    };
    assert!(message.len() <= 1000, "{}", message.len());
    let kept = message.find('…').expect("marked");
    let dropped = long.len() - kept;
    assert!(
        message.ends_with(&format!("… [truncated {dropped} bytes]")),
        "{message}"
    );
    assert!(long.starts_with(&message[..kept]));
    // The default cap, through the plain encoder: 16 KiB, marked.
    let mut buf = BytesMut::new();
    encode_end(&mut buf, 1, Code::Internal, &long, b"", &MetadataMap::new());
    let Frame::End { message, .. } = round_trip(buf) else {
        panic!("not an END");
    };
    assert!(message.len() <= MAX_STATUS_MESSAGE && message.contains("[truncated "));
    // Short messages are untouched; the cap is bounded by the ceiling.
    assert_eq!(truncate_status("short", 5), "short");
    assert_eq!(
        limits
            .with_max_status_message_size(1 << 20)
            .status_message_cap(),
        crate::STATUS_MESSAGE_CEILING
    );
}

/// Details over the limit are dropped, but the handler's message is kept, with a note of what
/// was dropped (it was replaced by the note alone), the whole within the cap.
#[test]
fn details_too_large_keep_the_message_with_a_note() {
    let details = vec![7u8; MAX_STATUS_DETAILS + 1];
    let encode = |message: &str, cap: usize| {
        let mut buf = BytesMut::new();
        let end = EndFrame {
            code: Code::FailedPrecondition,
            message,
            details: &details,
            trailers: &MetadataMap::new(),
            not_processed: false,
            encoding: None,
        };
        encode_end_capped(&mut buf, 1, &end, cap);
        let Frame::End {
            code,
            message,
            details,
            ..
        } = round_trip(buf)
        else {
            panic!("not an END");
        };
        assert_eq!(code, Code::FailedPrecondition);
        assert!(details.is_empty());
        assert!(message.len() <= cap, "{} > {cap}", message.len());
        message
    };
    let note = details_dropped_note(details.len(), MAX_STATUS_DETAILS);
    assert_eq!(
        encode("account locked", 1000),
        format!("account locked {note}")
    );
    // No message of its own: the note alone.
    assert_eq!(encode("", 1000), note);
    // A long message is cut to make room for the note.
    let message = encode(&"x".repeat(5_000), 1000);
    assert!(
        message.starts_with("xxx") && message.ends_with(&note),
        "{message}"
    );
    assert!(message.contains("[truncated "), "{message}");
    // A cap too small for both: the note, cut.
    assert_eq!(encode("account locked", 20), &note[..20]);
}

#[test]
fn hostile_headers_are_refused() {
    let limits = Limits::default();
    let mut head = [0xffu8; HEADER_LEN];
    assert!(FrameHeader::parse(&head, &limits).is_err());
    head = [0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        FrameHeader::parse(&head, &limits),
        Err(FrameError::BadCallId(FrameKind::Message))
    );
    head = [0, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(
        FrameHeader::parse(&head, &limits),
        Err(FrameError::UnknownKind(0x7f))
    );
    head = [0, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 1];
    assert!(matches!(
        FrameHeader::parse(&head, &limits),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn truncated_bodies_are_malformed() {
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    encode_end(&mut buf, 1, Code::Internal, "m", b"", &MetadataMap::new());
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&buf[..HEADER_LEN]);
    let header = FrameHeader::parse(&head, &limits).expect("header");
    for cut in 0..buf.len() - HEADER_LEN {
        let body = Bytes::copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + cut]);
        assert!(
            Frame::parse(&header, body, &limits).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_largest_open_a_client_can_send_fits_the_control_frame_limit() {
    // Every field at its maximum: a 65,535-byte path (its length is a u16), metadata filling the
    // default limit exactly, a re-issue identity, a timeout and encoding fields. It used to be 25
    // bytes over the limit, so a valid call closed its whole connection.
    let limits = Limits::default();
    let method = "m".repeat(usize::from(u16::MAX) - "/p.S/".len());
    let path = MethodPath::try_from_bytes(Bytes::from(format!("/p.S/{method}"))).expect("path");
    assert_eq!(path.as_bytes().len(), usize::from(u16::MAX));
    let mut metadata = MetadataMap::new();
    // The block: a u16 count, then per entry a u8 key length, the key, a u16 value length and
    // the value.
    let value = "v".repeat(limits.max_metadata_size - 1 - 1 - 2 - METADATA_ENTRY_OVERHEAD);
    metadata.insert_str("k", value.as_str()).expect("valid");
    check_metadata(&metadata, &limits).expect("metadata at the limit is accepted");
    let mut wire = BytesMut::new();
    encode_open_frame(
        &mut wire,
        7,
        &OpenFrame {
            timeout: Some(std::time::Duration::from_secs(1)),
            reissue: Some((1, 2)),
            encoding: Some(EncodingFields::new(crate::EncodingSet::default(), None)),
            ..OpenFrame::new(&path, &metadata)
        },
    );
    assert!(
        wire.len() - HEADER_LEN > limits.max_metadata_size - METADATA_ENTRY_OVERHEAD + 64 * 1024
    );
    match round_trip(wire) {
        Frame::Open { path: got, .. } => assert_eq!(got, path),
        other => panic!("expected OPEN, got {other:?}"),
    }
}

#[test]
fn settings_ride_on_a_window_for_call_zero() {
    let mut buf = BytesMut::new();
    encode_settings(&mut buf, CAP_FOLDED_REQUEST | 0x8000, 300);
    assert_eq!(
        &buf[..],
        &[
            0,
            0,
            0,
            4,
            9,
            FLAG_SETTINGS,
            0,
            0,
            0,
            0,
            0,
            0,
            0x01,
            0x2C,
            0x80,
            0x01
        ]
    );
    assert_eq!(
        round_trip(buf),
        Frame::Settings {
            capabilities: CAP_FOLDED_REQUEST | 0x8000,
            max_calls: 300,
            max_metadata: None,
        }
    );
    // A limit past 16 bits is announced as the largest; capability bits past 16 are not sent.
    let mut buf = BytesMut::new();
    encode_settings(&mut buf, CAP_FOLDED_REQUEST | 0x1_0000, 70_000);
    assert_eq!(
        round_trip(buf),
        Frame::Settings {
            capabilities: CAP_FOLDED_REQUEST,
            max_calls: MAX_ANNOUNCED_CALLS,
            max_metadata: None,
        }
    );
    // An older server's SETTINGS: capabilities only, no limit announced.
    let mut buf = BytesMut::new();
    encode_window(&mut buf, 0, CAP_FOLDED_REQUEST);
    buf[5] = FLAG_SETTINGS;
    assert_eq!(
        round_trip(buf),
        Frame::Settings {
            capabilities: CAP_FOLDED_REQUEST,
            max_calls: 0,
            max_metadata: None,
        }
    );
    // A version 1 WINDOW on call 0 is still credit, and the flag means nothing on a call's.
    let mut buf = BytesMut::new();
    encode_window(&mut buf, 0, 7);
    assert_eq!(
        round_trip(buf),
        Frame::Window {
            call_id: 0,
            credit: 7
        }
    );
    let mut buf = BytesMut::new();
    encode_window(&mut buf, 4, 7);
    buf[5] = FLAG_SETTINGS;
    assert_eq!(
        round_trip(buf),
        Frame::Window {
            call_id: 4,
            credit: 7
        }
    );
}

#[test]
fn settings_carry_a_metadata_limit_when_the_peer_reads_one() {
    let mut buf = BytesMut::new();
    encode_settings_with_limit(&mut buf, CAP_METADATA_LIMIT, 300, 20_000);
    assert_eq!(&buf[..4], &[0, 0, 0, 8]);
    assert_eq!(
        round_trip(buf),
        Frame::Settings {
            capabilities: CAP_METADATA_LIMIT,
            max_calls: 300,
            max_metadata: Some(20_000),
        }
    );
    // A limit past 32 bits is announced as the largest; 0 is "not announced".
    let mut buf = BytesMut::new();
    encode_settings_with_limit(&mut buf, 0, 0, usize::MAX);
    assert!(matches!(
        round_trip(buf),
        Frame::Settings {
            max_metadata: Some(u32::MAX),
            ..
        }
    ));
    let mut buf = BytesMut::new();
    encode_settings_with_limit(&mut buf, 0, 0, 0);
    assert!(matches!(
        round_trip(buf),
        Frame::Settings {
            max_metadata: None,
            ..
        }
    ));
    // Later words are skipped; a body not in words, or past 64 bytes, is refused.
    let limits = Limits::default();
    let settings = |len: u32| {
        let mut head = [0u8; HEADER_LEN];
        head[..4].copy_from_slice(&len.to_be_bytes());
        head[4] = 9;
        head[5] = FLAG_SETTINGS;
        FrameHeader::parse(&head, &limits)
    };
    let header = settings(16).expect("16 bytes");
    let mut body = vec![0u8; 16];
    body[7] = 99;
    assert!(matches!(
        Frame::parse(&header, Bytes::from(body), &limits),
        Ok(Frame::Settings {
            max_metadata: Some(99),
            ..
        })
    ));
    let header = settings(6).expect("6 bytes");
    assert!(Frame::parse(&header, Bytes::from(vec![0u8; 6]), &limits).is_err());
    assert!(settings(MAX_SETTINGS_LEN as u32 + 4).is_err());
    // A WINDOW that is not a SETTINGS keeps its 4 bytes.
    let mut head = [0u8; HEADER_LEN];
    head[3] = 8;
    head[4] = 9;
    assert!(FrameHeader::parse(&head, &limits).is_err());
}

#[test]
fn control_frames_over_their_limit_are_skippable_up_to_the_skip_bound() {
    let limits = Limits::default();
    let header = |kind: FrameKind, length: usize| FrameHeader {
        length: length as u32,
        kind,
        flags: 0,
        call_id: 1,
    };
    let open = limits.max_open_frame();
    let control = limits.max_control_frame();
    assert!(!header(FrameKind::Open, open).is_skippable_control(&limits));
    assert!(header(FrameKind::Open, open + 1).is_skippable_control(&limits));
    assert!(header(FrameKind::Headers, control + 1).is_skippable_control(&limits));
    assert!(header(FrameKind::End, control + 1).is_skippable_control(&limits));
    let past = limits.max_skippable_message() + 1;
    assert!(!header(FrameKind::End, past).is_skippable_control(&limits));
    // Connection-level frames are never skipped: too long is a protocol error.
    let goaway = FrameHeader {
        call_id: 0,
        ..header(FrameKind::GoAway, control + 1)
    };
    assert!(!goaway.is_skippable_control(&limits));
    assert!(!header(FrameKind::Cancel, 1).is_skippable_control(&limits));
}
