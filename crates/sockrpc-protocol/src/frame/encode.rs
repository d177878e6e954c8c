//! Writing frames: every encoder appends one whole frame to a buffer.

use super::metadata_block::{metadata_len, put_metadata};
use super::{
    FrameKind, FLAG_CHARGED, FLAG_COMPRESSED, FLAG_ENCODING, FLAG_END_OK, FLAG_END_STREAM,
    FLAG_FOLD_END, FLAG_MESSAGE, FLAG_MESSAGE_COMPRESSED, FLAG_NOT_PROCESSED, FLAG_REISSUE,
    FLAG_SETTINGS, FLAG_STREAM, HEADER_LEN, MAX_ANNOUNCED_CALLS, MAX_STATUS_DETAILS,
    MAX_STATUS_MESSAGE,
};
use crate::encoding::ENCODING_FIELDS_LEN;
use crate::{Code, EncodingFields, MetadataMap, MethodPath};
use bytes::{BufMut, BytesMut};
use std::time::Duration;

fn put_header(dst: &mut BytesMut, length: usize, kind: FrameKind, flags: u8, call_id: u32) {
    dst.put_slice(&header_bytes(length, kind, flags, call_id));
}

/// A frame header's bytes, built on the stack so that it goes out with one copy (a `put_*` per
/// field checked the buffer's room five times).
fn header_bytes(length: usize, kind: FrameKind, flags: u8, call_id: u32) -> [u8; HEADER_LEN] {
    let mut head = [0u8; HEADER_LEN];
    head[..4].copy_from_slice(&(length as u32).to_be_bytes());
    head[4] = kind as u8;
    head[5] = flags;
    head[8..].copy_from_slice(&call_id.to_be_bytes());
    head
}

/// Every field of an OPEN frame, for [`encode_open_frame`].
#[derive(Debug, Clone, Copy)]
pub struct OpenFrame<'a> {
    /// How long the client waits; `None`: no deadline.
    pub timeout: Option<Duration>,
    /// `/package.Service/Method`.
    pub path: &'a MethodPath,
    /// Request metadata (checked with [`check_metadata`](super::check_metadata)).
    pub metadata: &'a MetadataMap,
    /// `FLAG_END_STREAM`: the client sends no message.
    pub end_stream: bool,
    /// `FLAG_STREAM`: the client streams its request.
    pub client_streams: bool,
    /// `FLAG_REISSUE`: the UDP call `(instance, udp_call_id)` this call re-issues.
    pub reissue: Option<(u64, u32)>,
    /// `FLAG_ENCODING`: what the client accepts and sends with.
    pub encoding: Option<EncodingFields>,
    /// `FLAG_FOLD_END`: the client reads an OK end folded into the answer's MESSAGE.
    pub fold_end: bool,
    /// `FLAG_MESSAGE` (with `FLAG_END_STREAM`): the call's one request message, folded into
    /// the OPEN, and whether it is compressed (`FLAG_MESSAGE_COMPRESSED`). Only toward a server
    /// that announced `CAP_FOLDED_REQUEST`, and at most `MAX_FOLDED_MESSAGE` bytes.
    pub message: Option<(&'a [u8], bool)>,
    /// `FLAG_CHARGED`: the client credits streamed messages as their `message_charge`.
    pub charged: bool,
}

impl<'a> OpenFrame<'a> {
    /// A plain unary OPEN of `path`: no deadline, no flags, no encoding fields.
    pub fn new(path: &'a MethodPath, metadata: &'a MetadataMap) -> OpenFrame<'a> {
        OpenFrame {
            timeout: None,
            path,
            metadata,
            end_stream: false,
            client_streams: false,
            reissue: None,
            encoding: None,
            fold_end: false,
            message: None,
            charged: false,
        }
    }
}

/// Writes an OPEN frame. The caller has checked the metadata with [`check_metadata`](super::check_metadata).
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
    encode_open_frame(
        dst,
        call_id,
        &OpenFrame {
            timeout,
            end_stream,
            ..OpenFrame::new(path, metadata)
        },
    );
}

