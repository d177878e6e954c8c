//! The UDP datagram format, version 1: one datagram carries one whole unary call or its answer.
//!
//! All integers are big-endian. `docs/UDP.md` describes the exchanges; the layouts are here,
//! beside the code that writes and reads them.
//!
//! ```text
//! Header (32 bytes), then the kind's body up to the end of the datagram
//!  0       1         2      3       4                               12              16
//! +-------+---------+------+-------+-------------------------------+---------------+
//! | magic | version | kind | flags |      client_instance: u64     | call_id: u32  |
//! +-------+---------+------+-------+-------------------------------+---------------+
//! 16                                                                               32
//! +--------------------------------------------------------------------------------+
//! |                               cookie: 16 bytes                                 |
//! +--------------------------------------------------------------------------------+
//! magic = 0x55 ('U'), version = 0x01
//!
//! REQUEST body (c→s): OPEN's body, then the message up to the end of the datagram; with
//! FLAG_DONE_BELOW, the client's watermark between timeout and path
//! +-----------------+---------------------------+---------------+------+----------------+---------+
//! | timeout_us: u64 | [done_below: u32, if flag] | path_len: u16 | path | metadata block | message |
//! +-----------------+---------------------------+---------------+------+----------------+---------+
//!
//! REPLY body (s→c): the status, both metadata blocks, then the message up to the end
//! +-----------+--------------+---------+------------------+---------+---------+----------+---------+
//! | code: u32 | msg_len: u16 | message | details_len: u16 | details | leading | trailing | message |
//! +-----------+--------------+---------+------------------+---------+---------+----------+---------+
//!
//! TRUNCATED, COOKIE, PENDING (s→c): header only.   COOKIE_REQUEST (c→s): header, then zero padding.
//! ```
//!
//! The metadata block is the TCP protocol's (`docs/PROTOCOL.md`), and is validated by the same
//! parser, so a key or value refused over TCP is refused here too.

use crate::frame::{self, Frame, FrameHeader, FrameKind, MAX_STATUS_MESSAGE};
use crate::{Code, Limits, MetadataMap, MethodPath, PathCache, Response, Status};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::{fmt, time::Duration};

/// First byte of every datagram.
pub const MAGIC: u8 = 0x55;
/// The datagram format version this crate speaks.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 32;
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// Offset of the cookie in the header (the client rewrites it in place when it learns a new one).
pub const COOKIE_OFFSET: usize = 16;
/// Offset of a REQUEST's `timeout_us` (rewritten in place on each retransmission).
pub const TIMEOUT_OFFSET: usize = HEADER_LEN;
/// The default largest datagram: 1232 bytes is what fits the IPv6 minimum MTU (1280) after the
/// IPv6 and UDP headers, so no datagram ever depends on IP fragmentation (as DNS flag day 2020).
pub const DEFAULT_MAX_DATAGRAM: usize = 1232;
/// Length a client pads a COOKIE_REQUEST to. A COOKIE is only [`HEADER_LEN`] today; the padding
/// leaves a later version room to grow the COOKIE without breaking the one-to-one size rule.
pub const COOKIE_REQUEST_LEN: usize = 64;
/// Server → client flag: the request carried no valid cookie; the header's cookie is a fresh one.
pub const FLAG_STALE_COOKIE: u8 = 0x01;
/// TRUNCATED flag: the reply fits a datagram and was held back only because the source had no
/// valid cookie; re-sending the same call with the cookie from this header fetches it.
pub const FLAG_FITS: u8 = 0x02;
/// Server → client flag, on every datagram of a server that reads REQUEST watermarks: the client
/// may send [`FLAG_DONE_BELOW`] (a server that does not set it drops REQUESTs with flags).
pub const FLAG_ACKS: u8 = 0x04;
/// REQUEST flag: the body carries `done_below: u32` after the timeout: every call id of this
/// client instance before it (in serial order, RFC 1982) is finished for the client, which
/// will never send it again. The server forgets their answers at once instead of keeping them
/// for the reply cache's whole ttl, and refuses a late duplicate of one.
pub const FLAG_DONE_BELOW: u8 = 0x04;
/// REPLY flag: the call did not run (the server's reply cache was full), and the REPLY's
/// status is `UNAVAILABLE`. Sending the call again, over UDP or TCP, cannot run it twice, so a
/// client may do so at once, as it retries a TCP call refused unstarted (END's
/// `NOT_PROCESSED`); a handler's own status never carries it.
pub const FLAG_NOT_PROCESSED: u8 = 0x08;
/// REPLY flag, with [`FLAG_NOT_PROCESSED`]: the call did not run because another address owns
/// this client instance on the server. The client should draw a fresh instance for its new
/// calls. A protocol field, not the status's text, so that no message wording is a signal.
pub const FLAG_FOREIGN_INSTANCE: u8 = 0x10;
/// Longest status details a REPLY carries (its length is a u16); longer ones are dropped.
pub const MAX_REPLY_DETAILS: usize = u16::MAX as usize;

