//! `Pieces`: a message that came split into pieces ([`FLAG_MORE`]), put back together.
//!
//! A sender splits a message larger than [`PIECE`](sockrpc_protocol::frame::PIECE) so that
//! other calls' frames can go between its pieces: a small answer then waits behind one piece of
//! a large message, not all of it. It splits one message at a time per connection, so the
//! receiver keeps at most one message in assembly: what a connection holds for it is bounded by
//! the message limit, as a single large frame in the read buffer was.
//!
//! ```text
//!  MESSAGE call 3 MORE [64 KiB] ─▶ open(3), held 64 KiB
//!  MESSAGE call 5      [80 B]   ─▶ delivered at once (another call's whole message)
//!  MESSAGE call 3 MORE [64 KiB] ─▶ held 128 KiB
//!  MESSAGE call 3 END  [10 KiB] ─▶ delivered: call 3's 138 KiB message, with this frame's flags
//!  MESSAGE call 7 MORE ...      ─▶ while 3 is open: protocol error (pieces interleaved)
//! ```
//!
//! A piece before the last carries `FLAG_MORE` and the message's `FLAG_COMPRESSED` alone, and
//! every piece the same `FLAG_COMPRESSED`, and is at least [`MIN_PIECE`] long (each piece
//! restarts the frame clock, so 1-byte pieces would hold an assembly open for hours): anything
//! else is a protocol error. A sender that gives a message up ends it with an empty last piece
//! (`Outbox::abandon`).
//!
//! Each piece restarts the frame clock, so pieces of [`MIN_PIECE`] dripped one per frame timeout
//! could still hold a 4 MiB assembly open for 256 frame timeouts: a server also bounds the
//! whole message's time by a floor on its rate (`ServerConfig::min_message_rate`,
//! `server/deadlines.rs`), from the serial number and length [`assembly`](Pieces::assembly)
//! gives.
//!
//! A message that grows past the limit is dropped as soon as it does: its call is told
//! (`Frame::Oversized`, as for one large frame), and its later pieces are skipped unread,
//! their bytes counted for the server to credit back (`take_skipped`). A client credits the
//! answer window for every message skipped whole whose last frame lacked `FLAG_END_STREAM` (a
//! streamed answer, which the server counted: `take_skipped_streamed`).

use bytes::Bytes;
use sockrpc_protocol::codec::recycle;
use sockrpc_protocol::frame::{
    self, FrameError, FrameHeader, FrameKind, FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_MORE,
    MIN_PIECE,
};

/// What the decoder does with a MESSAGE frame's body, judged from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Read it.
    Read,
    /// Skip it unread; when `report` is set, tell its call that a message of that many bytes
    /// went over the limit.
    Skip {
        /// The message's length so far, to report in `Frame::Oversized`.
        report: Option<u32>,
    },
}

/// The one split message in assembly on a connection, if any.
#[derive(Debug, Default, Clone)]
pub(crate) struct Pieces {
    open: Option<Open>,
    /// The length of the last message put together here: the first guess at the next one's
    /// (a stream's messages are often alike), so that it is read into one buffer, not moved
    /// from smaller ones as it grows.
    last: usize,
    /// Bytes of pieces skipped unreported (after their message's report), not yet taken by
    /// [`take_skipped`](Self::take_skipped).
    skipped: u64,
    /// Charges (`frame::message_charge`) of messages skipped over the limit, whole or in
    /// pieces, whose last frame did not carry `FLAG_END_STREAM`, not yet taken by
    /// [`take_skipped_streamed`](Self::take_skipped_streamed).
    skipped_streamed: u64,
    /// Split messages opened so far: the open one's serial number, so that a message begun
    /// right after another ended is told from it.
    opened: u64,
}

#[derive(Debug, Clone)]
struct Open {
    call_id: u32,
    /// The first piece's `FLAG_COMPRESSED`: every later piece must carry the same.
    compressed: bool,
    /// Bytes announced so far, every piece's.
    length: u64,
    /// The pieces read so far, in a recycled buffer (`recycle`); `None` once the message
    /// went over the limit (skipped).
    body: Option<Vec<u8>>,
}

impl Pieces {
    /// Whether a split message is in assembly (or being skipped).
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The split message in assembly (or being skipped), if any: its serial number on this
    /// connection and the bytes its pieces announced so far, the piece being read included.
    pub(crate) fn assembly(&self) -> Option<(u64, u64)> {
        self.open.as_ref().map(|open| (self.opened, open.length))
    }

