//! `FrameDecoder`: bytes off a socket into [`Frame`]s, with every size checked first.
//!
//! A tokio-util [`Decoder`]: partial input is `Ok(None)`, never an error, so it works with any
//! read size. It never reserves what a peer announces; the connection's read buffer grows only as
//! bytes actually arrive, so a peer that claims a large frame and sends nothing costs nothing.
//!
//! ```text
//!  Preface ──8 bytes──▶ Head ──12 bytes──▶ Body(len) ──len bytes──▶ Head ...
//!                        │
//!                        ├─ MESSAGE over the message limit ──▶ Skip(len) ──▶ Oversized, Head
//!                        └─ OPEN, HEADERS, END over the frame limit ─▶ Skip(len) ──▶ ControlTooLarge, Head
//! ```
//!
//! A skipped body is read and dropped as it arrives, never buffered: an OPEN, HEADERS or END
//! too long for this side's limits (a peer whose metadata limit is larger) fails its call only,
//! as HTTP/2 makes a header list too large a stream error; past
//! `Limits::max_skippable_message` (as for a MESSAGE) the connection closes.
//!
//! A message split into pieces (`FLAG_MORE`) comes out whole: the pieces are kept in
//! `Pieces` (`pieces.rs`) until the last, and the limit applies to their sum.

use crate::pieces::{Admit, Pieces};
use bytes::{Buf, Bytes, BytesMut};
use sockrpc_protocol::frame::{
    frame_limit, max_frame_len, Frame, FrameError, FrameHeader, FrameKind, FLAG_MORE, HEADER_LEN,
    MAGIC, PREFACE, VERSION,
};
use sockrpc_protocol::{Limits, PathCache};
use std::io;
use tokio_util::codec::Decoder;

/// What stopped decoding: the socket failed, or the peer broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Reading the socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not protocol v1.
    #[error("protocol error: {0}")]
    Frame(#[from] FrameError),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Preface,
    Head,
    Body(FrameHeader),
    /// A body read and thrown away: a MESSAGE's (`report`: the length `Frame::Oversized`
    /// reports when done; `None`: a later piece of a message already reported), or an OPEN's,
    /// HEADERS' or END's over its limit (`Frame::ControlTooLarge` when done).
    Skip {
        header: FrameHeader,
        remaining: u32,
        report: Option<u32>,
    },
    /// A piece of the split message in assembly, its body written straight into the
    /// assembly's buffer as it arrives (`remaining` bytes to go): see [`FrameDecoder::direct`].
    Into {
        header: FrameHeader,
        remaining: u32,
    },
}

/// A piece whose body has at least this much left to arrive goes into its assembly's buffer
/// as it is read (`State::Into`); a shorter rest is read with what follows it.
const DIRECT_MIN: usize = 16 * 1024;

/// Pieces longer than this, or whose assembly would grow by more than this to take them, are
/// read the usual way (into the read buffer, then copied), so that room is never made for
/// more than the read buffer could come to on a peer's word: its 16 KiB chunk and one
/// reservation of at most 256 KiB (`reader.rs`). (A message of 256 KiB and its few bytes of
/// encoding is then read straight into an assembly sized by the one before it.)
const DIRECT_MAX: usize = (256 + 16) * 1024;

/// The assembly buffer a piece's body is read into, and how much of the body is still due: see
/// [`FrameDecoder::direct`].
#[derive(Debug)]
pub struct Direct<'a> {
    /// The assembly: the body goes after what it holds, within its spare capacity.
    pub held: &'a mut Vec<u8>,
    /// Bytes of the piece's body still to come.
    pub remaining: &'a mut u32,
}

/// Decodes the peer's preface, then frames.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: State,
    limits: Limits,
    /// The connection's recent method paths: see [`PathCache`].
    paths: PathCache,
    /// Frames shorter than this (header included) are copied out of the read buffer instead
    /// of sliced from it: set by the reader while its buffer is an allocation grown for a
    /// large frame, which a small slice would otherwise keep alive whole. 0: never.
    copy_below: usize,
    /// The split message being put back together, if any.
    pieces: Pieces,
    /// Body bytes of pieces that were not a message's last (read or skipped): progress on a
    /// split message, which completes no frame.
    piece_bytes: u64,
    /// The kind and call id of the frame whose body was refused, once one was.
    refused: Option<(FrameKind, u32)>,
}