/// A cookie: proof that a source address received something from this server.
pub type Cookie = [u8; COOKIE_LEN];

/// What a datagram is. Server → client kinds have the high bit set, so the rule "never answer
/// an answer" is one bit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Client → server: a unary call.
    Request = 0x01,
    /// Client → server: asks for a cookie; padded to [`COOKIE_REQUEST_LEN`].
    CookieRequest = 0x02,
    /// Server → client: the call's answer, success or error.
    Reply = 0x81,
    /// Server → client: the answer did not fit (or may not be sent yet); re-issue over TCP.
    Truncated = 0x82,
    /// Server → client: the cookie, in the header.
    Cookie = 0x83,
    /// Server → client: a retransmitted call is still running; its answer will follow. Tells
    /// the client the path works, so a slow handler is not mistaken for loss.
    Pending = 0x84,
}

impl Kind {
    /// The kind for a byte, if it names one.
    pub fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::Request,
            0x02 => Kind::CookieRequest,
            0x81 => Kind::Reply,
            0x82 => Kind::Truncated,
            0x83 => Kind::Cookie,
            0x84 => Kind::Pending,
            _ => return None,
        })
    }

    /// Whether servers send this kind (and so must never answer it).
    pub fn is_from_server(self) -> bool {
        self as u8 & 0x80 != 0
    }
}

/// Why a datagram was refused. Every refusal is a silent drop, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramError {
    /// Shorter than the header.
    Short,
    /// The first byte is not [`MAGIC`].
    BadMagic,
    /// Another version of the format.
    UnsupportedVersion(u8),
    /// Unknown kind byte.
    UnknownKind(u8),
    /// The body does not parse as its kind says.
    Malformed(&'static str),
}

impl fmt::Display for DatagramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramError::Short => write!(f, "datagram shorter than the {HEADER_LEN}-byte header"),
            DatagramError::BadMagic => f.write_str("bad magic byte"),
            DatagramError::UnsupportedVersion(v) => write!(f, "unsupported datagram version {v}"),
            DatagramError::UnknownKind(k) => write!(f, "unknown datagram kind {k:#04x}"),
            DatagramError::Malformed(reason) => write!(f, "malformed datagram: {reason}"),
        }
    }
}

impl std::error::Error for DatagramError {}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the datagram is.
    pub kind: Kind,
    /// Kind-specific flags.
    pub flags: u8,
    /// The client's random identity, fixed for its lifetime; with `call_id` it names a call.
    pub client_instance: u64,
    /// The call (0 for the cookie exchange).
    pub call_id: u32,
    /// The client's cookie (all zero: none), or the server's fresh cookie for the receiver.
    pub cookie: Cookie,
}

impl Header {
    /// Parses the first [`HEADER_LEN`] bytes of `datagram`.
    pub fn parse(datagram: &[u8]) -> Result<Header, DatagramError> {
        let Some(mut buf) = datagram.get(..HEADER_LEN) else {
            return Err(DatagramError::Short);
        };
        if buf.get_u8() != MAGIC {
            return Err(DatagramError::BadMagic);
        }
        let version = buf.get_u8();
        if version != VERSION {
            return Err(DatagramError::UnsupportedVersion(version));
        }
        let kind_byte = buf.get_u8();
        let kind = Kind::from_u8(kind_byte).ok_or(DatagramError::UnknownKind(kind_byte))?;
        let flags = buf.get_u8();
        let client_instance = buf.get_u64();
        let call_id = buf.get_u32();
        let mut cookie = [0u8; COOKIE_LEN];
        buf.copy_to_slice(&mut cookie);
        Ok(Header {
            kind,
            flags,
            client_instance,
            call_id,
            cookie,
        })
    }

