//! The bulk lane: messages going out in pieces ([`FLAG_MORE`]), and how they are cut.
//!
//! On a writer that takes vectored writes, pieces are cut only as the writer takes them. A
//! flush offers the writer what waits before the oldest split message and then its next
//! pieces, up to `PIECES_PER_FLUSH` (1 MiB), in one vectored write whose piece headers are
//! built on the stack and whose bodies are slices of the message. What the writer took is cut:
//! each piece it took whole, and the one it took part of, whose rest is queued. A piece the
//! writer did not begin stays in the message, so frames other calls append meanwhile go out
//! before it:
//!
//! ```text
//!  offered: [ queue ][ buf ][ head 1 | piece 1 ][ head 2 | piece 2 ] … [ head 16 | piece 16 ]
//!  taken:   ├────────────────────────────────────────────────┤
//!  after:   piece 1 cut and gone; piece 2 cut, its rest queued; pieces 3..16 still in the message
//! ```
//!
//! Why not cut first and write after: a flush once cut four pieces (256 KiB) per write so that
//! a full socket kept others waiting behind at most four. On a socket that takes everything,
//! that was four `writev` per MiB, and on a kernel pacing TCP (BBR) a MiB in 256 KiB writes
//! went out at half the speed of one write (`docs/PERFORMANCE-XEON.md`, session 49). Cutting
//! what was taken gives both: one write per MiB when the socket has room, and behind a full one
//! other calls wait for at most the rest of one piece.
//!
//! A writer without vectored writes gets pieces copied into the buffer, `PIECES_PER_WRITE` at a
//! time.

use super::{Outbox, PIECES_PER_FLUSH};
use bytes::{Buf, Bytes, BytesMut};
use sockrpc_protocol::frame::{
    self, FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_MORE, HEADER_LEN, PIECE,
};
use std::{
    io::{self, IoSlice},
    task::{ready, Context, Poll},
};

/// The largest last piece (96 KiB): a tail of a few bytes as a piece of its own would go in a
/// write, and a wake-up of the reader, of its own; and a message up to this size goes whole.
pub(super) const LONGEST_PIECE: usize = PIECE + PIECE / 2;

/// Slices one vectored write of pieces gathers at most: what waits before them, and a header,
/// a body and (for the last) a tail per piece.
const SLICES: usize = 64;

/// A message that goes out in pieces, and the frames of its call that must follow it.
pub(super) struct Bulk {
    pub(super) call_id: u32,
    /// The whole message's flags: its last piece carries them.
    pub(super) flags: u8,
    /// What is left to cut.
    pub(super) body: Bytes,
    /// A piece of it was cut: the peer has its message in assembly.
    pub(super) started: bool,
    /// Frames of the same call appended after it, written right after its last piece.
    pub(super) tail: BytesMut,
    /// Bytes of `tail` counted in `bulked`.
    pub(super) counted: usize,
}

impl Bulk {
    /// The next piece's length and flags: the last takes what is left up to `LONGEST_PIECE`
    /// and the message's flags; one before it `PIECE` bytes, `FLAG_MORE` and the message's
    /// `FLAG_COMPRESSED`.
    fn next_piece(&self, left: usize) -> (usize, u8) {
        if left <= LONGEST_PIECE {
            (left, self.flags)
        } else {
            (PIECE, FLAG_MORE | self.flags & FLAG_COMPRESSED)
        }
    }
}

impl Outbox {
    /// [`append_message`](Self::append_message) when a message is split or one is waiting.
    #[inline(never)]
    pub(super) fn append_bulk(&mut self, call_id: u32, flags: u8, body: &Bytes) {
        if self.pieces && body.len() > PIECE {
            self.bulked += body.len();
            self.bulks.push_back(Bulk {
                call_id,
                flags,
                body: body.clone(),
                started: false,
                tail: BytesMut::new(),
                counted: 0,
            });
            return;
        }
        match self.bulks.iter_mut().rev().find(|b| b.call_id == call_id) {
            Some(bulk) => {
                frame::encode_message_head_flags(&mut bulk.tail, call_id, flags, body.len());
                bulk.tail.extend_from_slice(body);
                bulk.counted += HEADER_LEN + body.len();
                self.bulked += HEADER_LEN + body.len();
            }
            None => {
                frame::encode_message_head_flags(&mut self.buf, call_id, flags, body.len());
                self.append_body(body);
            }
        }
    }