impl FrameDecoder {
    /// A decoder that first expects the peer's preface.
    pub fn new(limits: Limits) -> FrameDecoder {
        FrameDecoder {
            state: State::Preface,
            limits,
            paths: PathCache::default(),
            copy_below: 0,
            pieces: Pieces::default(),
            piece_bytes: 0,
            refused: None,
        }
    }

    /// A decoder for a stream whose preface was already consumed.
    pub fn after_preface(limits: Limits) -> FrameDecoder {
        FrameDecoder {
            state: State::Head,
            limits,
            paths: PathCache::default(),
            copy_below: 0,
            pieces: Pieces::default(),
            piece_bytes: 0,
            refused: None,
        }
    }

    /// Whether the peer's preface has been read and accepted.
    pub fn past_preface(&self) -> bool {
        !matches!(self.state, State::Preface)
    }

    /// Frames shorter than `len` bytes (header included) are copied out of the buffer from
    /// now on, not sliced from it (0: none). See `reader.rs`.
    pub fn copy_below(&mut self, len: usize) {
        self.copy_below = len;
    }

    /// Takes `skip` bytes (a header already parsed) and the `len`-byte body after them off
    /// `src`: the body sliced from the buffer, or copied out of it when the frame is under
    /// [`copy_below`](Self::copy_below).
    fn take_body(&self, src: &mut BytesMut, skip: usize, len: usize) -> Bytes {
        if HEADER_LEN + len < self.copy_below {
            let body = Bytes::copy_from_slice(&src[skip..skip + len]);
            src.advance(skip + len);
            body
        } else {
            let mut body = src.split_to(skip + len).freeze();
            body.advance(skip);
            body
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a frame (or the preface) has started arriving and is not complete: `buffered`
    /// bytes wait in the read buffer, or a frame's body is being read or skipped.
    pub fn mid_frame(&self, buffered: usize) -> bool {
        buffered > 0
            || matches!(
                self.state,
                State::Body(_) | State::Skip { .. } | State::Into { .. }
            )
            || self.pieces.is_open()
    }

    /// Body bytes of pieces decoded so far that were not their message's last (read, or
    /// skipped past the limit). A server's wait for a unary request message counts from when
    /// these stop moving (`server/open.rs`): a client sends one split message at a time, so a
    /// request may wait behind others' pieces after its OPEN has arrived.
    pub fn piece_bytes(&self) -> u64 {
        self.piece_bytes
    }

    /// Body bytes of a split message's pieces skipped after the piece that took it over the
    /// limit (which `Frame::Oversized` reported), since the last call: see `Pieces`.
    pub fn take_skipped(&mut self) -> u64 {
        self.pieces.take_skipped()
    }

    /// Charges of messages skipped whole over the limit, since the last call, whose last frame
    /// lacked END_STREAM (streamed answers, for a client's answer window): see `Pieces`.
    pub fn take_skipped_streamed(&mut self) -> u64 {
        self.pieces.take_skipped_streamed()
    }

    /// Whether a split message is in assembly (or being skipped): its last piece is due.
    pub fn assembling(&self) -> bool {
        self.pieces.is_open()
    }

    /// The split message in assembly, if any: its serial number and the bytes its pieces
    /// announced so far (see `Pieces::assembly`).
    pub fn assembly(&self) -> Option<(u64, u64)> {
        self.pieces.assembly()
    }

    /// How many more bytes the current frame needs, to size the next read; 0 when unknown.
    pub fn bytes_wanted(&self, buffered: usize) -> usize {
        match self.state {
            State::Preface => PREFACE.len().saturating_sub(buffered),
            State::Head => HEADER_LEN.saturating_sub(buffered),
            State::Body(header) => (header.length as usize).saturating_sub(buffered),
            State::Skip { remaining, .. } | State::Into { remaining, .. } => remaining as usize,
        }
    }

    /// While a piece's body is due and goes straight into its assembly, the buffer to read it
    /// into: the reader reads the socket into `held`'s spare capacity, at most `remaining` bytes
    /// and the header after them (whatever it reads past `remaining` it hands back to the read
    /// buffer), and lowers `remaining` by what it kept. This saves copying every piece from
    /// the read buffer into the assembly (a copy of the whole message, about 80 µs per MiB).
    pub fn direct(&mut self) -> Option<Direct<'_>> {
        // Once the body is all there, what follows is read the usual way: a read into the
        // assembly would find it full (a read of nothing, taken for the peer's end) or take a
        // header's 16 bytes at a time, for a reader that only drops what it reads
        // (`server/linger.rs`) and so never decodes the piece out of `Into`.
        let State::Into { remaining, .. } = &mut self.state else {
            return None;
        };
        if *remaining == 0 {
            return None;
        }
        let held = self.pieces.held_mut()?;
        Some(Direct { held, remaining })
    }

    /// A frame's body, parsed with this connection's method paths.
    fn parse(&mut self, header: &FrameHeader, body: Bytes) -> Result<Frame, FrameError> {
        let parsed = Frame::parse_with(header, body, &self.limits, Some(&mut self.paths));
        if parsed.is_err() {
            self.refused = Some((header.kind, header.call_id));
        }
        parsed
    }

    /// The kind and call id of the frame whose body this decoder refused (a malformed body;
    /// metadata merely past the limit is not refused here but parses as
    /// `Frame::MetadataTooLarge`, for its call alone to fail), if it refused one: the connection closes on it, and a server
    /// names a refused OPEN's call in its GOAWAY as received, so that its client does not take
    /// the call for one never processed and send it again.
    pub fn refused_frame(&self) -> Option<(FrameKind, u32)> {
        self.refused
    }

    /// A frame whose body was read: parsed, unless it is a piece of a split message that goes
    /// on (`None`: kept until its last piece, which yields the whole message).
    fn complete(&mut self, header: &FrameHeader, body: Bytes) -> Result<Option<Frame>, FrameError> {
        if header.kind != FrameKind::Message {
            return self.parse(header, body).map(Some);
        }
        let whole = self.pieces.take(header, body);
        self.assembled(header, whole)
    }

    /// After a MESSAGE frame's body was taken: the message parsed when it is whole (`whole`),
    /// or `None` when it was a piece and its message goes on.
    fn assembled(
        &mut self,
        header: &FrameHeader,
        whole: Option<Bytes>,
    ) -> Result<Option<Frame>, FrameError> {
        match whole {
            Some(body) => {
                let header = FrameHeader {
                    length: u32::try_from(body.len()).unwrap_or(u32::MAX),
                    ..*header
                };
                self.parse(&header, body).map(Some)
            }
            None => {
                self.piece_bytes += u64::from(header.length);
                Ok(None)
            }
        }
    }

    /// Starts reading the body of the piece `header` straight into its assembly when enough
    /// of it is still to arrive (`src` holds the header and less than the body): what `src`
    /// holds of the body is moved into the assembly. Whether it did.
    fn start_direct(&mut self, header: &FrameHeader, src: &mut BytesMut) -> bool {
        let length = header.length as usize;
        let arrived = src.len() - HEADER_LEN;
        if length > DIRECT_MAX || length - arrived < DIRECT_MIN {
            return false;
        }
        // The room is made on the header's word, before the body arrives: no more than a
        // read of it would reserve (the first piece's guess at the whole message, or a
        // doubling, wait until the piece is read).
        if self
            .pieces
            .room_beyond_held(header)
            .is_none_or(|beyond| beyond > DIRECT_MAX)
        {
            return false;
        }
        let Some(held) = self.pieces.room(header) else {
            return false;
        };
        held.extend_from_slice(&src[HEADER_LEN..]);
        src.clear();
        self.state = State::Into {
            header: *header,
            remaining: u32::try_from(length - arrived).unwrap_or(u32::MAX),
        };
        true
    }

    fn decode_preface(&mut self, src: &mut BytesMut) -> Result<bool, FrameError> {
        // Compare what has arrived so far, so a wrong peer is refused on its first byte
        // rather than after we wait for all eight.
        let seen = src.len().min(MAGIC.len());
        if src[..seen] != MAGIC[..seen] {
            return Err(FrameError::BadPreface);
        }
        if src.len() < PREFACE.len() {
            return Ok(false);
        }
        let version = src[MAGIC.len()];
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        src.advance(PREFACE.len());
        self.state = State::Head;
        Ok(true)
    }
}

impl Decoder for FrameDecoder {
    type Item = Frame;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.state {
                State::Preface => {
                    if !self.decode_preface(src)? {
                        return Ok(None);
                    }
                }
                State::Head => {
                    if src.len() >= 4 {
                        // The length alone can condemn the frame: 0xFFFFFFFF is refused at once.
                        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
                        let max = max_frame_len(&self.limits);
                        if length as usize > max {
                            let kind = src
                                .get(4)
                                .and_then(|b| FrameKind::from_u8(*b))
                                .unwrap_or(FrameKind::Message);
                            return Err(FrameError::TooLong {
                                kind,
                                length: u64::from(length),
                                limit: max,
                            }
                            .into());
                        }
                    }
                    if src.len() < HEADER_LEN {
                        return Ok(None);
                    }
                    let mut head = [0u8; HEADER_LEN];
                    head.copy_from_slice(&src[..HEADER_LEN]);
                    let header = FrameHeader::read(&head)?;
                    let len = header.length as usize;
                    if header.kind == FrameKind::Message
                        && header.flags & FLAG_MORE == 0
                        && len <= self.limits.max_message_size
                        && src.len() >= HEADER_LEN + len
                        && !self.pieces.is_open()
                    {
                        // The common case, a whole message whole in the buffer (an answer, a
                        // streamed message): what the checks, `Pieces` and the parser below do
                        // with it, without the trip through them (a client reads one a call).
                        let body = self.take_body(src, HEADER_LEN, len);
                        return Ok(Some(Frame::message(&header, body)));
                    }
                    if header.is_skippable_control(&self.limits) {
                        src.advance(HEADER_LEN);
                        self.state = State::Skip {
                            header,
                            remaining: header.length,
                            report: Some(header.length),
                        };
                        continue;
                    }
                    header.check_length(&self.limits)?;
                    if header.kind == FrameKind::Message {
                        let max = self.limits.max_message_size;
                        if let Admit::Skip { report } = self.pieces.admit(&header, max)? {
                            src.advance(HEADER_LEN);
                            self.state = State::Skip {
                                header,
                                remaining: header.length,
                                report,
                            };
                            continue;
                        }
                    }
                    let whole = HEADER_LEN + header.length as usize;
                    if src.len() >= whole {
                        // The common case, the whole frame already read: one split of the
                        // buffer for header and body, and no trip through `State::Body`.
                        let body = self.take_body(src, HEADER_LEN, header.length as usize);
                        match self.complete(&header, body)? {
                            Some(frame) => return Ok(Some(frame)),
                            None => continue,
                        }
                    }
                    if header.kind == FrameKind::Message && self.start_direct(&header, src) {
                        continue;
                    }
                    src.advance(HEADER_LEN);
                    self.state = State::Body(header);
                }
                State::Into { header, remaining } => {
                    let take = (remaining as usize).min(src.len());
                    if take > 0 {
                        if let Some(held) = self.pieces.held_mut() {
                            held.extend_from_slice(&src[..take]);
                        }
                        src.advance(take);
                    }
                    let remaining = remaining - take as u32;
                    if remaining > 0 {
                        self.state = State::Into { header, remaining };
                        return Ok(None);
                    }
                    self.state = State::Head;
                    let whole = self.pieces.finish(&header);
                    if let Some(frame) = self.assembled(&header, whole)? {
                        return Ok(Some(frame));
                    }
                }
                State::Body(header) => {
                    let len = header.length as usize;
                    if src.len() < len {
                        return Ok(None);
                    }
                    let body = self.take_body(src, 0, len);
                    self.state = State::Head;
                    if let Some(frame) = self.complete(&header, body)? {
                        return Ok(Some(frame));
                    }
                }
                State::Skip {
                    header,
                    remaining,
                    report,
                } => {
                    let take = (remaining as usize).min(src.len());
                    src.advance(take);
                    let remaining = remaining - take as u32;
                    if remaining > 0 {
                        self.state = State::Skip {
                            header,
                            remaining,
                            report,
                        };
                        return Ok(None);
                    }
                    self.state = State::Head;
                    if header.kind != FrameKind::Message {
                        return Ok(Some(Frame::ControlTooLarge {
                            kind: header.kind,
                            call_id: header.call_id,
                            flags: header.flags,
                            length: header.length,
                            limit: frame_limit(header.kind, &self.limits),
                        }));
                    }
                    if header.flags & FLAG_MORE != 0 {
                        self.piece_bytes += u64::from(header.length);
                    }
                    if let Some(length) = report {
                        return Ok(Some(Frame::Oversized {
                            call_id: header.call_id,
                            length,
                        }));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
