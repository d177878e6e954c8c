//! Wire protocol v1: the preface, the frame header and every frame's body.
//!
//! A connection starts with an 8-byte preface from each side, then carries frames in both
//! directions. See `docs/PROTOCOL.md` for the whole exchange; the layouts are drawn here too,
//! beside the code that writes them. All integers are big-endian.
//!
//! ```text
//! Preface (8 bytes, sent first by both sides)
//! +---+---+---+---+---+---+---+---------+
//! | S | O | C | K | R | P | C | version |   version = 1
//! +---+---+---+---+---+---+---+---------+
//!
//! Frame header (12 bytes), then `length` bytes of body
//!  0               4       5       6               8               12
//! +---------------+-------+-------+---------------+---------------+
//! |  length: u32  | kind  | flags | reserved: u16 | call id: u32  |
//! +---------------+-------+-------+---------------+---------------+
//! ```

use crate::{Code, EncodingFields, Limits, MetadataMap, MethodPath};
use bytes::{Buf, Bytes};
use std::time::Duration;

/// The preface's magic, before the version byte.
pub const MAGIC: &[u8; 7] = b"SOCKRPC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// The whole preface: magic and version.
pub const PREFACE: [u8; 8] = [b'S', b'O', b'C', b'K', b'R', b'P', b'C', VERSION];
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 12;

/// Flag on MESSAGE (and OPEN): the sender sends nothing more on this call (half-close).
pub const FLAG_END_STREAM: u8 = 0x01;
/// Flag on OPEN: the client streams its request (client-streaming or bidi): the server starts
/// the handler at once instead of waiting for a single request message.
pub const FLAG_STREAM: u8 = 0x02;
/// Flag on OPEN: the call re-issues, over TCP, a UDP call whose answer did not fit a datagram.
/// The body then starts with the UDP call's identity (`instance: u64`, `udp_call_id: u32`), and
/// the server answers from its UDP reply cache instead of running the call again. A protocol
/// field, so no user metadata can fake or strip it.
pub const FLAG_REISSUE: u8 = 0x04;
/// Flag on END: the server refused the call before starting it (shutting down), so the client
/// may send it again. Only the server's connection sets it, never a handler's status.
pub const FLAG_NOT_PROCESSED: u8 = 0x04;
/// Flag on MESSAGE: the body is compressed with the encoding its sender named in the `send`
/// field of its encoding fields (the client's OPEN, the server's HEADERS). Only ever set toward
/// a peer whose own encoding fields accept that encoding.
pub const FLAG_COMPRESSED: u8 = 0x08;
/// Flag on OPEN and HEADERS: the body ends with encoding fields ([`EncodingFields`]: what the
/// sender accepts, what it sends with). A side that never sent them is never sent them.
pub const FLAG_ENCODING: u8 = 0x08;

/// Bytes of messages a sender may have outstanding on one streaming call before the receiver
/// grants more with WINDOW. A message may be sent whenever less than this is outstanding, so a
/// single large message is never stuck; with a sender that honours it, the receiver's queue stays
/// under this plus one message (`flow::Inbound::push` in the transport refuses a MESSAGE once more
/// than this plus the message limit is queued).
pub const STREAM_WINDOW: usize = 64 * 1024;

/// Longest status message carried; longer ones are cut at a character boundary.
pub const MAX_STATUS_MESSAGE: usize = 16 * 1024;
/// Longest status details carried; longer ones are dropped with a note in the message.
pub const MAX_STATUS_DETAILS: usize = 32 * 1024;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Client opens a call: method path, timeout, metadata.
    Open = 1,
    /// Server's leading metadata for a call.
    Headers = 2,
    /// One message of a call, either direction.
    Message = 3,
    /// Server ends a call: status and trailing metadata.
    End = 4,
    /// Client abandons a call; the server stops its handler.
    Cancel = 5,
    /// Liveness probe; answered with PONG carrying the same 8 bytes.
    Ping = 6,
    /// Answer to PING.
    Pong = 7,
    /// The sender will accept no calls above `last_call_id`; the connection is draining.
    GoAway = 8,
    /// Flow-control credit for a call's stream. Version 1 has no connection-level window: a
    /// WINDOW with call id 0 passes the header check and is ignored by both ends.
    Window = 9,
}

impl FrameKind {
    /// The kind for a byte, if it names one.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        Some(match byte {
            1 => FrameKind::Open,
            2 => FrameKind::Headers,
            3 => FrameKind::Message,
            4 => FrameKind::End,
            5 => FrameKind::Cancel,
            6 => FrameKind::Ping,
            7 => FrameKind::Pong,
            8 => FrameKind::GoAway,
            9 => FrameKind::Window,
            _ => return None,
        })
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Body length in bytes.
    pub length: u32,
    /// Frame kind.
    pub kind: FrameKind,
    /// Kind-specific flags.
    pub flags: u8,
    /// The call the frame belongs to; 0 for connection-level frames.
    pub call_id: u32,
}