    /// [`abandon`](Self::abandon) when split messages wait.
    #[inline(never)]
    pub(super) fn abandon_bulks(
        &mut self,
        call_id: u32,
        ending: impl FnOnce(&mut BytesMut),
    ) -> usize {
        let mut close = None;
        let mut unsent = 0;
        let bulked = &mut self.bulked;
        self.bulks.retain(|bulk| {
            if bulk.call_id != call_id {
                return true;
            }
            *bulked -= bulk.body.len() + bulk.counted;
            let counted = bulk.flags & FLAG_END_STREAM == 0;
            if bulk.started {
                close = Some(bulk.flags & (FLAG_COMPRESSED | FLAG_END_STREAM));
                if counted {
                    unsent += bulk.body.len();
                }
            } else if counted {
                unsent += frame::message_charge(bulk.body.len());
            }
            unsent += message_charges(&bulk.tail);
            false
        });
        ending(&mut self.buf);
        if let Some(flags) = close {
            // The last piece, empty: no MORE, and the COMPRESSED every piece carried. The call
            // has ended on both sides by now, so the peer drops what it completes.
            frame::encode_message_head_flags(&mut self.buf, call_id, flags, 0);
        }
        unsent
    }

    /// Cuts the next piece of the oldest split message, copied into the buffer (its last then
    /// takes the message's tail): for a writer without vectored writes.
    pub(super) fn cut_piece(&mut self) {
        let Some(bulk) = self.bulks.front_mut() else {
            return;
        };
        let (len, flags) = bulk.next_piece(bulk.body.len());
        let piece = bulk.body.split_to(len);
        bulk.started = true;
        frame::encode_message_head_flags(&mut self.buf, bulk.call_id, flags, len);
        self.buf.extend_from_slice(&piece);
        self.bulked -= len;
        if bulk.body.is_empty() {
            self.end_front_bulk(0);
        }
    }

    /// Takes the oldest split message, whose last piece was cut, out of the lane: its tail
    /// follows, but for the first `skip` bytes, which the writer already took.
    fn end_front_bulk(&mut self, skip: usize) {
        if let Some(bulk) = self.bulks.pop_front() {
            self.bulked -= bulk.counted;
            self.buf
                .extend_from_slice(&bulk.tail[skip.min(bulk.tail.len())..]);
        }
    }

