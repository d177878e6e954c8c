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

use crate::{Code, Limits, MetadataMap, MethodPath};
use bytes::{Buf, BufMut, Bytes, BytesMut};
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

/// Bytes of messages a sender may have outstanding on one streaming call before the receiver
/// grants more with WINDOW. A message may be sent whenever less than this is outstanding, so a
/// single large message is never stuck; the receiver's queue stays under this plus one message.
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
    /// Flow-control credit for a call's stream (or the connection, call id 0).
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
    },
    /// Server's leading metadata.
    Headers {
        /// Call id.
        call_id: u32,
        /// Leading metadata.
        metadata: MetadataMap,
    },
    /// A message.
    Message {
        /// Call id.
        call_id: u32,
        /// The sender's last message on this call.
        end_stream: bool,
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
        /// Call id, or 0 for the connection.
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

fn put_header(dst: &mut BytesMut, length: usize, kind: FrameKind, flags: u8, call_id: u32) {
    dst.put_u32(length as u32);
    dst.put_u8(kind as u8);
    dst.put_u8(flags);
    dst.put_u16(0);
    dst.put_u32(call_id);
}

/// Bytes a metadata block takes on the wire.
///
/// ```text
/// +-------------+---------------------------------------------------+
/// | count: u16  | count × ( key_len: u8 | key | val_len: u16 | val ) |
/// +-------------+---------------------------------------------------+
/// ```
pub fn metadata_len(metadata: &MetadataMap) -> usize {
    2 + metadata
        .iter()
        .map(|(k, v)| 1 + k.len() + 2 + v.len())
        .sum::<usize>()
}

/// Checks that `metadata` fits the wire format and `limits`.
pub fn check_metadata(metadata: &MetadataMap, limits: &Limits) -> Result<(), String> {
    let len = metadata_len(metadata);
    if len > limits.max_metadata_size {
        return Err(format!(
            "metadata of {len} bytes exceeds the limit of {}",
            limits.max_metadata_size
        ));
    }
    if metadata.len() > usize::from(u16::MAX)
        || metadata
            .iter()
            .any(|(_, v)| v.len() > usize::from(u16::MAX))
    {
        return Err("metadata has too many entries or a value over 65535 bytes".into());
    }
    Ok(())
}

fn put_metadata(dst: &mut BytesMut, metadata: &MetadataMap) {
    dst.put_u16(metadata.len() as u16);
    for (key, value) in metadata.iter() {
        dst.put_u8(key.len() as u8);
        dst.put_slice(key.as_bytes());
        dst.put_u16(value.len() as u16);
        dst.put_slice(value);
    }
}

/// Writes an OPEN frame. The caller has checked the metadata with [`check_metadata`].
///
/// ```text
/// +-------------------+---------------+------+----------------+
/// | timeout_us: u64   | path_len: u16 | path | metadata block |
/// +-------------------+---------------+------+----------------+
/// timeout_us = 0: no deadline
/// ```
pub fn encode_open(
    dst: &mut BytesMut,
    call_id: u32,
    timeout: Option<Duration>,
    path: &MethodPath,
    metadata: &MetadataMap,
    end_stream: bool,
) {
    let path = path.as_bytes();
    let len = 8 + 2 + path.len() + metadata_len(metadata);
    dst.reserve(HEADER_LEN + len);
    let flags = if end_stream { FLAG_END_STREAM } else { 0 };
    put_header(dst, len, FrameKind::Open, flags, call_id);
    // Round up so a sub-microsecond timeout still reads as "a deadline", never as "none".
    let micros = timeout.map_or(0, |t| {
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
    });
    dst.put_u64(micros);
    dst.put_u16(path.len() as u16);
    dst.put_slice(path);
    put_metadata(dst, metadata);
}

/// Writes an OPEN frame for a streaming call (`FLAG_STREAM` when the client streams).
pub fn encode_open_streaming(
    dst: &mut BytesMut,
    call_id: u32,
    timeout: Option<Duration>,
    path: &MethodPath,
    metadata: &MetadataMap,
    client_streams: bool,
) {
    let start = dst.len();
    encode_open(dst, call_id, timeout, path, metadata, false);
    if client_streams {
        dst[start + 5] |= FLAG_STREAM;
    }
}

/// Writes an END frame from the client: its half-close after streaming (no status of its own).
pub fn encode_half_close(dst: &mut BytesMut, call_id: u32) {
    encode_end(dst, call_id, Code::Ok, "", &[], &MetadataMap::new());
}

/// Writes a HEADERS frame: a metadata block.
pub fn encode_headers(dst: &mut BytesMut, call_id: u32, metadata: &MetadataMap) {
    let len = metadata_len(metadata);
    dst.reserve(HEADER_LEN + len);
    put_header(dst, len, FrameKind::Headers, 0, call_id);
    put_metadata(dst, metadata);
}

/// Writes a MESSAGE frame: the encoded message as its body.
pub fn encode_message(dst: &mut BytesMut, call_id: u32, end_stream: bool, body: &[u8]) {
    dst.reserve(HEADER_LEN + body.len());
    let flags = if end_stream { FLAG_END_STREAM } else { 0 };
    put_header(dst, body.len(), FrameKind::Message, flags, call_id);
    dst.put_slice(body);
}

/// Writes an END frame. A message or details too long for the format are cut (see
/// [`MAX_STATUS_MESSAGE`], [`MAX_STATUS_DETAILS`]); the caller has checked the trailers.
///
/// ```text
/// +-----------+--------------+---------+------------------+---------+----------------+
/// | code: u32 | msg_len: u32 | message | details_len: u32 | details | metadata block |
/// +-----------+--------------+---------+------------------+---------+----------------+
/// ```
pub fn encode_end(
    dst: &mut BytesMut,
    call_id: u32,
    code: Code,
    message: &str,
    details: &[u8],
    trailers: &MetadataMap,
) {
    let mut message = truncate_utf8(message, MAX_STATUS_MESSAGE);
    let details = if details.len() > MAX_STATUS_DETAILS {
        message = "status details too large to send; dropped";
        &[][..]
    } else {
        details
    };
    let len = 4 + 4 + message.len() + 4 + details.len() + metadata_len(trailers);
    dst.reserve(HEADER_LEN + len);
    put_header(dst, len, FrameKind::End, 0, call_id);
    dst.put_u32(code.as_u32());
    dst.put_u32(message.len() as u32);
    dst.put_slice(message.as_bytes());
    dst.put_u32(details.len() as u32);
    dst.put_slice(details);
    put_metadata(dst, trailers);
}

/// Writes a CANCEL frame (empty body).
pub fn encode_cancel(dst: &mut BytesMut, call_id: u32) {
    put_header(dst, 0, FrameKind::Cancel, 0, call_id);
}

/// Writes a PING frame with an 8-byte payload.
pub fn encode_ping(dst: &mut BytesMut, payload: u64) {
    put_header(dst, 8, FrameKind::Ping, 0, 0);
    dst.put_u64(payload);
}

/// Writes a PONG frame echoing a PING's payload.
pub fn encode_pong(dst: &mut BytesMut, payload: u64) {
    put_header(dst, 8, FrameKind::Pong, 0, 0);
    dst.put_u64(payload);
}

/// Writes a GOAWAY frame.
///
/// ```text
/// +-------------------+-----------+--------------+---------+
/// | last_call_id: u32 | code: u32 | msg_len: u16 | message |
/// +-------------------+-----------+--------------+---------+
/// ```
pub fn encode_goaway(dst: &mut BytesMut, last_call_id: u32, code: Code, message: &str) {
    let message = truncate_utf8(message, usize::from(u16::MAX));
    let len = 4 + 4 + 2 + message.len();
    put_header(dst, len, FrameKind::GoAway, 0, 0);
    dst.put_u32(last_call_id);
    dst.put_u32(code.as_u32());
    dst.put_u16(message.len() as u16);
    dst.put_slice(message.as_bytes());
}

/// Writes a WINDOW frame granting `credit` more bytes.
pub fn encode_window(dst: &mut BytesMut, call_id: u32, credit: u32) {
    put_header(dst, 4, FrameKind::Window, 0, call_id);
    dst.put_u32(credit);
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A cursor over a frame body that reports short reads as a malformed frame of `kind`.
struct Body {
    kind: FrameKind,
    buf: Bytes,
}

impl Body {
    fn need(&self, n: usize) -> Result<(), FrameError> {
        if self.buf.remaining() < n {
            return Err(self.malformed("body ends early"));
        }
        Ok(())
    }

    fn malformed(&self, reason: &'static str) -> FrameError {
        FrameError::Malformed {
            kind: self.kind,
            reason,
        }
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        self.need(2)?;
        Ok(self.buf.get_u16())
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, FrameError> {
        self.need(n)?;
        Ok(self.buf.split_to(n))
    }

    fn metadata(&mut self, limits: &Limits) -> Result<MetadataMap, FrameError> {
        let start = self.buf.remaining();
        let count = self.u16()?;
        let mut map = MetadataMap::new();
        for _ in 0..count {
            let key_len = usize::from(self.u8()?);
            let key = self.bytes(key_len)?;
            let value_len = usize::from(self.u16()?);
            let value = self.bytes(value_len)?;
            if start - self.buf.remaining() > limits.max_metadata_size {
                return Err(self.malformed("metadata exceeds the limit"));
            }
            map.push_wire(&key, value)
                .map_err(|_| self.malformed("invalid metadata key or value"))?;
        }
        Ok(map)
    }

    fn finish(&self) -> Result<(), FrameError> {
        if self.buf.has_remaining() {
            return Err(self.malformed("trailing bytes after the body"));
        }
        Ok(())
    }
}

impl Frame {
    /// Parses a body whose header has passed [`FrameHeader::parse`].
    pub fn parse(header: &FrameHeader, body: Bytes, limits: &Limits) -> Result<Frame, FrameError> {
        let call_id = header.call_id;
        let end_stream = header.flags & FLAG_END_STREAM != 0;
        let mut body = Body {
            kind: header.kind,
            buf: body,
        };
        let frame = match header.kind {
            FrameKind::Open => {
                let micros = body.u64()?;
                let path_len = usize::from(body.u16()?);
                let path = body.bytes(path_len)?;
                let path = MethodPath::try_from_bytes(path)
                    .map_err(|_| body.malformed("invalid method path"))?;
                let metadata = body.metadata(limits)?;
                Frame::Open {
                    call_id,
                    timeout: (micros != 0).then(|| Duration::from_micros(micros)),
                    path,
                    metadata,
                    end_stream,
                    streaming: header.flags & FLAG_STREAM != 0,
                }
            }
            FrameKind::Headers => Frame::Headers {
                call_id,
                metadata: body.metadata(limits)?,
            },
            FrameKind::Message => {
                return Ok(Frame::Message {
                    call_id,
                    end_stream,
                    body: body.buf,
                })
            }
            FrameKind::End => {
                let code = Code::from_u32(body.u32()?);
                let len = body.u32()? as usize;
                let message = body.bytes(len)?;
                let message = String::from_utf8_lossy(&message).into_owned();
                let len = body.u32()? as usize;
                let details = body.bytes(len)?;
                let trailers = body.metadata(limits)?;
                Frame::End {
                    call_id,
                    code,
                    message,
                    details,
                    trailers,
                }
            }
            FrameKind::Cancel => Frame::Cancel { call_id },
            FrameKind::Ping => Frame::Ping {
                payload: body.u64()?,
            },
            FrameKind::Pong => Frame::Pong {
                payload: body.u64()?,
            },
            FrameKind::GoAway => {
                let last_call_id = body.u32()?;
                let code = Code::from_u32(body.u32()?);
                let len = usize::from(body.u16()?);
                let message = body.bytes(len)?;
                Frame::GoAway {
                    last_call_id,
                    code,
                    message: String::from_utf8_lossy(&message).into_owned(),
                }
            }
            FrameKind::Window => Frame::Window {
                call_id,
                credit: body.u32()?,
            },
        };
        body.finish()?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                streaming: false
            }
        );

        let mut buf = BytesMut::new();
        encode_message(&mut buf, 7, true, b"hello");
        assert_eq!(
            round_trip(buf),
            Frame::Message {
                call_id: 7,
                end_stream: true,
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
                trailers: metadata.clone()
            }
        );

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
                metadata
            }
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
