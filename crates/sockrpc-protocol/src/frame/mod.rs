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
/// Flag on OPEN: the client reads an OK end folded into the answer's MESSAGE
/// ([`FLAG_END_OK`]). Unary calls set it; the server folds only for calls that did.
pub const FLAG_FOLD_END: u8 = 0x10;
/// Flag on MESSAGE, server to client: this is the call's only answer message and the call
/// ended OK with no trailing metadata, as if an END (code OK, empty) followed. Saves a frame
/// each way on nearly every unary call; sent only on a call whose OPEN had [`FLAG_FOLD_END`].
pub const FLAG_END_OK: u8 = 0x10;
/// Flag on OPEN: the body ends with the call's one request message (after the metadata block
/// and any encoding fields), so a unary call is one frame, not OPEN then MESSAGE. Set with
/// [`FLAG_END_STREAM`], never with [`FLAG_STREAM`]. A client sends it only to a server whose
/// SETTINGS announced [`CAP_FOLDED_REQUEST`], and only for a message of at most
/// [`MAX_FOLDED_MESSAGE`] bytes.
pub const FLAG_MESSAGE: u8 = 0x20;
/// Flag on OPEN with [`FLAG_MESSAGE`]: the folded message is compressed, as
/// [`FLAG_COMPRESSED`] says of a MESSAGE.
pub const FLAG_MESSAGE_COMPRESSED: u8 = 0x40;
/// Flag on OPEN of a streaming call: the client credits each message it is sent on a stream
/// as its [`message_charge`] (its bytes and [`MESSAGE_CHARGE`]), not as its bytes alone. A
/// server that knows the flag then counts what it sends on the connection's streams that way
/// against [`STREAM_WINDOW`], so that empty messages are paced by a slow reader as others are
/// (HTTP/2 charges each gRPC message its 5-byte prefix); one that does not ignores it and merely
/// gets a little more credit than it counted. A sockrpc client sets it on every streaming OPEN.
pub const FLAG_CHARGED: u8 = 0x80;
/// Flag on MESSAGE: the message goes on in this call's next MESSAGE frame; the frame without
/// it ends the message and carries its flags ([`FLAG_END_STREAM`], [`FLAG_END_OK`],
/// [`FLAG_COMPRESSED`]). A side splits a message larger than [`PIECE`] into pieces of that
/// size only toward a peer that announced [`CAP_PIECES`], one message at a time per
/// connection: other calls' frames may go between the pieces, the pieces of another split
/// message never do. So a small answer no longer waits behind a whole large one (HTTP/2
/// interleaves DATA frames of at most 16 KiB for the same reason).
pub const FLAG_MORE: u8 = 0x02;
/// A MESSAGE's flags: [`FLAG_END_STREAM`] when it ends the sender's side of the call,
/// [`FLAG_COMPRESSED`] when its body is compressed.
pub const fn message_flags(end_stream: bool, compressed: bool) -> u8 {
    let end = if end_stream { FLAG_END_STREAM } else { 0 };
    if compressed {
        end | FLAG_COMPRESSED
    } else {
        end
    }
}
/// Flag on GOAWAY, server to client: the server retires the connection (its idle timeout,
/// its maximum age), it does not refuse it; a new connection is welcome at once. A client
/// counts a GOAWAY without it on a connection that carried no call as a failed attempt (and
/// backs off), as a server refusing every connection in its own protocol would need.
pub const FLAG_RETIRE: u8 = 0x01;
/// Flag on WINDOW with call id 0: the frame is SETTINGS, its `u32` the sender's limit of calls
/// in flight (high 16 bits) and capability bits (low 16 bits) rather than credit. A version 1
/// peer that knows no SETTINGS ignores it, as it ignores every WINDOW on call 0, so a server
/// can send it to any client.
pub const FLAG_SETTINGS: u8 = 0x20;
/// The largest piece of a split message ([`FLAG_MORE`]): a message larger than this is sent
/// in pieces of this size to a peer that reads them. 64 KiB: a small frame waits behind at most
/// this much of a large message, and a piece is still large enough that its header and the
/// writer's turn between pieces cost nothing measurable.
pub const PIECE: usize = 64 * 1024;
/// The shortest piece a split message may have before its last (16 KiB): shorter, a protocol
/// error. Every sockrpc sender cuts [`PIECE`]; a peer that dripped 1-byte pieces would restart
/// the frame clock with each, holding an assembly open for as long as its message limit allows.
pub const MIN_PIECE: usize = PIECE / 4;
/// The largest request message a client folds into its OPEN; a larger one goes in a MESSAGE
/// of its own. An OPEN may be this much longer than other control frames
/// ([`Limits::max_open_frame`]).
pub const MAX_FOLDED_MESSAGE: usize = 16 * 1024;