/// Writes the OPEN of a TCP re-issue of UDP call `reissue = (instance, udp_call_id)`
/// (`FLAG_REISSUE`; the UDP identity comes first in the body).
///
/// ```text
/// +----------------+--------------------+-----------------+---------------+------+----------+
/// | instance: u64  | udp_call_id: u32   | timeout_us: u64 | path_len: u16 | path | metadata |
/// +----------------+--------------------+-----------------+---------------+------+----------+
/// ```
pub fn encode_reissue(
    dst: &mut BytesMut,
    call_id: u32,
    timeout: Option<Duration>,
    path: &MethodPath,
    metadata: &MetadataMap,
    reissue: (u64, u32),
) {
    encode_open_frame(
        dst,
        call_id,
        &OpenFrame {
            timeout,
            reissue: Some(reissue),
            ..OpenFrame::new(path, metadata)
        },
    );
}

/// Writes an OPEN frame with every field given; the encoding fields, when present, follow
/// the metadata block (`FLAG_ENCODING`), and a folded request message ends the body
/// (`FLAG_MESSAGE`).
///
/// ```text
/// +-------------------------+-----------------+---------------+------+----------+-------------------+-----------+
/// | [instance | udp_call_id]| timeout_us: u64 | path_len: u16 | path | metadata | [encoding fields] | [message] |
/// +-------------------------+-----------------+---------------+------+----------+-------------------+-----------+
/// ```
pub fn encode_open_frame(dst: &mut BytesMut, call_id: u32, open: &OpenFrame<'_>) {
    put_open_head(dst, call_id, open, true);
    if let Some((message, _)) = open.message {
        dst.put_slice(message);
    }
}

/// Writes an OPEN frame as [`encode_open_frame`] does, all but the folded message's bytes: its
/// length counts them, and the caller appends them next (from where they are, with a vectored
/// write, rather than copied here).
pub fn encode_open_frame_head(dst: &mut BytesMut, call_id: u32, open: &OpenFrame<'_>) {
    put_open_head(dst, call_id, open, false);
}

/// An OPEN frame's header and body but the folded message; room for the message too when
/// `with_message`, so that one reservation covers the whole frame.
fn put_open_head(dst: &mut BytesMut, call_id: u32, open: &OpenFrame<'_>, with_message: bool) {
    let path = open.path.as_bytes();
    let extra = if open.reissue.is_some() { 12 } else { 0 };
    let tail = if open.encoding.is_some() {
        ENCODING_FIELDS_LEN
    } else {
        0
    };
    let folded = open.message.map_or(0, |(message, _)| message.len());
    let len = extra + 8 + 2 + path.len() + metadata_len(open.metadata) + tail + folded;
    let mut flags = 0;
    if open.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if open.client_streams {
        flags |= FLAG_STREAM;
    }
    if open.reissue.is_some() {
        flags |= FLAG_REISSUE;
    }
    if open.encoding.is_some() {
        flags |= FLAG_ENCODING;
    }
    if open.fold_end {
        flags |= FLAG_FOLD_END;
    }
    if open.charged {
        flags |= FLAG_CHARGED;
    }
    if let Some((_, compressed)) = open.message {
        flags |= FLAG_MESSAGE | FLAG_END_STREAM;
        if compressed {
            flags |= FLAG_MESSAGE_COMPRESSED;
        }
    }
    dst.reserve(HEADER_LEN + len - if with_message { 0 } else { folded });
    // The fixed-size fields go out in one copy from the stack.
    let mut fixed = [0u8; HEADER_LEN + 12 + 8 + 2];
    fixed[..HEADER_LEN].copy_from_slice(&header_bytes(len, FrameKind::Open, flags, call_id));
    let mut at = HEADER_LEN;
    if let Some((instance, udp_call_id)) = open.reissue {
        fixed[at..at + 8].copy_from_slice(&instance.to_be_bytes());
        fixed[at + 8..at + 12].copy_from_slice(&udp_call_id.to_be_bytes());
        at += 12;
    }
    // Round up so a sub-microsecond timeout still reads as "a deadline", never as "none".
    let micros = open.timeout.map_or(0, |t| {
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
    });
    fixed[at..at + 8].copy_from_slice(&micros.to_be_bytes());
    fixed[at + 8..at + 10].copy_from_slice(&(path.len() as u16).to_be_bytes());
    dst.put_slice(&fixed[..at + 10]);
    dst.put_slice(path);
    if open.metadata.is_empty() {
        // Nearly every call's: the block's count alone, without a call to write it.
        dst.put_u16(0);
    } else {
        put_metadata(dst, open.metadata);
    }
    if let Some(encoding) = &open.encoding {
        encoding.put(dst);
    }
}