    /// Appends the header to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(HEADER_LEN);
        dst.put_u8(MAGIC);
        dst.put_u8(VERSION);
        dst.put_u8(self.kind as u8);
        dst.put_u8(self.flags);
        dst.put_u64(self.client_instance);
        dst.put_u32(self.call_id);
        dst.put_slice(&self.cookie);
    }
}

/// A parsed REQUEST body.
#[derive(Debug, Clone)]
pub struct RequestBody {
    /// What the client will still wait, relative to receipt; `None`: no deadline.
    pub timeout: Option<Duration>,
    /// The method.
    pub path: MethodPath,
    /// Request metadata.
    pub metadata: MetadataMap,
    /// The encoded request message.
    pub message: Bytes,
    /// [`FLAG_DONE_BELOW`]'s watermark, when the REQUEST carried one.
    pub done_below: Option<u32>,
}

fn timeout_micros(timeout: Option<Duration>) -> u64 {
    // Round up so a sub-microsecond timeout still reads as "a deadline", never as "none".
    timeout.map_or(0, |t| {
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX).max(1)
    })
}

/// Bytes a REQUEST datagram takes, header included, with a watermark (4 bytes more than
/// without: what decides whether a call fits must not depend on the server).
pub fn request_len(path: &MethodPath, metadata: &MetadataMap, message: &[u8]) -> usize {
    HEADER_LEN + 8 + 4 + 2 + path.as_bytes().len() + frame::metadata_len(metadata) + message.len()
}

/// Writes a REQUEST datagram, with [`FLAG_DONE_BELOW`] set and the watermark written when
/// `done_below` is given. The caller has checked the metadata with [`frame::check_metadata`].
pub fn encode_request(
    dst: &mut BytesMut,
    header: &Header,
    timeout: Option<Duration>,
    done_below: Option<u32>,
    path: &MethodPath,
    metadata: &MetadataMap,
    message: &[u8],
) {
    dst.reserve(request_len(path, metadata, message));
    let mut header = *header;
    match done_below {
        Some(_) => header.flags |= FLAG_DONE_BELOW,
        None => header.flags &= !FLAG_DONE_BELOW,
    }
    header.encode(dst);
    dst.put_u64(timeout_micros(timeout));
    if let Some(done_below) = done_below {
        dst.put_u32(done_below);
    }
    let path = path.as_bytes();
    dst.put_u16(path.len() as u16);
    dst.put_slice(path);
    frame::metadata_block::put_metadata(dst, metadata);
    dst.put_slice(message);
}

/// Rewrites a REQUEST datagram's timeout in place (a retransmission carries what is left).
pub fn set_timeout(datagram: &mut [u8], timeout: Option<Duration>) {
    if let Some(slot) = datagram.get_mut(TIMEOUT_OFFSET..TIMEOUT_OFFSET + 8) {
        slot.copy_from_slice(&timeout_micros(timeout).to_be_bytes());
    }
}

/// Rewrites a datagram's cookie in place.
pub fn set_cookie(datagram: &mut [u8], cookie: &Cookie) {
    if let Some(slot) = datagram.get_mut(COOKIE_OFFSET..COOKIE_OFFSET + COOKIE_LEN) {
        slot.copy_from_slice(cookie);
    }
}

/// Writes a COOKIE_REQUEST, padded with zeros to [`COOKIE_REQUEST_LEN`].
pub fn encode_cookie_request(dst: &mut BytesMut, client_instance: u64) {
    Header {
        kind: Kind::CookieRequest,
        flags: 0,
        client_instance,
        call_id: 0,
        cookie: [0; COOKIE_LEN],
    }
    .encode(dst);
    dst.put_bytes(0, COOKIE_REQUEST_LEN - HEADER_LEN);
}

/// A cursor over a body that reports short reads as malformed.
struct Cursor(Bytes);

impl Cursor {
    fn need(&self, n: usize) -> Result<(), DatagramError> {
        if self.0.remaining() < n {
            return Err(DatagramError::Malformed("body ends early"));
        }
        Ok(())
    }

    fn u16(&mut self) -> Result<u16, DatagramError> {
        self.need(2)?;
        Ok(self.0.get_u16())
    }

    fn u32(&mut self) -> Result<u32, DatagramError> {
        self.need(4)?;
        Ok(self.0.get_u32())
    }