/// Bytes of messages a sender may have outstanding on one streaming call before the receiver
/// grants more with WINDOW. A message may be sent whenever less than this is outstanding, so a
/// single large message is never stuck; with a sender that honours it, the receiver's queue stays
/// under this plus one message (`flow::Inbound::push` in the transport refuses a MESSAGE once more
/// than this plus the message limit is queued).
pub const STREAM_WINDOW: usize = 64 * 1024;

/// What a client may have outstanding, in [`message_charge`]s, across every streaming call of
/// a connection to a server that announced [`CAP_CONNECTION_WINDOW`]. As with
/// [`STREAM_WINDOW`], a message may be sent whenever less than this is outstanding.
pub const CONNECTION_WINDOW: usize = 16 * 1024 * 1024;

/// What a server may have outstanding, in [`message_charge`]s, across the streamed answers of
/// a connection whose client granted [`CAP_ANSWER_WINDOW`], before the client credits more with
/// WINDOW on call 0: the size of [`CONNECTION_WINDOW`], the other way. As there, an answer may
/// be sent whenever less than this is outstanding.
pub const ANSWER_WINDOW: usize = CONNECTION_WINDOW;

/// What one streamed message of `len` bytes counts against [`CONNECTION_WINDOW`]: its bytes
/// and [`MESSAGE_CHARGE`] for its queue entry, so that empty messages are bounded too.
pub const fn message_charge(len: usize) -> usize {
    len.saturating_add(MESSAGE_CHARGE)
}

/// What a queued message costs its receiver beside its bytes (its queue entry and handle).
pub const MESSAGE_CHARGE: usize = 64;