/// Writes SETTINGS: a WINDOW on call 0 with `FLAG_SETTINGS`, whose `u32` holds the sender's
/// limit of calls in flight (`max_calls`, at most `MAX_ANNOUNCED_CALLS`: a larger limit is
/// announced as that) and its capability bits (`CAP_FOLDED_REQUEST`; only the low 16 bits are
/// sent). A server sends it once, right after its preface.
///
/// ```text
/// header: length 4, kind WINDOW, flags SETTINGS (0x20), call id 0
/// +-----------------+-------------------+
/// | max calls: u16  | capabilities: u16 |
/// +-----------------+-------------------+
/// ```
pub fn encode_settings(dst: &mut BytesMut, capabilities: u32, max_calls: usize) {
    let max_calls = u16::try_from(max_calls).unwrap_or(MAX_ANNOUNCED_CALLS);
    dst.reserve(HEADER_LEN + 4);
    put_header(dst, 4, FrameKind::Window, FLAG_SETTINGS, 0);
    dst.put_u32(u32::from(max_calls) << 16 | capabilities & 0xFFFF);
}

/// [`encode_settings`] with the sender's metadata limit `limit` as a second word (`u32::MAX`
/// for that or more), only to a peer whose SETTINGS had [`CAP_METADATA_LIMIT`](super::CAP_METADATA_LIMIT)
/// (an older peer takes a WINDOW of 8 bytes for a protocol error).
pub fn encode_settings_with_limit(dst: &mut BytesMut, caps: u32, calls: usize, limit: usize) {
    let calls = u16::try_from(calls).unwrap_or(MAX_ANNOUNCED_CALLS);
    dst.reserve(HEADER_LEN + 8);
    put_header(dst, 8, FrameKind::Window, FLAG_SETTINGS, 0);
    dst.put_u32(u32::from(calls) << 16 | caps & 0xFFFF);
    dst.put_u32(u32::try_from(limit).unwrap_or(u32::MAX));
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
    encode_open_frame(
        dst,
        call_id,
        &OpenFrame {
            timeout,
            client_streams,
            ..OpenFrame::new(path, metadata)
        },
    );
}

/// Writes an END frame from the client: its half-close after streaming (no status of its own).
pub fn encode_half_close(dst: &mut BytesMut, call_id: u32) {
    encode_end(dst, call_id, Code::Ok, "", &[], &MetadataMap::new());
}

/// Writes a HEADERS frame: a metadata block.
pub fn encode_headers(dst: &mut BytesMut, call_id: u32, metadata: &MetadataMap) {
    encode_headers_with(dst, call_id, metadata, None);
}

/// Writes a HEADERS frame: a metadata block, then the server's encoding fields when given
/// (`FLAG_ENCODING`; only toward a client whose OPEN carried its own).
///
/// ```text
/// +----------------+-------------------+
/// | metadata block | [encoding fields] |
/// +----------------+-------------------+
/// ```
pub fn encode_headers_with(
    dst: &mut BytesMut,
    call_id: u32,
    metadata: &MetadataMap,
    encoding: Option<EncodingFields>,
) {
    let tail = if encoding.is_some() {
        ENCODING_FIELDS_LEN
    } else {
        0
    };
    let len = metadata_len(metadata) + tail;
    dst.reserve(HEADER_LEN + len);
    let flags = if encoding.is_some() { FLAG_ENCODING } else { 0 };
    put_header(dst, len, FrameKind::Headers, flags, call_id);
    put_metadata(dst, metadata);
    if let Some(encoding) = encoding {
        encoding.put(dst);
    }
}