    /// Judges a MESSAGE frame by its `header`, before its body is buffered, against the message
    /// limit `max`.
    pub(crate) fn admit(&mut self, header: &FrameHeader, max: usize) -> Result<Admit, FrameError> {
        debug_assert_eq!(header.kind, FrameKind::Message);
        let more = header.flags & FLAG_MORE != 0;
        let compressed = header.flags & FLAG_COMPRESSED != 0;
        if more {
            check_piece(header)?;
        }
        match &self.open {
            Some(open) if open.call_id != header.call_id && more => {
                return Err(FrameError::Interleaved {
                    open: open.call_id,
                    got: header.call_id,
                })
            }
            // A whole message: another call's, between the open one's pieces, or any.
            Some(open) if open.call_id != header.call_id => return Ok(self.whole(header, max)),
            None if !more => return Ok(self.whole(header, max)),
            Some(open) if open.compressed != compressed => {
                return Err(FrameError::BadPiece {
                    call_id: header.call_id,
                    reason: "COMPRESSED differs from the message's first piece",
                })
            }
            Some(_) => {}
            None => {
                self.opened += 1;
                self.open = Some(Open {
                    call_id: header.call_id,
                    compressed,
                    length: 0,
                    body: Some(Vec::new()),
                })
            }
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(Admit::Read);
        };
        open.length += u64::from(header.length);
        let admit = match &open.body {
            // Skipped since it went over: the rest goes unread, unreported but counted (its
            // sender counted it against its window: `take_skipped`).
            None => {
                self.skipped += u64::from(header.length);
                Admit::Skip { report: None }
            }
            Some(_) if open.length > max as u64 => {
                if let Some(body) = open.body.take() {
                    recycle::give_back(body);
                }
                Admit::Skip {
                    report: Some(u32::try_from(open.length).unwrap_or(u32::MAX)),
                }
            }
            Some(_) => Admit::Read,
        };
        if !more && admit != Admit::Read {
            // The last piece of a skipped message: nothing is left open.
            let length = usize::try_from(open.length).unwrap_or(usize::MAX);
            self.note_skipped_message(header, length);
            self.open = None;
        }
        Ok(admit)
    }

    /// Takes the bytes of pieces skipped since the last call without a report of their own:
    /// the pieces after the one that took their message over the limit. A server credits them
    /// back to the connection window as it credits the reported part.
    pub(crate) fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Takes the charges of messages skipped whole over the limit since the last call whose
    /// last frame lacked `FLAG_END_STREAM`: streamed answers a server counted against the
    /// answer window (`client/answers.rs`), which the client credits as it does any answer it
    /// drops. A message ended with END_STREAM (a unary or one-message answer) is not counted.
    pub(crate) fn take_skipped_streamed(&mut self) -> u64 {
        std::mem::take(&mut self.skipped_streamed)
    }

    /// A message that came in one frame: read, or skipped and reported when over `max`.
    fn whole(&mut self, header: &FrameHeader, max: usize) -> Admit {
        let admit = whole(header, max);
        if admit != Admit::Read {
            self.note_skipped_message(header, header.length as usize);
        }
        admit
    }

    /// The message whose last frame is `header` was skipped, `length` bytes in all.
    fn note_skipped_message(&mut self, header: &FrameHeader, length: usize) {
        if header.flags & FLAG_END_STREAM == 0 {
            let charge = length.saturating_add(frame::MESSAGE_CHARGE) as u64;
            self.skipped_streamed = self.skipped_streamed.saturating_add(charge);
        }
    }

    /// Takes a MESSAGE frame's `body` that [`admit`](Self::admit) said to read: `None` while the
    /// message goes on (the piece is kept), or the whole message when this was its last piece
    /// (or a message that came whole).
    pub(crate) fn take(&mut self, header: &FrameHeader, body: Bytes) -> Option<Bytes> {
        let Some(held) = self.room(header) else {
            return Some(body);
        };
        held.extend_from_slice(&body);
        self.finish(header)
    }

    /// The open assembly's buffer with room for the piece `header` announces, if `header` is a
    /// piece of the open message that [`admit`](Self::admit) said to read; `None` for a message
    /// that came whole. The piece's body is then written after what the buffer holds (a copy
    /// from the read buffer, or a read straight into it: `reader.rs`), and
    /// [`finish`](Self::finish) called once it is all there.
    pub(crate) fn room(&mut self, header: &FrameHeader) -> Option<&mut Vec<u8>> {
        let want = self.room_wanted(header)?;
        let held = self.open.as_mut()?.body.get_or_insert_with(Vec::new);
        if want > held.capacity() {
            let mut bigger = recycle::take(want);
            bigger.extend_from_slice(held);
            recycle::give_back(std::mem::replace(held, bigger));
        }
        Some(held)
    }