/// Longest status message carried; longer ones are cut at a character boundary.
pub const MAX_STATUS_MESSAGE: usize = 16 * 1024;
/// The most of an invalid method path a refusal quotes ([`Frame::InvalidPath`]).
pub const MAX_QUOTED_PATH: usize = 256;
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
    /// Flow-control credit for a call's stream. On call id 0 it is connection credit from a
    /// server that announced [`CAP_CONNECTION_WINDOW`] (a peer that knows none ignores it), or,
    /// with `FLAG_SETTINGS`, the server's SETTINGS.
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
    /// A piece of one call's split message ([`FLAG_MORE`]) arrived while another call's split
    /// message was not finished: a sender splits one message at a time.
    #[error("a piece of call {got}'s message arrived before call {open}'s split message ended")]
    Interleaved {
        /// The call whose split message is unfinished.
        open: u32,
        /// The call the new piece belongs to.
        got: u32,
    },
    /// A piece before its message's last ([`FLAG_MORE`]) carried a flag other than
    /// [`FLAG_COMPRESSED`], or a piece carried a different [`FLAG_COMPRESSED`] than its
    /// message's first.
    #[error("call {call_id}: bad piece of a split message: {reason}")]
    BadPiece {
        /// The call the piece belongs to.
        call_id: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
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
        /// `FLAG_FOLD_END`: the client reads an OK end folded into the answer's MESSAGE.
        fold_end: bool,
        /// `FLAG_MESSAGE`: the call's one request message, folded into its OPEN.
        message: Option<Bytes>,
        /// `FLAG_MESSAGE_COMPRESSED`: the folded message is compressed.
        message_compressed: bool,
        /// `FLAG_CHARGED`: the client credits streamed messages as their [`message_charge`].
        charged: bool,
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
        /// `FLAG_END_OK`: the call ended OK right after this message, with no trailers.
        end_ok: bool,
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
        /// `FLAG_ENCODING`: the server's encoding fields, sent with an error to a client whose
        /// OPEN carried its own (what it reads, as a HEADERS would say).
        encoding: Option<EncodingFields>,
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
        /// [`FLAG_RETIRE`]: the server retires the connection (idle, old), not refuses it.
        retire: bool,
    },
    /// Flow-control credit.
    Window {
        /// Call id; 0 is connection credit ([`CONNECTION_WINDOW`]; a call-0 WINDOW with
        /// `FLAG_SETTINGS` parses as [`Frame::Settings`] instead).
        call_id: u32,
        /// Bytes the receiver can take beyond what it granted before.
        credit: u32,
    },
    /// A WINDOW on call 0 with `FLAG_SETTINGS`: what the sender supports beyond version 1's
    /// base, and how many calls it takes in flight on this connection (sent by a server right
    /// after its preface).
    Settings {
        /// Capability bits ([`CAP_FOLDED_REQUEST`]), the word's low 16 bits; bits this crate
        /// does not know are ignored.
        capabilities: u32,
        /// The most calls the sender takes in flight on this connection, the word's high 16
        /// bits: 0 when it announced none (a server of session 12 or older), and
        /// [`MAX_ANNOUNCED_CALLS`] for that many or more. A call past it is refused with
        /// `RESOURCE_EXHAUSTED`.
        max_calls: u16,
        /// The sender's metadata limit ([`Limits::max_metadata_size`], as HTTP/2's
        /// `SETTINGS_MAX_HEADER_LIST_SIZE`), the body's second word: `None` when the SETTINGS
        /// has none (4 bytes: an older peer, or the first SETTINGS, sent before the sender knew
        /// the receiver reads [`CAP_METADATA_LIMIT`]) or it is 0; `u32::MAX` for that or more.
        max_metadata: Option<u32>,
    },
    /// Not a wire frame: an OPEN, HEADERS or END whose body is well formed but whose metadata
    /// block is over the receiver's [`Limits::max_metadata_size`]. The block was walked and
    /// checked to its end but none of it kept: only its call fails (`RESOURCE_EXHAUSTED`), not
    /// the connection, as HTTP/2 makes a header list too large a stream error.
    MetadataTooLarge {
        /// The frame's kind: [`FrameKind::Open`], [`FrameKind::Headers`] or [`FrameKind::End`].
        kind: FrameKind,
        /// Call id.
        call_id: u32,
        /// The frame's flags (an OPEN's `FLAG_STREAM`, `FLAG_CHARGED`, …).
        flags: u8,
        /// What the block counts against the limit: its bytes and 32 per entry.
        size: usize,
    },
    /// Not a wire frame: an OPEN, HEADERS or END longer than the receiver's limit for its kind
    /// ([`frame_limit`]; a peer whose metadata limit is larger than ours), whose body was
    /// skipped unread. Only its call fails (`RESOURCE_EXHAUSTED`), as for
    /// [`MetadataTooLarge`](Frame::MetadataTooLarge); the connection goes on.
    ControlTooLarge {
        /// The frame's kind: [`FrameKind::Open`], [`FrameKind::Headers`] or [`FrameKind::End`].
        kind: FrameKind,
        /// Call id.
        call_id: u32,
        /// The frame's flags (an OPEN's `FLAG_STREAM`, `FLAG_CHARGED`, …).
        flags: u8,
        /// The announced body length.
        length: u32,
        /// The receiver's limit for a frame of this kind.
        limit: usize,
    },
    /// Not a wire frame: an OPEN whose body is well formed but whose method path is not
    /// `/package.Service/Method` in UTF-8. Only its call fails (`UNIMPLEMENTED`, as grpc-go
    /// answers a malformed method name on its stream): a path is what the caller asked for, not
    /// how the connection is framed.
    InvalidPath {
        /// Call id.
        call_id: u32,
        /// The frame's flags (an OPEN's `FLAG_STREAM`, `FLAG_CHARGED`, …).
        flags: u8,
        /// The path as sent, as text (invalid UTF-8 replaced), at most [`MAX_QUOTED_PATH`]
        /// bytes of it.
        path: String,
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
        let header = FrameHeader::read(bytes)?;
        header.check_length(limits)?;
        Ok(header)
    }

    /// Parses a header and checks every field but its length against the limits: its kind, its
    /// reserved bits, its call id. [`parse`](Self::parse) is this and
    /// [`check_length`](Self::check_length); a decoder that skips an OPEN, HEADERS or END over
    /// its limit ([`is_skippable_control`](Self::is_skippable_control)) checks the length itself.
    pub fn read(bytes: &[u8; HEADER_LEN]) -> Result<FrameHeader, FrameError> {
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

    /// Checks the body length against `limits` for this header's kind (a SETTINGS may be
    /// longer than a WINDOW: [`MAX_SETTINGS_LEN`]).
    pub fn check_length(&self, limits: &Limits) -> Result<(), FrameError> {
        if self.is_settings() {
            let length = self.length as usize;
            if length > MAX_SETTINGS_LEN {
                return Err(FrameError::TooLong {
                    kind: self.kind,
                    length: u64::from(self.length),
                    limit: MAX_SETTINGS_LEN,
                });
            }
            return Ok(());
        }
        check_length(self.kind, u64::from(self.length), limits)
    }

    /// Whether this is a SETTINGS: a WINDOW on call 0 with [`FLAG_SETTINGS`].
    pub fn is_settings(&self) -> bool {
        self.kind == FrameKind::Window && self.call_id == 0 && self.flags & FLAG_SETTINGS != 0
    }

    /// Whether this is an OPEN, HEADERS or END longer than its limit ([`frame_limit`]) but
    /// not past [`Limits::max_skippable_message`]: a peer whose metadata limit is larger than
    /// ours, not an attack. Its body is skipped unread and only its call fails
    /// ([`Frame::ControlTooLarge`]), as an oversized MESSAGE's is; the connection goes on.
    pub fn is_skippable_control(&self, limits: &Limits) -> bool {
        let length = self.length as usize;
        matches!(
            self.kind,
            FrameKind::Open | FrameKind::Headers | FrameKind::End
        ) && length > frame_limit(self.kind, limits)
            && length <= limits.max_skippable_message()
    }

    /// Whether this is a MESSAGE whose body exceeds the message limit but may be skipped.
    pub fn is_oversized_message(&self, limits: &Limits) -> bool {
        self.kind == FrameKind::Message && self.length as usize > limits.max_message_size
    }
}