/// Writes a MESSAGE frame: the encoded message as its body.
pub fn encode_message(dst: &mut BytesMut, call_id: u32, end_stream: bool, body: &[u8]) {
    encode_message_flagged(dst, call_id, end_stream, false, body);
}

/// Writes a MESSAGE frame, with `FLAG_COMPRESSED` when `compressed` (the body is compressed
/// with the encoding this side named in its encoding fields).
pub fn encode_message_flagged(
    dst: &mut BytesMut,
    call_id: u32,
    end_stream: bool,
    compressed: bool,
    body: &[u8],
) {
    dst.reserve(HEADER_LEN + body.len());
    encode_message_head(dst, call_id, end_stream, compressed, body.len());
    dst.put_slice(body);
}

/// Writes the header of a MESSAGE frame whose body of `body_len` bytes the caller appends next
/// (see [`encode_open_frame_head`]).
pub fn encode_message_head(
    dst: &mut BytesMut,
    call_id: u32,
    end_stream: bool,
    compressed: bool,
    body_len: usize,
) {
    let mut flags = if end_stream { FLAG_END_STREAM } else { 0 };
    if compressed {
        flags |= FLAG_COMPRESSED;
    }
    dst.reserve(HEADER_LEN);
    put_header(dst, body_len, FrameKind::Message, flags, call_id);
}

/// Writes the header of a MESSAGE frame with `flags` as given: a piece of a split message
/// (`FLAG_MORE`), or its last, which carries the whole message's flags. The caller appends
/// `body_len` bytes next.
pub fn encode_message_head_flags(dst: &mut BytesMut, call_id: u32, flags: u8, body_len: usize) {
    dst.reserve(HEADER_LEN);
    put_header(dst, body_len, FrameKind::Message, flags, call_id);
}

/// A MESSAGE frame's header with `flags`, for a body of `body_len` bytes, as bytes: for a writer
/// that gathers it with the body in one vectored write without copying either (a split
/// message's pieces, `Outbox` in sockrpc-transport).
pub fn message_head(call_id: u32, flags: u8, body_len: usize) -> [u8; HEADER_LEN] {
    header_bytes(body_len, FrameKind::Message, flags, call_id)
}

/// Writes a unary call's whole OK answer in one frame: a MESSAGE with `FLAG_END_OK` (and
/// `FLAG_END_STREAM`), for a call whose OPEN had `FLAG_FOLD_END` and whose answer has no
/// trailing metadata: the END that would follow is folded into it.
pub fn encode_message_end_ok(dst: &mut BytesMut, call_id: u32, compressed: bool, body: &[u8]) {
    dst.reserve(HEADER_LEN + body.len());
    encode_message_end_ok_head(dst, call_id, compressed, body.len());
    dst.put_slice(body);
}

/// Writes the header of [`encode_message_end_ok`]'s frame, whose body of `body_len` bytes the
/// caller appends next (see [`encode_open_frame_head`]).
pub fn encode_message_end_ok_head(
    dst: &mut BytesMut,
    call_id: u32,
    compressed: bool,
    body_len: usize,
) {
    let mut flags = FLAG_END_STREAM | FLAG_END_OK;
    if compressed {
        flags |= FLAG_COMPRESSED;
    }
    dst.reserve(HEADER_LEN);
    put_header(dst, body_len, FrameKind::Message, flags, call_id);
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
    encode_end_flagged(dst, call_id, code, message, details, trailers, false);
}

/// Writes an END frame, with `FLAG_NOT_PROCESSED` when `not_processed`: the server refused the
/// call before starting it.
pub fn encode_end_flagged(
    dst: &mut BytesMut,
    call_id: u32,
    code: Code,
    message: &str,
    details: &[u8],
    trailers: &MetadataMap,
    not_processed: bool,
) {
    let end = EndFrame {
        code,
        message,
        details,
        trailers,
        not_processed,
        encoding: None,
    };
    encode_end_capped(dst, call_id, &end, MAX_STATUS_MESSAGE);
}