    /// On a vectored writer: writes what is queued and buffered and the split messages behind
    /// it, cutting pieces as the writer takes them (see the module's docs), until nothing is
    /// left in the lane (`Ready`: the tail of the last may wait in the buffer), the socket is
    /// full, or a flush's worth of pieces went out (`Pending`, with `cx` woken, so that what
    /// the tasks woken meanwhile append goes out before the next piece).
    #[inline(never)]
    pub(super) fn poll_write_bulks(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        while !self.bulks.is_empty() {
            if sent == PIECES_PER_FLUSH {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let Some(bulk) = self.bulks.front() else {
                break;
            };
            // The pieces to offer: (length, its header).
            let mut plan = [(0usize, [0u8; HEADER_LEN]); PIECES_PER_FLUSH];
            let before = self.queue.len() + 1;
            let room = SLICES.saturating_sub(before) / 3;
            let mut planned = 0;
            let mut left = bulk.body.len();
            while planned < room.min(PIECES_PER_FLUSH - sent) && left > 0 {
                let (len, flags) = bulk.next_piece(left);
                plan[planned] = (len, frame::message_head(bulk.call_id, flags, len));
                planned += 1;
                left -= len;
            }
            let mut slices = [IoSlice::new(&[]); SLICES];
            let mut count = 0;
            // Pieces are planned only when all of these fit (`room`); when more are queued
            // than one write gathers, this write takes the first of them and no piece.
            let parts = self.queue.iter().map(|part| &part[..]);
            let parts = parts.chain([&self.buf[..]]).filter(|p| !p.is_empty());
            for (slot, part) in slices.iter_mut().zip(parts) {
                *slot = IoSlice::new(part);
                count += 1;
            }
            let mut at = 0;
            for (len, head) in &plan[..planned] {
                slices[count] = IoSlice::new(head);
                slices[count + 1] = IoSlice::new(&bulk.body[at..at + len]);
                count += 2;
                at += len;
            }
            if at == bulk.body.len() && !bulk.tail.is_empty() {
                slices[count] = IoSlice::new(&bulk.tail);
                count += 1;
            }
            let n = match self
                .writer
                .as_mut()
                .poll_write_vectored(cx, &slices[..count])
            {
                Poll::Ready(Ok(n)) if n > 0 => n,
                polled => return self.write_failed(polled),
            };
            let first = n.min(self.queued + self.buf.len());
            self.consume(first);
            sent += self.cut_taken(n - first, &plan[..planned]);
        }
        Poll::Ready(Ok(()))
    }

    /// Cuts from the oldest split message the pieces of `plan` that the writer took (`taken`
    /// bytes of them, their tail's included): each taken whole, and the one taken in part,
    /// whose rest is queued. Returns how many were cut.
    fn cut_taken(&mut self, mut taken: usize, plan: &[(usize, [u8; HEADER_LEN])]) -> usize {
        self.written += taken as u64;
        let mut cut = 0;
        for (len, head) in plan {
            if taken == 0 {
                break;
            }
            let Some(bulk) = self.bulks.front_mut() else {
                break;
            };
            let mut piece = bulk.body.split_to(*len);
            bulk.started = true;
            let last = bulk.body.is_empty();
            self.bulked -= len;
            cut += 1;
            if taken >= HEADER_LEN + len {
                taken -= HEADER_LEN + len;
            } else {
                // Taken in part: the rest goes out before anything else.
                if taken < HEADER_LEN {
                    self.queue_rest(Bytes::copy_from_slice(&head[taken..]));
                    taken = 0;
                } else {
                    taken -= HEADER_LEN;
                }
                piece.advance(taken);
                self.queue_rest(piece);
                taken = 0;
            }
            if last {
                self.end_front_bulk(taken);
                break;
            }
        }
        cut
    }

    /// Queues the rest of a piece the writer took in part (the buffer is empty then: the
    /// writer took all of it before the piece).
    fn queue_rest(&mut self, rest: Bytes) {
        debug_assert!(self.buf.is_empty());
        self.queued += rest.len();
        self.queue.push_back(rest);
    }

    /// Writes what the lane holds, pieces copied, on a writer without vectored writes: up to
    /// `PIECES_PER_WRITE` pieces per write. See [`poll_write_bulks`](Self::poll_write_bulks).
    #[inline(never)]
    pub(super) fn poll_write_bulks_copied(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut cut = 0;
        while !self.bulks.is_empty() {
            if cut == PIECES_PER_FLUSH {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            for _ in 0..super::PIECES_PER_WRITE.min(PIECES_PER_FLUSH - cut) {
                if self.bulks.is_empty() {
                    break;
                }
                self.cut_piece();
                cut += 1;
            }
            ready!(self.poll_write_buf(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

/// What the MESSAGEs among `frames` (whole frames this side encoded: a bulk's tail) charge a
/// connection window, each `frame::message_charge` of its body.
pub(super) fn message_charges(frames: &[u8]) -> usize {
    let mut rest = frames;
    let mut charges = 0;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        // Messages with END_STREAM are not counted (see `Outbox::abandon`).
        if rest[4] == frame::FrameKind::Message as u8 && rest[5] & FLAG_END_STREAM == 0 {
            charges += frame::message_charge(len);
        }
        rest = rest.get(HEADER_LEN + len..).unwrap_or_default();
    }
    charges
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