    fn u64(&mut self) -> Result<u64, DatagramError> {
        self.need(8)?;
        Ok(self.0.get_u64())
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DatagramError> {
        self.need(n)?;
        Ok(self.0.split_to(n))
    }

    /// A metadata block: its extent is found here, its contents are checked by the TCP
    /// protocol's own parser (one set of rules for keys and values on both transports).
    fn metadata(&mut self, limits: &Limits) -> Result<MetadataMap, DatagramError> {
        let block = &self.0[..];
        let mut at = 2usize;
        let count = match block.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => return Err(DatagramError::Malformed("metadata block ends early")),
        };
        if count == 0 {
            // Most blocks: nothing to check, nothing to build (the frame parser below costs
            // ~280 instructions even for an empty block).
            self.0.advance(2);
            return Ok(MetadataMap::new());
        }
        for _ in 0..count {
            let key_len = usize::from(
                *block
                    .get(at)
                    .ok_or(DatagramError::Malformed("metadata block ends early"))?,
            );
            at += 1 + key_len;
            let value_len = match block.get(at..at + 2) {
                Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
                None => return Err(DatagramError::Malformed("metadata block ends early")),
            };
            at += 2 + value_len;
            if at > block.len() {
                return Err(DatagramError::Malformed("metadata block ends early"));
            }
            if at > limits.max_metadata_size.saturating_add(2) {
                return Err(DatagramError::Malformed("metadata exceeds the limit"));
            }
        }
        let block = self.0.split_to(at);
        let header = FrameHeader {
            length: at as u32,
            kind: FrameKind::Headers,
            flags: 0,
            call_id: 1,
        };
        match Frame::parse(&header, block, limits) {
            Ok(Frame::Headers { metadata, .. }) => Ok(metadata),
            // A datagram is one call: its metadata past the limit refuses it whole.
            Ok(Frame::MetadataTooLarge { .. }) => {
                Err(DatagramError::Malformed("metadata exceeds the limit"))
            }
            _ => Err(DatagramError::Malformed("invalid metadata key or value")),
        }
    }
}

/// Parses a REQUEST body (the datagram after its header); `flags` are the header's.
pub fn parse_request(
    body: Bytes,
    flags: u8,
    limits: &Limits,
) -> Result<RequestBody, DatagramError> {
    parse_request_with(body, flags, limits, None)
}

/// [`parse_request`], with the method path looked up in (and kept in) `paths`, a
/// [`PathCache`] the receiving socket keeps.
pub fn parse_request_with(
    body: Bytes,
    flags: u8,
    limits: &Limits,
    paths: Option<&mut PathCache>,
) -> Result<RequestBody, DatagramError> {
    let mut cur = Cursor(body);
    let micros = cur.u64()?;
    let done_below = if flags & FLAG_DONE_BELOW != 0 {
        Some(cur.u32()?)
    } else {
        None
    };
    let path_len = usize::from(cur.u16()?);
    let path = cur.bytes(path_len)?;
    let path = match paths {
        Some(paths) => paths.get(&path, 0..path.len()),
        None => MethodPath::try_from_bytes(path),
    }
    .map_err(|_| DatagramError::Malformed("invalid method path"))?;
    let metadata = cur.metadata(limits)?;
    Ok(RequestBody {
        timeout: (micros != 0).then(|| Duration::from_micros(micros)),
        path,
        metadata,
        message: cur.0,
        done_below,
    })
}

/// An answer as a REPLY datagram carries it: everything borrowed, its size known before it is
/// encoded. A server that checks, sizes and encodes one answer looks at its parts once.
#[derive(Debug)]
pub struct Reply<'a> {
    code: Code,
    message: std::borrow::Cow<'a, str>,
    details: &'a [u8],
    leading: &'a MetadataMap,
    trailing: &'a MetadataMap,
    body: &'a [u8],
}

static EMPTY: std::sync::LazyLock<MetadataMap> = std::sync::LazyLock::new(MetadataMap::new);