/// Every field of an END frame, for [`encode_end_capped`].
#[derive(Debug, Clone, Copy)]
pub struct EndFrame<'a> {
    /// Status code.
    pub code: Code,
    /// Status message (cut and marked past the cap).
    pub message: &'a str,
    /// Status details (dropped, with a note, past [`MAX_STATUS_DETAILS`]).
    pub details: &'a [u8],
    /// Trailing metadata (checked by the caller).
    pub trailers: &'a MetadataMap,
    /// `FLAG_NOT_PROCESSED`.
    pub not_processed: bool,
    /// `FLAG_ENCODING`: the server's encoding fields, after the metadata block (only toward a
    /// client whose OPEN carried its own).
    pub encoding: Option<EncodingFields>,
}

/// Writes an END frame whose message is cut to `message_cap` bytes (see [`truncate_status`]).
pub fn encode_end_capped(dst: &mut BytesMut, call_id: u32, end: &EndFrame<'_>, message_cap: usize) {
    let (message, details) = if end.details.len() > MAX_STATUS_DETAILS {
        let note = details_dropped_note(end.details.len(), MAX_STATUS_DETAILS);
        (noted_status(end.message, &note, message_cap), &[][..])
    } else {
        (truncate_status(end.message, message_cap), end.details)
    };
    let tail = if end.encoding.is_some() {
        ENCODING_FIELDS_LEN
    } else {
        0
    };
    let len = 4 + 4 + message.len() + 4 + details.len() + metadata_len(end.trailers) + tail;
    dst.reserve(HEADER_LEN + len);
    let mut flags = if end.not_processed {
        FLAG_NOT_PROCESSED
    } else {
        0
    };
    if end.encoding.is_some() {
        flags |= FLAG_ENCODING;
    }
    put_header(dst, len, FrameKind::End, flags, call_id);
    dst.put_u32(end.code.as_u32());
    dst.put_u32(message.len() as u32);
    dst.put_slice(message.as_bytes());
    dst.put_u32(details.len() as u32);
    dst.put_slice(details);
    put_metadata(dst, end.trailers);
    if let Some(fields) = end.encoding {
        fields.put(dst);
    }
}

/// `message` cut to at most `cap` bytes: when it is longer, cut at a character boundary and
/// marked with what was dropped, `… [truncated N bytes]`, the whole within `cap`. (A cap
/// too small for the mark gets a plain cut.)
pub fn truncate_status(message: &str, cap: usize) -> std::borrow::Cow<'_, str> {
    if message.len() <= cap {
        return message.into();
    }
    // The mark is longest when the most is dropped: size it for the whole message.
    let widest = format!("… [truncated {} bytes]", message.len()).len();
    if cap < widest {
        return truncate_utf8(message, cap).into();
    }
    let kept = truncate_utf8(message, cap - widest);
    let dropped = message.len() - kept.len();
    format!("{kept}… [truncated {dropped} bytes]").into()
}

/// What a status message says when its details were over `limit` and dropped.
pub fn details_dropped_note(len: usize, limit: usize) -> String {
    format!("[status details of {len} bytes over the limit of {limit}; dropped]")
}

/// `message` with `note` after it (the handler's words are kept: only what it sent could not
/// go), cut so that the whole is within `cap`; the note alone when `cap` leaves no room.
pub fn noted_status<'a>(message: &str, note: &str, cap: usize) -> std::borrow::Cow<'a, str> {
    let room = cap.saturating_sub(note.len() + 1);
    if message.is_empty() || room == 0 {
        return truncate_utf8(note, cap).to_owned().into();
    }
    format!("{} {note}", truncate_status(message, room)).into()
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
    encode_goaway_with(dst, last_call_id, code, message, false);
}

/// Writes a GOAWAY frame, with [`FLAG_RETIRE`](super::FLAG_RETIRE) when `retire` (a server
/// retiring an idle or old connection, not refusing it).
pub fn encode_goaway_with(
    dst: &mut BytesMut,
    last_call_id: u32,
    code: Code,
    message: &str,
    retire: bool,
) {
    let message = truncate_utf8(message, usize::from(u16::MAX));
    let len = 4 + 4 + 2 + message.len();
    let flags = if retire { super::FLAG_RETIRE } else { 0 };
    put_header(dst, len, FrameKind::GoAway, flags, 0);
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

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