/// A frame that could not be accepted; the connection that sent it is closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The peer's first bytes are not our preface.
    #[error("bad preface: peer does not speak sockrpc")]
    BadPreface,
    /// The peer speaks another version of the protocol.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0:#04x}")]
    UnknownKind(u8),
    /// Reserved header bits were set.
    #[error("reserved header field is {0:#06x}, must be 0")]
    Reserved(u16),
    /// A body longer than any limit allows for its kind.
    #[error("{kind:?} frame of {length} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Frame kind.
        kind: FrameKind,
        /// Announced body length.
        length: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The body does not parse as its kind says.
    #[error("malformed {kind:?} frame: {reason}")]
    Malformed {
        /// Frame kind.
        kind: FrameKind,
        /// What was wrong.
        reason: &'static str,
    },
    /// A call-level frame with call id 0, or a connection-level one with another id.
    #[error("{0:?} frame has the wrong call id")]
    BadCallId(FrameKind),
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A call opens.
    Open {
        /// Call id, chosen by the client, never 0.
        call_id: u32,
        /// How long the client waits, relative to now; `None` for no deadline.
        timeout: Option<Duration>,
        /// `/package.Service/Method`.
        path: MethodPath,
        /// Request metadata.
        metadata: MetadataMap,
        /// The client sends no messages on this call.
        end_stream: bool,
        /// The client streams its request (`FLAG_STREAM`).
        streaming: bool,
        /// `FLAG_REISSUE`: the UDP call (`instance`, `udp_call_id`) this call re-issues.
        reissue: Option<(u64, u32)>,
        /// `FLAG_ENCODING`: what the client accepts and sends with.
        encoding: Option<EncodingFields>,
    },
    /// Server's leading metadata.
    Headers {
        /// Call id.
        call_id: u32,
        /// Leading metadata.
        metadata: MetadataMap,
        /// `FLAG_ENCODING`: what the server accepts and sends with.
        encoding: Option<EncodingFields>,
    },
    /// A message.
    Message {
        /// Call id.
        call_id: u32,
        /// The sender's last message on this call.
        end_stream: bool,
        /// `FLAG_COMPRESSED`: the body is compressed with the sender's named encoding.
        compressed: bool,
        /// The encoded message.
        body: Bytes,
    },
    /// A call ends.
    End {
        /// Call id.
        call_id: u32,
        /// Status code; `Ok` on success.
        code: Code,
        /// Status message.
        message: String,
        /// Status details.
        details: Bytes,
        /// Trailing metadata.
        trailers: MetadataMap,
        /// `FLAG_NOT_PROCESSED`: the server refused the call before starting it.
        not_processed: bool,
    },
    /// The client abandons a call.
    Cancel {
        /// Call id.
        call_id: u32,
    },
    /// Liveness probe.
    Ping {
        /// Echoed in the PONG.
        payload: u64,
    },
    /// Answer to a PING.
    Pong {
        /// The PING's payload.
        payload: u64,
    },
    /// The sender is draining.
    GoAway {
        /// Highest call id the sender will still serve.
        last_call_id: u32,
        /// Why.
        code: Code,
        /// Why, for people.
        message: String,
    },
    /// Flow-control credit.
    Window {
        /// Call id (0 is accepted on the wire and ignored: there is no connection window).
        call_id: u32,
        /// Bytes the receiver can take beyond what it granted before.
        credit: u32,
    },
    /// Not a wire frame: a MESSAGE larger than the receiver's limit, whose body was read and
    /// thrown away so that only its call fails (`ResourceExhausted`), not the connection.
    Oversized {
        /// Call id.
        call_id: u32,
        /// The announced body length.
        length: u32,
    },
}

impl FrameHeader {
    /// Parses and checks a header against `limits`. Runs on the 12 header bytes alone, so a
    /// hostile length is refused before any of its body is buffered.
    pub fn parse(bytes: &[u8; HEADER_LEN], limits: &Limits) -> Result<FrameHeader, FrameError> {
        let mut buf = &bytes[..];
        let length = buf.get_u32();
        let kind_byte = buf.get_u8();
        let flags = buf.get_u8();
        let reserved = buf.get_u16();
        let call_id = buf.get_u32();
        let kind = FrameKind::from_u8(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        if reserved != 0 {
            return Err(FrameError::Reserved(reserved));
        }
        check_length(kind, u64::from(length), limits)?;
        let connection_level =
            matches!(kind, FrameKind::Ping | FrameKind::Pong | FrameKind::GoAway);
        let id_ok = match kind {
            FrameKind::Window => true,
            _ if connection_level => call_id == 0,
            _ => call_id != 0,
        };
        if !id_ok {
            return Err(FrameError::BadCallId(kind));
        }
        Ok(FrameHeader {
            length,
            kind,
            flags,
            call_id,
        })
    }

    /// Whether this is a MESSAGE whose body exceeds the message limit but may be skipped.
    pub fn is_oversized_message(&self, limits: &Limits) -> bool {
        self.kind == FrameKind::Message && self.length as usize > limits.max_message_size
    }
}

/// Checks the length announced for a frame of `kind` against `limits`; usable as soon as the
/// first 4 header bytes are in, before the rest of the header arrives.
pub fn check_length(kind: FrameKind, length: u64, limits: &Limits) -> Result<(), FrameError> {
    let limit = match kind {
        FrameKind::Message => limits.max_skippable_message(),
        FrameKind::Cancel => 0,
        FrameKind::Ping | FrameKind::Pong => 8,
        FrameKind::Window => 4,
        _ => limits.max_control_frame(),
    };
    if length > limit as u64 {
        return Err(FrameError::TooLong {
            kind,
            length,
            limit,
        });
    }
    Ok(())
}

/// The largest body any frame may announce under `limits`: a longer length prefix is refused
/// from its first four bytes.
pub fn max_frame_len(limits: &Limits) -> usize {
    limits
        .max_skippable_message()
        .max(limits.max_control_frame())
}

pub(crate) mod encode;
mod parse;

pub use encode::*;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn round_trip(encoded: BytesMut) -> Frame {
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
        metadata.insert("k", "v").expect("valid");
        metadata
            .insert_bin("b-bin", vec![0u8, 1, 2])
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
            }
        );

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
}