impl<'a> Reply<'a> {
    /// The parts of `result` a REPLY carries (a status's text and details cut to what a
    /// datagram may hold).
    pub fn new(result: &'a Result<Response<Bytes>, Status>) -> Reply<'a> {
        Reply::capped(result, MAX_STATUS_MESSAGE)
    }

    /// [`Reply::new`] with the status message cut to `cap` bytes (the server's
    /// [`Limits::status_message_cap`], as over TCP), never above [`MAX_STATUS_MESSAGE`].
    pub fn capped(result: &'a Result<Response<Bytes>, Status>, cap: usize) -> Reply<'a> {
        let cap = cap.min(MAX_STATUS_MESSAGE);
        match result {
            Ok(response) => Reply {
                code: Code::Ok,
                message: "".into(),
                details: &[],
                leading: response.metadata(),
                trailing: response.trailers(),
                body: response.get_ref(),
            },
            Err(status) => {
                let (message, details) = if status.details().len() > MAX_REPLY_DETAILS {
                    let note =
                        frame::details_dropped_note(status.details().len(), MAX_REPLY_DETAILS);
                    let message = frame::noted_status(status.message(), &note, cap);
                    (message, &[][..])
                } else {
                    let message = frame::truncate_status(status.message(), cap);
                    (message, status.details())
                };
                Reply {
                    code: status.code(),
                    message,
                    details,
                    leading: &EMPTY,
                    trailing: status.metadata(),
                    body: &[],
                }
            }
        }
    }

    /// Checks that the answer can be written under `limits`; `Err` is the status to send instead
    /// (the same rules as the TCP server's: oversized metadata is `Internal`).
    pub fn check(&self, limits: &Limits) -> Result<(), Status> {
        frame::check_metadata(self.leading, limits)
            .and_then(|()| frame::check_metadata(self.trailing, limits))
            .map_err(|reason| Status::internal(format!("response metadata: {reason}")))
    }

    /// Bytes the REPLY datagram takes, header included.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN
            + 4
            + 2
            + self.message.len()
            + 2
            + self.details.len()
            + frame::metadata_len(self.leading)
            + frame::metadata_len(self.trailing)
            + self.body.len()
    }

    /// Writes the REPLY datagram, `len` bytes (from [`wire_len`](Self::wire_len)). The caller has
    /// [`check`](Self::check)ed it.
    pub fn encode(&self, dst: &mut BytesMut, header: &Header, len: usize) {
        dst.reserve(len);
        header.encode(dst);
        dst.put_u32(self.code.as_u32());
        // MAX_STATUS_MESSAGE (16 KiB) is below u16::MAX, so the cast cannot cut.
        dst.put_u16(self.message.len() as u16);
        dst.put_slice(self.message.as_bytes());
        dst.put_u16(self.details.len() as u16);
        dst.put_slice(self.details);
        frame::metadata_block::put_metadata(dst, self.leading);
        frame::metadata_block::put_metadata(dst, self.trailing);
        dst.put_slice(self.body);
    }
}

/// Checks that an answer can be written as a REPLY under `limits` ([`Reply::check`]).
pub fn check_reply(
    result: &Result<Response<Bytes>, Status>,
    limits: &Limits,
) -> Result<(), Status> {
    Reply::new(result).check(limits)
}

/// Bytes a REPLY datagram for `result` takes, header included ([`Reply::wire_len`]); known before
/// encoding, so an answer too large for a datagram is never encoded at all.
pub fn reply_len(result: &Result<Response<Bytes>, Status>) -> usize {
    Reply::new(result).wire_len()
}

/// Writes a REPLY datagram. The caller has checked the answer with [`check_reply`].
pub fn encode_reply(dst: &mut BytesMut, header: &Header, result: &Result<Response<Bytes>, Status>) {
    let reply = Reply::new(result);
    reply.encode(dst, header, reply.wire_len());
}

/// Parses a REPLY body (the datagram after its header) back into the answer.
pub fn parse_reply(
    body: Bytes,
    limits: &Limits,
) -> Result<Result<Response<Bytes>, Status>, DatagramError> {
    let mut cur = Cursor(body);
    let code = Code::from_u32(cur.u32()?);
    let len = usize::from(cur.u16()?);
    let message = cur.bytes(len)?;
    let len = usize::from(cur.u16()?);
    let details = cur.bytes(len)?;
    let leading = cur.metadata(limits)?;
    let trailing = cur.metadata(limits)?;
    if code == Code::Ok {
        return Ok(Ok(Response::from_parts(leading, cur.0, trailing)));
    }
    if !cur.0.is_empty() || !leading.is_empty() {
        return Err(DatagramError::Malformed("error reply with a message"));
    }
    let message = String::from_utf8_lossy(&message).into_owned();
    let mut status = Status::with_details(code, message, details);
    status.metadata_mut().extend(trailing);
    Ok(Err(status))
}

/// Writes a header-only datagram (TRUNCATED, COOKIE, PENDING).
pub fn encode_header_only(dst: &mut BytesMut, header: &Header) {
    header.encode(dst);
}

#[cfg(test)]
mod tests;