    /// The room [`room`](Self::room) makes for the piece `header`, beyond what the assembly
    /// has allocated already: 0 when it has the room (a later piece of a message whose
    /// assembly was sized for it). `None` for a message that came whole. The
    /// decoder reads a piece straight into its assembly only when this is no more than a read
    /// would reserve (`codec.rs`), since it is made on the header's word alone.
    pub(crate) fn room_beyond_held(&self, header: &FrameHeader) -> Option<usize> {
        let want = self.room_wanted(header)?;
        let allocated = self.open.as_ref()?.body.as_ref().map_or(0, Vec::capacity);
        Some(want.saturating_sub(allocated))
    }

    /// The capacity the open assembly needs for the piece `header` (its own when it has room
    /// enough), or `None` for a message that came whole.
    fn room_wanted(&self, header: &FrameHeader) -> Option<usize> {
        let open = match &self.open {
            Some(open) if open.call_id == header.call_id => open,
            _ => return None,
        };
        let last = header.flags & FLAG_MORE == 0;
        let piece = header.length as usize;
        let (len, capacity) = open
            .body
            .as_ref()
            .map_or((0, 0), |held| (held.len(), held.capacity()));
        let need = len + piece;
        if need <= capacity {
            return Some(capacity);
        }
        // The first piece: room for the last message's length, or two pieces; after that the
        // room doubles (few moves). The last piece: exactly what is left. What is written, and
        // so resident, never passes the limit (`admit` checked the sum).
        Some(if last {
            need
        } else if capacity == 0 && self.last >= need {
            // As long as the last one: taken as a good guess, so that a run of messages of
            // one size is read into buffers of that size (no move, no copy to trim).
            self.last
        } else if capacity == 0 {
            need.max(2 * piece)
        } else {
            need.max(2 * capacity)
        })
    }

    /// The open assembly's buffer, while a piece's body is being written into it (after
    /// [`room`](Self::room)).
    pub(crate) fn held_mut(&mut self) -> Option<&mut Vec<u8>> {
        self.open.as_mut()?.body.as_mut()
    }

    /// After the body of the piece `header` was written into the buffer [`room`](Self::room)
    /// gave: the whole message when that was its last piece, `None` while the message goes on.
    pub(crate) fn finish(&mut self, header: &FrameHeader) -> Option<Bytes> {
        if header.flags & FLAG_MORE != 0 {
            return None;
        }
        // `room` made the buffer: there is one.
        let mut held = self
            .open
            .take()
            .and_then(|open| open.body)
            .unwrap_or_default();
        self.last = held.len();
        // Receivers count a message by its length (a server's inbound budget, a client's
        // queue): when the guess or the doubling left much room behind it, a copy in a
        // buffer of its own size lets that go rather than keep the room alive with the message.
        if held.capacity() - held.len() > held.len() / 4 {
            let mut exact = recycle::take(held.len());
            exact.extend_from_slice(&held);
            recycle::give_back(std::mem::replace(&mut held, exact));
        }
        Some(recycle::freeze(held))
    }
}

/// A piece before its message's last (`FLAG_MORE`) is at least [`MIN_PIECE`] long and carries
/// only `FLAG_MORE` and maybe `FLAG_COMPRESSED`: the message's other flags (`END_STREAM`, `END_OK`) go on its last
/// piece, and a sender has no reason to set any other bit on one. (Ignored bits are ignored on
/// a whole message, as on every frame; on a piece they can only be a broken sender.)
fn check_piece(header: &FrameHeader) -> Result<(), FrameError> {
    if header.flags & !(FLAG_MORE | FLAG_COMPRESSED) != 0 {
        return Err(FrameError::BadPiece {
            call_id: header.call_id,
            reason: "flags other than MORE and COMPRESSED on a piece before its last",
        });
    }
    // Every sockrpc sender, from the first with pieces, cuts `PIECE` (64 KiB) before the last.
    if (header.length as usize) < MIN_PIECE {
        return Err(FrameError::BadPiece {
            call_id: header.call_id,
            reason: "a piece before its last shorter than 16 KiB (MIN_PIECE)",
        });
    }
    Ok(())
}

/// A message that came in one frame: read, or skipped and reported when over `max`.
fn whole(header: &FrameHeader, max: usize) -> Admit {
    if header.length as usize > max {
        Admit::Skip {
            report: Some(header.length),
        }
    } else {
        Admit::Read
    }
}

#[cfg(test)]
#[path = "pieces_tests.rs"]
mod tests;