/// Checks the length announced for a frame of `kind` against `limits`; usable as soon as the
/// first 4 header bytes are in, before the rest of the header arrives.
pub fn check_length(kind: FrameKind, length: u64, limits: &Limits) -> Result<(), FrameError> {
    let limit = frame_limit(kind, limits);
    if length > limit as u64 {
        return Err(FrameError::TooLong {
            kind,
            length,
            limit,
        });
    }
    Ok(())
}

/// The longest body a frame of `kind` may have under `limits` (a SETTINGS excepted:
/// [`MAX_SETTINGS_LEN`]); a MESSAGE's is the longest that is skipped rather than refused.
pub fn frame_limit(kind: FrameKind, limits: &Limits) -> usize {
    match kind {
        FrameKind::Message => limits.max_skippable_message(),
        FrameKind::Open => limits.max_open_frame(),
        FrameKind::Cancel => 0,
        FrameKind::Ping | FrameKind::Pong => 8,
        FrameKind::Window => 4,
        _ => limits.max_control_frame(),
    }
}

/// The largest body any frame may announce under `limits`: a longer length prefix is refused
/// from its first four bytes.
pub fn max_frame_len(limits: &Limits) -> usize {
    limits.max_skippable_message().max(limits.max_open_frame())
}

pub(crate) mod encode;
pub(crate) mod metadata_block;
mod parse;
mod settings;

pub use encode::*;
pub use metadata_block::*;
pub use settings::*;

#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod tests;
